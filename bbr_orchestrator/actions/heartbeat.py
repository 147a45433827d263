"""Keeps a process's active runs and restore points alive in the catalog.

Every process that drives runs (the daemon, an operator's ``run`` command) has an owner id and
beats for all its active rows at once. A row whose beats stop for longer than ``stale_after``
belongs to a dead process and is reaped (see ``recovery``).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from types import TracebackType
from typing import Self

import structlog

from bbr_orchestrator.errors import OrchestratorError
from bbr_orchestrator.ports import Catalog, Clock

log = structlog.get_logger(__name__)


def owner_id(role: str) -> str:
    """``role@host:pid:token``: unique per process start, readable in ``runs show``."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Heartbeat:
    """A background thread calling ``catalog.heartbeat_owner`` every ``interval`` seconds."""

    def __init__(self, catalog: Catalog, clock: Clock, owner: str, interval: float) -> None:
        self._catalog = catalog
        self._clock = clock
        self.owner = owner
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def beat(self) -> None:
        """One beat now; a catalog outage is logged, not raised (the next beat retries)."""
        try:
            self._catalog.heartbeat_owner(self.owner, self._clock.now())
        except OrchestratorError as exc:
            log.warning("heartbeat_failed", owner=self.owner, error=str(exc))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
