"""``python -m bbr_orchestrator.sandbox.bbrsim``: behave like ``bbr``."""

from .runner import main

raise SystemExit(main())
