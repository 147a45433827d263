"""``python -m bbr_orchestrator.sandbox.omsim``: behave like ``om``."""

from .cli import main

raise SystemExit(main())
