"""The ``bbr-orchestrator`` command line."""

from bbr_orchestrator.cli.app import main

__all__ = ["main"]
