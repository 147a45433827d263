"""A restore point's steps: order, gating, skipping, waiting for a busy target, the verdict."""

from __future__ import annotations

import threading
from collections.abc import Callable

from bbr_orchestrator.actions.restore_point import (
    PointContext,
    Step,
    queue_steps,
    run_restore_point,
)
from bbr_orchestrator.actions.run_claim import Requester, start_run
from bbr_orchestrator.core.models import (
    NewRestorePoint,
    RestorePoint,
    RestorePointState,
    Run,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.ports import CancelToken

from .fakes import FakeClock, MemoryCatalog

REQUESTER = Requester(Trigger.SCHEDULE, "plan nightly", "daemon@test")


class OpenGate:
    """Grants every slot and remembers the order of requests."""

    def __init__(self) -> None:
        self.granted: list[str] = []

    def acquire(self, jumpbox: str, stop: object, label: str) -> bool:
        self.granted.append(label)
        return True

    def release(self, jumpbox: str, label: str) -> None:
        return None


def _ctx(catalog: MemoryCatalog, stop: threading.Event | None = None, **kw: object) -> PointContext:
    return PointContext(
        catalog,
        FakeClock(),
        OpenGate(),
        stop or threading.Event(),
        threading.Event(),
        REQUESTER,
        busy_retry_seconds=0.01,
        **kw,  # type: ignore[arg-type]
    )


def _point(catalog: MemoryCatalog) -> RestorePoint:
    clock = FakeClock()
    return catalog.create_restore_point(
        NewRestorePoint("rp-1", "nightly", Trigger.SCHEDULE, "cron", clock.now(), clock.now())
    )


def _step(
    catalog: MemoryCatalog,
    target: str,
    kind: RunKind,
    ends: RunState = RunState.SUCCEEDED,
    log: list[str] | None = None,
    gated: bool = False,
) -> Step:
    def execute(queued: Run, cancel: CancelToken) -> Run:
        clock = FakeClock()
        running = start_run(catalog, clock, queued)
        if log is not None:
            log.append(f"{kind.value} {target}")
        return catalog.transition(
            running.id,
            [RunState.RUNNING],
            ends,
            RunUpdate(finished_at=clock.now(), outcome=ends.value),
        )

    kind_of_target = TargetKind.DIRECTOR if target.startswith("dir") else TargetKind.DEPLOYMENT
    return Step(target, kind_of_target, kind, "jb", execute, gated_by_previous=gated)


def _run(
    catalog: MemoryCatalog, steps: list[Step], ctx: PointContext | None = None
) -> RestorePoint:
    ctx = ctx or _ctx(catalog)
    point = _point(catalog)
    queued = queue_steps(ctx, point, steps)
    assert [r.state for r in queued] == [RunState.QUEUED] * len(steps)
    assert [r.step for r in queued] == list(range(1, len(steps) + 1))
    return run_restore_point(ctx, point, steps, queued)


def test_all_steps_in_order_make_a_complete_restore_point() -> None:
    """Every step runs in the given order; all backups stored means complete."""
    catalog, log = MemoryCatalog(), []
    steps = [
        _step(catalog, "dir", RunKind.PRE_BACKUP_CHECK, log=log),
        _step(catalog, "dir", RunKind.BACKUP, log=log, gated=True),
        _step(catalog, "cf", RunKind.BACKUP, log=log),
    ]
    point = _run(catalog, steps)
    assert log == ["pre-backup-check dir", "backup dir", "backup cf"]
    assert point.state is RestorePointState.COMPLETE
    assert point.summary is not None and point.summary.startswith("2/2 backups stored")


def test_a_failed_step_does_not_stop_independent_later_steps() -> None:
    """A failed director backup still lets the deployment back up: the point is partial."""
    catalog, log = MemoryCatalog(), []
    steps = [
        _step(catalog, "dir", RunKind.BACKUP, RunState.FAILED, log=log),
        _step(catalog, "cf", RunKind.BACKUP, log=log),
    ]
    point = _run(catalog, steps)
    assert log == ["backup dir", "backup cf"]
    assert point.state is RestorePointState.PARTIAL
    assert "dir backup: failed" in (point.summary or "")


def test_a_backup_is_skipped_when_its_own_check_failed() -> None:
    """A failed pre-backup-check cancels its backup (recorded as skipped), not the others."""
    catalog, log = MemoryCatalog(), []
    steps = [
        _step(catalog, "dir", RunKind.PRE_BACKUP_CHECK, RunState.FAILED, log=log),
        _step(catalog, "dir", RunKind.BACKUP, log=log, gated=True),
        _step(catalog, "cf", RunKind.BACKUP, log=log),
    ]
    point = _run(catalog, steps)
    assert log == ["pre-backup-check dir", "backup cf"]
    skipped = [r for r in catalog.runs.values() if r.outcome == "skipped"]
    assert [(r.target, r.kind, r.state) for r in skipped] == [
        ("dir", RunKind.BACKUP, RunState.CANCELLED)
    ]
    assert point.state is RestorePointState.PARTIAL


def test_stop_on_failure_skips_the_remaining_steps() -> None:
    """With stop_on_failure, the steps after a failed backup are skipped; nothing stored: failed."""
    catalog, log = MemoryCatalog(), []
    steps = [
        _step(catalog, "dir", RunKind.BACKUP, RunState.FAILED, log=log),
        _step(catalog, "cf", RunKind.BACKUP, log=log),
    ]
    point = _run(catalog, steps, _ctx(catalog, stop_on_failure=True))
    assert log == ["backup dir"]
    assert point.state is RestorePointState.FAILED


def test_a_busy_target_makes_the_step_wait_queued_then_run() -> None:
    """While another run holds the target the step stays queued; it runs once released."""
    catalog, log = MemoryCatalog(), []
    clock = FakeClock()
    from bbr_orchestrator.actions.run_claim import RunRequest, claim_now

    holder = claim_now(
        catalog,
        clock,
        RunRequest(RunKind.BACKUP, "cf", TargetKind.DEPLOYMENT),
        Requester(Trigger.OPERATOR, "alice"),
    )
    release: Callable[[], Run] = lambda: catalog.transition(  # noqa: E731
        holder.id, [RunState.RUNNING], RunState.SUCCEEDED, RunUpdate(finished_at=clock.now())
    )
    timer = threading.Timer(0.2, release)
    timer.start()
    point = _run(catalog, [_step(catalog, "cf", RunKind.BACKUP, log=log)])
    timer.join()
    assert log == ["backup cf"]
    assert point.state is RestorePointState.COMPLETE
    waited = next(r for r in catalog.runs.values() if r.restore_point_id == point.id)
    notes = [line.text for line in catalog.read_log(waited.id)]
    assert any(n.startswith("waiting:") and holder.id in n for n in notes), notes


def test_stopping_daemon_cancels_steps_not_yet_started() -> None:
    """Once the daemon stops, queued steps are cancelled and the point is cancelled."""
    catalog, log = MemoryCatalog(), []
    stop = threading.Event()

    def stop_after(queued: Run, cancel: CancelToken) -> Run:
        stop.set()
        return _step(catalog, "dir", RunKind.BACKUP, log=log).execute(queued, cancel)

    steps = [
        Step("dir", TargetKind.DIRECTOR, RunKind.BACKUP, "jb", stop_after),
        _step(catalog, "cf", RunKind.BACKUP, log=log),
    ]
    point = _run(catalog, steps, _ctx(catalog, stop))
    assert log == ["backup dir"]
    assert point.state is RestorePointState.CANCELLED
    assert not any(r.state.active for r in catalog.runs.values())
