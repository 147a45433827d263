"""The real clock."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """UTC wall-clock time (implements the ``Clock`` port)."""

    def now(self) -> datetime:
        return datetime.now(UTC)
