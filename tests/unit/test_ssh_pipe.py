"""BatchingPipe: the bulk-read channel buffer hands over large blocks, in order, on time."""

from __future__ import annotations

import threading
import time

import pytest
from paramiko.buffered_pipe import PipeTimeout

from bbr_orchestrator.adapters.ssh_pipe import BatchingPipe


def test_bytes_come_out_in_order_and_never_more_than_asked() -> None:
    """Whatever the packet sizes, reads return the bytes fed, in order, at most n at a time."""
    pipe = BatchingPipe(low_water=10, linger=0.0)
    for chunk in (b"abc", b"defgh", b"ijklmnopqrstuvwxyz"):
        pipe.feed(chunk)
    pipe.close()
    out = []
    while block := pipe.read(4, timeout=1.0):
        assert len(block) <= 4
        out.append(block)
    assert b"".join(out) == b"abcdefghijklmnopqrstuvwxyz"


def test_a_read_waits_for_low_water_and_joins_the_packets() -> None:
    """Packets arriving close together come out as one block of low_water bytes, not one
    block per packet."""
    pipe = BatchingPipe(low_water=64 * 1024, linger=1.0)

    def sshd() -> None:
        for _ in range(16):
            pipe.feed(b"x" * 4096)
            time.sleep(0.001)

    feeder = threading.Thread(target=sshd)
    feeder.start()
    block = pipe.read(1024 * 1024, timeout=5.0)
    feeder.join()
    assert len(block) == 64 * 1024


def test_a_pause_in_the_stream_hands_over_what_is_there() -> None:
    """Below low_water a read returns once nothing more arrived for linger seconds (a slow
    or paused stream is not held back until the idle timeout)."""
    pipe = BatchingPipe(low_water=1024 * 1024, linger=0.01)
    pipe.feed(b"size 42\n")
    started = time.monotonic()
    assert pipe.read(1024, timeout=30.0) == b"size 42\n"
    assert time.monotonic() - started < 5.0


def test_no_byte_within_the_timeout_is_pipe_timeout() -> None:
    """An empty pipe raises PipeTimeout after the timeout (Channel.recv turns it into the
    socket timeout the reader reports as 'no data for N s')."""
    pipe = BatchingPipe()
    with pytest.raises(PipeTimeout):
        pipe.read(1024, timeout=0.05)


def test_a_closed_pipe_returns_what_is_left_then_nothing() -> None:
    """close() wakes a waiting reader; buffered bytes still come out, then b'' (EOF)."""
    pipe = BatchingPipe(low_water=1024 * 1024, linger=10.0)
    pipe.feed(b"tail")
    threading.Timer(0.05, pipe.close).start()
    assert pipe.read(1024, timeout=30.0) == b"tail"
    assert pipe.read(1024, timeout=30.0) == b""


def test_readiness_length_event_and_empty_track_the_buffered_bytes() -> None:
    """read_ready, len, the select event and empty() see the batched bytes as paramiko's
    own pipe would."""
    pipe = BatchingPipe()
    event = threading.Event()
    pipe.set_event(event)
    assert not pipe.read_ready() and len(pipe) == 0 and not event.is_set()
    pipe.feed(b"ab")
    pipe.feed(b"cd")
    assert pipe.read_ready() and len(pipe) == 4 and event.is_set()
    assert pipe.empty() == b"abcd"
    assert not pipe.read_ready() and not event.is_set()
    pipe.close()
    assert event.is_set()
