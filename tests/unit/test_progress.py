"""Transfer progress: periodic structured events and a display for people."""

from __future__ import annotations

from typing import Any

from bbr_orchestrator.actions.progress import TransferProgress


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.seen.append((event, fields))


class Display:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def start(self, total_bytes: int) -> None:
        self.total = total_bytes

    def advance(self, n: int) -> None:
        self.done += n


def test_events_carry_bytes_total_rate_and_eta() -> None:
    """Each progress event reports bytes done, the total, a rate and an ETA."""
    events, display = Events(), Display()
    progress = TransferProgress(events, display, interval=0.0)
    progress.start(1000)
    progress(250)
    progress(250)
    assert display.total == 1000 and display.done == 500
    name, fields = events.seen[-1]
    assert name == "upload_progress"
    assert fields["bytes_done"] == 500 and fields["bytes_total"] == 1000
    assert fields["bytes_per_second"] > 0 and fields["eta_seconds"] is not None


def test_events_are_rate_limited() -> None:
    """With a long interval, many small advances produce no flood of events."""
    events = Events()
    progress = TransferProgress(events, None, interval=3600.0)
    progress.start(10)
    for _ in range(10):
        progress(1)
    assert events.seen == []
    assert progress.done == 10
