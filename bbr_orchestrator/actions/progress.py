"""Transfer progress: a display for people (a terminal bar) and periodic events for machines."""

from __future__ import annotations

import time
from typing import Any, Protocol


class ProgressDisplay(Protocol):
    """Where a person watches a transfer (the CLI's progress bar)."""

    def start(self, total_bytes: int) -> None: ...

    def advance(self, n: int) -> None: ...


class TransferProgress:
    """Counts bytes; logs an ``upload_progress`` event at most every ``interval`` seconds with
    bytes done, total, rate and ETA; forwards to a display when there is one."""

    def __init__(
        self, logger: Any, display: ProgressDisplay | None = None, interval: float = 15.0
    ) -> None:
        self._log = logger
        self._display = display
        self._interval = interval
        self.total = 0
        self.done = 0
        self._started = time.monotonic()
        self._last = self._started

    def start(self, total_bytes: int) -> None:
        self.total = total_bytes
        self._started = self._last = time.monotonic()
        if self._display is not None:
            self._display.start(total_bytes)

    def __call__(self, n: int) -> None:
        self.done += n
        if self._display is not None:
            self._display.advance(n)
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._event(now)

    def _event(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-6)
        rate = self.done / elapsed
        left = max(self.total - self.done, 0)
        self._log.info(
            "upload_progress",
            bytes_done=self.done,
            bytes_total=self.total,
            bytes_per_second=round(rate),
            eta_seconds=round(left / rate) if rate > 0 else None,
        )
