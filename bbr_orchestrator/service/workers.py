"""The daemon's worker threads (restore points, verify jobs, drills): started by name, counted
and joined at shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Workers:
    """Daemon threads started here, tracked until they end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, name: str, work: Callable[[], None]) -> None:
        worker = threading.Thread(target=work, name=name, daemon=True)
        with self._lock:
            self._threads.append(worker)
        worker.start()

    def running(self, name: str) -> bool:
        """Whether a worker of that name is still alive."""
        with self._lock:
            return any(t.name == name and t.is_alive() for t in self._threads)

    def active(self) -> int:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            return len(self._threads)

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the workers."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0))
