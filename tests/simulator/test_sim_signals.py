"""Contract section 3: SIGTERM ends bbr at once; SIGINT asks and keeps going."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from bbr_orchestrator.sandbox.bbrsim import invocations, is_busy, running

from .simkit import HOST, Sim


def _start_slow_backup(
    sim: Sim, seconds: float, blocked: frozenset[int] = frozenset()
) -> subprocess.Popen[str]:
    """Start a backup whose backup scripts take ``seconds`` and wait until they are running."""
    sim.faults(backup_delay_seconds=seconds)
    process = sim.popen(sim.director_args("backup"), blocked=blocked)
    assert process.stdout is not None
    for line in process.stdout:
        if "Backing up fake-blobstore on bosh/0..." in line:
            return process
    raise AssertionError("the backup never started its scripts")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_stops_at_once_leaving_marker_and_partial_artifact(sim: Sim, signum: int) -> None:
    """SIGTERM (or SIGHUP) ends a running backup at once; marker and partial artifact stay."""
    process = _start_slow_backup(sim, 30)
    assert [r["pid"] for r in running(sim.state)] == [process.pid]
    sent = time.monotonic()
    process.send_signal(signum)
    process.communicate(timeout=10)
    assert time.monotonic() - sent < 3
    assert process.returncode == -signum
    assert is_busy(sim.state, HOST)
    assert [p.name for p in sim.only_artifact().iterdir()] == ["metadata"]
    assert running(sim.state) == []
    record = invocations(sim.state)[-1]
    assert (record["exit_code"], record["signal"]) == (None, signal.Signals(signum).name)


def test_signals_blocked_by_the_parent_still_reach_bbr(sim: Sim) -> None:
    """A SIGHUP/SIGTERM mask inherited from the parent does not make bbr deaf to them."""
    blocked = frozenset({signal.SIGHUP, signal.SIGTERM})
    process = _start_slow_backup(sim, 30, blocked=blocked)
    process.send_signal(signal.SIGHUP)
    process.communicate(timeout=10)
    assert process.returncode == -signal.SIGHUP


def test_sigint_asks_and_keeps_running_without_an_answer(sim: Sim) -> None:
    """SIGINT prints the `[yes/no]` question; with no answer bbr finishes the backup (exit 0)."""
    process = _start_slow_backup(sim, 1.0)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Are you sure you want to cancel? [yes/no]" in out
    assert "Backup created of" in out


def test_sigint_answered_yes_cancels(sim: Sim) -> None:
    """Answering `yes` to the SIGINT question stops bbr with exit 1 and the cleanup advice."""
    process = _start_slow_backup(sim, 30)
    process.send_signal(signal.SIGINT)
    assert process.stdin is not None
    process.stdin.write("yes\n")
    process.stdin.flush()
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 1
    assert "It is recommended that you run `bbr backup-cleanup`" in out
    assert is_busy(sim.state, HOST)
