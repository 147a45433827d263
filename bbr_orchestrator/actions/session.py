"""The jumpbox connection a run works through, replaced by a fresh one when it drops."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from bbr_orchestrator.errors import OrchestratorError
from bbr_orchestrator.ports import FileTransfer

Conn = TypeVar("Conn", bound=FileTransfer)


class Session(Generic[Conn]):
    """Holds the current connection; ``reconnect()`` swaps in a new one from the factory.

    Everything after a transfer that had to reconnect (the next file, the final clean-up)
    goes through ``session.current``, never through a connection known to be dead.
    """

    def __init__(self, current: Conn, connect: Callable[[], Conn]) -> None:
        self.current = current
        self._connect = connect
        self.reconnects = 0

    def reconnect(self) -> Conn:
        """Open a new connection and close the old one (which is usually dead already)."""
        old = self.current
        self.current = self._connect()
        self.reconnects += 1
        close = getattr(old, "close", None)
        if callable(close):
            with contextlib.suppress(OrchestratorError, OSError):
                close()
        return self.current
