"""Crash recovery: stale runs and restore points of a dead process are reaped, cleaned up,
and every step is written down."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from bbr_orchestrator.actions.recovery import RecoveryTarget, reap
from bbr_orchestrator.actions.run_claim import Requester, RunRequest, claim_now, new_run
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import (
    NewRestorePoint,
    RestorePointState,
    Run,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.ports import LineSink

from .fakes import FakeClock, MemoryCatalog, ScriptedShell

DEAD = Requester(Trigger.SCHEDULE, "plan nightly", "daemon@dead")
ALIVE = Requester(Trigger.SCHEDULE, "recovery", "daemon@alive")


class OpenUploads:
    """Just enough of an object store: counts the aborts asked for under each prefix."""

    def __init__(self, open_count: int) -> None:
        self.open_count = open_count
        self.aborted: list[str] = []

    def abort_incomplete_uploads(self, prefix: str) -> int:
        self.aborted.append(prefix)
        count, self.open_count = self.open_count, 0
        return count


def _shell() -> ScriptedShell:
    def respond(argv: Sequence[str], on_line: LineSink) -> int:
        return 0

    return ScriptedShell(respond)


def _target(
    catalog: MemoryCatalog,
    clock: FakeClock,
    shell: ScriptedShell,
    store: OpenUploads,
    cleanups: list[tuple[Operation, str]],
) -> RecoveryTarget:
    def cleanup(operation: Operation, running: Run) -> Run:
        cleanups.append((operation, running.target))
        return catalog.transition(
            running.id,
            [RunState.RUNNING],
            RunState.SUCCEEDED,
            RunUpdate(finished_at=clock.now(), outcome="succeeded"),
        )

    return RecoveryTarget(
        connect=lambda: shell,
        work_root="/home/ubuntu/work",
        store=store,  # type: ignore[arg-type]
        upload_prefix="bbr/cf/",
        cleanup=cleanup,
    )


def test_a_dead_daemons_backup_is_interrupted_and_cleaned_up() -> None:
    """A running backup without heartbeats: interrupted, orphan stopped, uploads aborted,
    backup-cleanup run (holding the target), work dir removed, each step in its log."""
    catalog, clock, shell, store = MemoryCatalog(), FakeClock(), _shell(), OpenUploads(2)
    cleanups: list[tuple[Operation, str]] = []
    run = claim_now(catalog, clock, RunRequest(RunKind.BACKUP, "cf", TargetKind.DEPLOYMENT), DEAD)
    clock.current += timedelta(minutes=10)
    target = _target(catalog, clock, shell, store, cleanups)
    reaped = reap(catalog, clock, timedelta(minutes=2), lambda name: target, ALIVE)
    assert [r.id for r in reaped] == [run.id]
    after = catalog.get_run(run.id)
    assert (after.state, after.outcome) == (RunState.INTERRUPTED, "interrupted")
    assert "daemon@dead" in (after.error_summary or "")
    assert cleanups == [(Operation.BACKUP_CLEANUP, "cf")]
    assert store.aborted == ["bbr/cf/"]
    commands = [call[0] for call in shell.calls]
    assert commands[0][:2] == ("sh", "-c") and f"/home/ubuntu/work/{run.id}" in commands[0]
    assert commands[-1] == ("rm", "-rf", f"/home/ubuntu/work/{run.id}")
    notes = [line.text for line in catalog.read_log(run.id)]
    assert any("aborted 2 open multipart upload(s) under bbr/cf/" in n for n in notes)
    assert any("backup-cleanup run" in n and "succeeded" in n for n in notes)
    assert any(n.startswith(f"removed /home/ubuntu/work/{run.id}") for n in notes)


def test_live_runs_are_left_alone_and_a_second_reaper_does_nothing() -> None:
    """A run with a fresh heartbeat is not reaped; reaping twice reaps once."""
    catalog, clock, shell, store = MemoryCatalog(), FakeClock(), _shell(), OpenUploads(0)
    run = claim_now(catalog, clock, RunRequest(RunKind.BACKUP, "cf", TargetKind.DEPLOYMENT), DEAD)
    target = _target(catalog, clock, shell, store, [])
    assert reap(catalog, clock, timedelta(minutes=2), lambda name: target, ALIVE) == []
    assert catalog.get_run(run.id).state is RunState.RUNNING
    clock.current += timedelta(minutes=10)
    assert len(reap(catalog, clock, timedelta(minutes=2), lambda name: target, ALIVE)) == 1
    assert reap(catalog, clock, timedelta(minutes=2), lambda name: target, ALIVE) == []


def test_queued_steps_and_their_restore_point_are_interrupted_without_cleanup() -> None:
    """A dead daemon's queued step never started: interrupted, no cleanup, no jumpbox work;
    its restore point is interrupted too."""
    catalog, clock, shell, store = MemoryCatalog(), FakeClock(), _shell(), OpenUploads(0)
    point = catalog.create_restore_point(
        NewRestorePoint(
            "rp-1",
            "nightly",
            Trigger.SCHEDULE,
            "cron",
            clock.now(),
            clock.now(),
            daemon_instance="daemon@dead",
        )
    )
    request = RunRequest(RunKind.BACKUP, "cf", TargetKind.DEPLOYMENT, "nightly", point.id, 1)
    queued = catalog.create_run(new_run(clock, request, DEAD))
    clock.current += timedelta(minutes=10)
    cleanups: list[tuple[Operation, str]] = []
    target = _target(catalog, clock, shell, store, cleanups)
    reap(catalog, clock, timedelta(minutes=2), lambda name: target, ALIVE)
    assert catalog.get_run(queued.id).state is RunState.INTERRUPTED
    assert catalog.get_restore_point(point.id).state is RestorePointState.INTERRUPTED
    assert cleanups == [] and shell.calls == [] and store.aborted == []


def test_a_target_no_longer_configured_is_reaped_and_flagged() -> None:
    """A stale run of a target removed from the config is interrupted and says to clean up."""
    catalog, clock = MemoryCatalog(), FakeClock()
    run = claim_now(catalog, clock, RunRequest(RunKind.BACKUP, "old", TargetKind.DIRECTOR), DEAD)
    clock.current += timedelta(minutes=10)
    reap(catalog, clock, timedelta(minutes=2), lambda name: None, ALIVE)
    assert catalog.get_run(run.id).state is RunState.INTERRUPTED
    notes = [line.text for line in catalog.read_log(run.id)]
    assert any("no longer configured" in n for n in notes)
