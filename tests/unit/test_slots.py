"""The daemon's capacity gate: global and per-jumpbox limits, first come first served."""

from __future__ import annotations

import threading
import time

from bbr_orchestrator.service.slots import Slots


def _taker(slots: Slots, jumpbox: str, label: str, stop: threading.Event, got: list[str]) -> None:
    if slots.acquire(jumpbox, stop, label):
        got.append(label)


def _start(slots: Slots, jumpbox: str, label: str, stop: threading.Event, got: list[str]):
    thread = threading.Thread(target=_taker, args=(slots, jumpbox, label, stop, got))
    thread.start()
    deadline = time.monotonic() + 5
    while label not in slots.view().waiting and label not in got:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return thread


def test_per_jumpbox_and_global_limits_hold() -> None:
    """Two per jumpbox and three in all: a fourth waits until a slot frees."""
    slots = Slots(3, {"a": 2, "b": 2})
    stop = threading.Event()
    assert slots.acquire("a", stop, "a1")
    assert slots.acquire("a", stop, "a2")
    assert slots.acquire("b", stop, "b1")
    got: list[str] = []
    waiter = _start(slots, "b", "b2", stop, got)
    assert slots.view().waiting == ("b2",)
    slots.release("a", "a1")
    waiter.join(5)
    assert got == ["b2"]
    assert slots.view().per_jumpbox == {"a": 1, "b": 2}


def test_waiters_go_in_arrival_order() -> None:
    """With one slot, queued waiters get it in the order they asked."""
    slots = Slots(1, {"a": 1})
    stop = threading.Event()
    assert slots.acquire("a", stop, "first")
    got: list[str] = []
    threads = [_start(slots, "a", f"w{i}", stop, got) for i in range(4)]
    assert slots.view().waiting == ("w0", "w1", "w2", "w3")
    for i in range(4):
        slots.release("a", "first" if i == 0 else f"w{i - 1}")
        deadline = time.monotonic() + 5
        while len(got) < i + 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    for thread in threads:
        thread.join(5)
    assert got == ["w0", "w1", "w2", "w3"]


def test_a_busy_jumpbox_does_not_hold_up_another() -> None:
    """A waiter for a full jumpbox does not block a later waiter whose jumpbox has room."""
    slots = Slots(4, {"a": 1, "b": 1})
    stop = threading.Event()
    assert slots.acquire("a", stop, "a1")
    got: list[str] = []
    blocked = _start(slots, "a", "a2", stop, got)
    assert slots.acquire("b", stop, "b1")
    assert got == []
    stop.set()
    blocked.join(5)
    assert got == []


def test_stop_releases_waiters_without_a_slot() -> None:
    """When the daemon stops, waiting runs give up (False) instead of starting."""
    slots = Slots(1, {"a": 1})
    stop = threading.Event()
    assert slots.acquire("a", stop, "holder")
    got: list[str] = []
    waiter = _start(slots, "a", "late", stop, got)
    stop.set()
    waiter.join(5)
    assert not waiter.is_alive()
    assert got == []
    assert slots.view().waiting == ()
