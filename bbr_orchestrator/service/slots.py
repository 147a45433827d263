"""How many runs the daemon drives at once: a global limit and one per jumpbox, first come
first served, with the waiting queue visible."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from bbr_orchestrator.actions.restore_point import StopSignal

_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class SlotsView:
    """A snapshot: who runs, who waits (in order)."""

    running: tuple[str, ...]
    waiting: tuple[str, ...]
    per_jumpbox: Mapping[str, int]


class Slots:
    """A FIFO gate: a waiter goes when its jumpbox and the global limit have room and no
    earlier waiter could go instead."""

    def __init__(self, max_parallel: int, per_jumpbox: Mapping[str, int]) -> None:
        self._cond = threading.Condition()
        self._max = max_parallel
        self._per_jumpbox = dict(per_jumpbox)
        self._running: Counter[str] = Counter()
        self._holders: list[str] = []
        self._waiting: list[tuple[str, str]] = []

    def resize(self, max_parallel: int, per_jumpbox: Mapping[str, int]) -> None:
        """New limits (config reload); runs already going are not stopped."""
        with self._cond:
            self._max = max_parallel
            self._per_jumpbox = dict(per_jumpbox)
            self._cond.notify_all()

    def acquire(self, jumpbox: str, stop: StopSignal, label: str) -> bool:
        entry = (jumpbox, label)
        with self._cond:
            self._waiting.append(entry)
            try:
                while not self._may_go(entry):
                    if stop.is_set():
                        return False
                    self._cond.wait(_POLL_SECONDS)
                if stop.is_set():
                    return False
                self._running[jumpbox] += 1
                self._holders.append(label)
                return True
            finally:
                self._waiting.remove(entry)
                self._cond.notify_all()

    def release(self, jumpbox: str, label: str) -> None:
        with self._cond:
            self._running[jumpbox] -= 1
            if label in self._holders:
                self._holders.remove(label)
            self._cond.notify_all()

    def view(self) -> SlotsView:
        with self._cond:
            return SlotsView(
                running=tuple(self._holders),
                waiting=tuple(label for _, label in self._waiting),
                per_jumpbox=dict(+self._running),
            )

    def _room(self, jumpbox: str) -> bool:
        limit = self._per_jumpbox.get(jumpbox, 1)
        return self._running.total() < self._max and self._running[jumpbox] < limit

    def _may_go(self, entry: tuple[str, str]) -> bool:
        """First come, first served among the waiters that could go now (a waiter held back by
        its busy jumpbox does not hold up others)."""
        if not self._room(entry[0]):
            return False
        for other in self._waiting:
            if other == entry:
                return True
            if self._room(other[0]):
                return False
        return True
