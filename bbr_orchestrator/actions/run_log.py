"""A run's log: every line is a structured event and a catalog row, written in batches."""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime
from typing import Any

from bbr_orchestrator.core.models import LogStream
from bbr_orchestrator.ports import Catalog, Clock, LineSink

_BATCH_LINES = 1000
_BATCH_SECONDS = 1.0
_STDERR_KEPT = 40


class RunLogWriter:
    """Collects a run's lines; flushes them to the catalog every 1000 lines or second.

    Memory stays bounded however much bbr prints: at most one batch plus the last 40 stderr
    lines (kept for the run's error summary) are held.
    """

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        run_id: str,
        logger: Any,
        observer: LineSink | None = None,
    ) -> None:
        self._observer = observer
        self._catalog = catalog
        self._clock = clock
        self._run_id = run_id
        self._log = logger
        self._pending: list[tuple[datetime, LogStream, str]] = []
        self._last_flush = time.monotonic()
        self._stderr: deque[str] = deque(maxlen=_STDERR_KEPT)
        self.lines_written = 0

    @property
    def logger(self) -> Any:
        """The run's bound structured logger."""
        return self._log

    def line(self, stream: LogStream, text: str) -> None:
        """A line of bbr's stdout or stderr."""
        self._log.debug("bbr_output", stream=stream.value, line=text)
        if self._observer is not None:
            self._observer(stream, text)
        if stream is LogStream.STDERR and text.strip():
            self._stderr.append(text)
        self._add(stream, text)

    def err_log_line(self, _stream: LogStream, text: str) -> None:
        """A line of a collected ``bbr-*.err.log`` file (kept in the run log, not echoed)."""
        self._add(LogStream.STDERR, text)

    def event(self, text: str) -> None:
        """Something the orchestrator did, in the run log between bbr's lines."""
        if self._observer is not None:
            self._observer(LogStream.EVENT, text)
        self._add(LogStream.EVENT, text)

    def stderr_summary(self, limit: int) -> str | None:
        """The last lines bbr wrote to stderr, for the run's error summary."""
        text = "\n".join(self._stderr).strip()
        return text[-limit:] if text else None

    def _add(self, stream: LogStream, text: str) -> None:
        self._pending.append((self._clock.now(), stream, text))
        if (
            len(self._pending) >= _BATCH_LINES
            or time.monotonic() - self._last_flush >= _BATCH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.lines_written += self._catalog.append_log(self._run_id, self._pending)
            self._pending = []
        self._last_flush = time.monotonic()
