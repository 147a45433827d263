"""The daemon's place among processes: its pid file (for ``reload``) and systemd's notify
protocol as the daemon sees it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from bbr_orchestrator.config import Config


class Notifier(Protocol):
    """systemd's notify protocol (a no-op outside systemd)."""

    def ready(self, status: str) -> object: ...

    def status(self, text: str) -> object: ...

    def reloading(self) -> object: ...

    def stopping(self, status: str) -> object: ...

    def watchdog(self) -> object: ...

    def watchdog_interval(self) -> float | None: ...


def pid_file(config: Config) -> Path:
    """Where the daemon writes its pid (for ``bbr-orchestrator reload``)."""
    return config.state_dir / "daemon.pid"


class PidFile:
    """Writes this process's pid for the ``with`` block; removes it after, if still ours."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = str(os.getpid())

    def __enter__(self) -> PidFile:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path.write_text(self.pid + "\n", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.path.read_text(encoding="utf-8").strip() == self.pid:
                self.path.unlink()
        except OSError:
            return
