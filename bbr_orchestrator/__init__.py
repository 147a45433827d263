"""bbr-orchestrator: scheduled BOSH Backup and Restore, streamed to S3, cataloged in SQL."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Lazy: importing importlib.metadata costs ~50 ms, paid by every process (the bbr simulator
    # included) that imports a submodule without needing the version.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("bbr-orchestrator")
        except PackageNotFoundError:  # a source tree that is not installed
            return "0.0.0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
