"""A restore point: one plan firing, its steps run in the documented order as one unit.

Ops Manager export, then ``bbr director`` backup, then ``bbr deployment`` backup per
deployment (each optionally after its ``pre-backup-check``). Every step is a run in the
catalog carrying the restore point's id and its step number, created ``QUEUED`` up front so
the queue is visible. A step starts when the gate grants its jumpbox a slot and the catalog
grants its target (one running run per target, across daemons); until then it waits, queued,
never dropped. A failed step does not stop the independent later steps unless the plan says
so; a backup whose own pre-backup-check failed is skipped. The restore point is complete only
when every backup step succeeded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from bbr_orchestrator.actions.run_claim import Requester, RunRequest, new_run
from bbr_orchestrator.core.models import (
    LogStream,
    RestorePoint,
    RestorePointState,
    RestorePointUpdate,
    Run,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
)
from bbr_orchestrator.errors import OrchestratorError, RunConflict, TargetBusy
from bbr_orchestrator.ports import CancelToken, Catalog, Clock

log = structlog.get_logger(__name__)

#: Kinds of step that make up the restore point (pre-backup-checks only gate them).
ESSENTIAL = frozenset({RunKind.BACKUP, RunKind.OPSMAN_EXPORT})
_SUMMARY_CHARS = 2000


class StopSignal(Protocol):
    """Set when the daemon stops taking new work (``threading.Event`` fits)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Gate(Protocol):
    """Capacity: how many runs at once, globally and per jumpbox (FIFO among waiters)."""

    def acquire(self, jumpbox: str, stop: StopSignal, label: str) -> bool:
        """Wait for a slot; False when ``stop`` was set first."""
        ...

    def release(self, jumpbox: str, label: str) -> None: ...


StepExecutor = Callable[[Run, CancelToken], Run]
"""Starts the given queued run (``TargetBusy`` if its target is held) and returns it finished."""


@dataclass(frozen=True)
class Step:
    """One step of a restore point."""

    target: str
    target_kind: TargetKind
    kind: RunKind
    jumpbox: str
    execute: StepExecutor
    gated_by_previous: bool = False
    """Skip this step unless the step just before it succeeded (a backup after its check)."""


@dataclass(frozen=True)
class PointContext:
    """What running a restore point needs besides its steps."""

    catalog: Catalog
    clock: Clock
    gate: Gate
    stop: StopSignal
    cancel: CancelToken
    requester: Requester
    stop_on_failure: bool = False
    busy_retry_seconds: float = 5.0


def queue_steps(ctx: PointContext, point: RestorePoint, steps: Sequence[Step]) -> list[Run]:
    """Record every step as a queued run of the restore point, in order."""
    runs = []
    for number, step in enumerate(steps, start=1):
        request = RunRequest(step.kind, step.target, step.target_kind, point.plan, point.id, number)
        runs.append(ctx.catalog.create_run(new_run(ctx.clock, request, ctx.requester)))
    return runs


def run_restore_point(
    ctx: PointContext, point: RestorePoint, steps: Sequence[Step], queued: Sequence[Run]
) -> RestorePoint:
    """Run the queued steps in order and record the restore point's outcome."""
    bound = log.bind(restore_point_id=point.id, plan=point.plan)
    point = ctx.catalog.transition_restore_point(
        point.id,
        [RestorePointState.QUEUED],
        RestorePointState.RUNNING,
        RestorePointUpdate(started_at=ctx.clock.now(), heartbeat_at=ctx.clock.now()),
    )
    bound.info("restore_point_started", steps=len(steps))
    finished: list[Run] = []
    for step, run in zip(steps, queued, strict=True):
        finished.append(_run_step(ctx, step, run, finished))
    state, summary = _verdict(steps, finished, stopped=ctx.stop.is_set())
    point = ctx.catalog.transition_restore_point(
        point.id,
        [RestorePointState.RUNNING],
        state,
        RestorePointUpdate(finished_at=ctx.clock.now(), summary=summary[:_SUMMARY_CHARS]),
    )
    bound.info("restore_point_finished", state=state.value, summary=summary)
    return point


def _run_step(ctx: PointContext, step: Step, run: Run, before: Sequence[Run]) -> Run:
    if ctx.stop.is_set():
        return _skip(ctx, run, "cancelled", "the daemon stopped before this step started")
    if step.gated_by_previous and before and before[-1].state is not RunState.SUCCEEDED:
        return _skip(ctx, run, "skipped", f"skipped: step {before[-1].step} did not succeed")
    failed = [r for r in before if r.kind in ESSENTIAL and r.state is not RunState.SUCCEEDED]
    if ctx.stop_on_failure and failed:
        return _skip(ctx, run, "skipped", f"skipped: step {failed[0].step} failed")
    label = f"{run.id} ({step.kind.value} {step.target})"
    announced = False
    while True:
        if not ctx.gate.acquire(step.jumpbox, ctx.stop, label):
            return _skip(ctx, run, "cancelled", "the daemon stopped while this step was queued")
        try:
            return step.execute(run, ctx.cancel)
        except TargetBusy as exc:
            if not announced:
                _note(ctx, run, f"waiting: {exc}")
                announced = True
        except OrchestratorError as exc:
            return _fail(ctx, run, exc)
        finally:
            ctx.gate.release(step.jumpbox, label)
        if ctx.stop.wait(ctx.busy_retry_seconds):
            return _skip(ctx, run, "cancelled", "the daemon stopped while the target was busy")


def _note(ctx: PointContext, run: Run, text: str) -> None:
    ctx.catalog.append_log(run.id, [(ctx.clock.now(), LogStream.EVENT, text)])


def _skip(ctx: PointContext, run: Run, outcome: str, reason: str) -> Run:
    _note(ctx, run, reason)
    return ctx.catalog.transition(
        run.id,
        [RunState.QUEUED],
        RunState.CANCELLED,
        RunUpdate(finished_at=ctx.clock.now(), outcome=outcome, error_summary=reason),
    )


def _fail(ctx: PointContext, run: Run, exc: OrchestratorError) -> Run:
    """A step that broke outside the run's own error handling still ends recorded."""
    _note(ctx, run, f"step failed: {exc}")
    update = RunUpdate(finished_at=ctx.clock.now(), outcome="error", error_summary=str(exc))
    try:
        return ctx.catalog.transition(
            run.id, [RunState.QUEUED, RunState.RUNNING], RunState.FAILED, update
        )
    except RunConflict:
        return ctx.catalog.get_run(run.id)


def _verdict(
    steps: Sequence[Step], runs: Sequence[Run], *, stopped: bool
) -> tuple[RestorePointState, str]:
    essential = [run for step, run in zip(steps, runs, strict=True) if step.kind in ESSENTIAL]
    good = [run for run in essential if run.state is RunState.SUCCEEDED]
    lines = [
        f"{run.target} {run.kind.value}: {run.outcome or run.state.value}"
        + (f" ({_first_line(run.error_summary)})" if run.error_summary else "")
        for run in runs
        if run.state is not RunState.SUCCEEDED
    ]
    head = f"{len(good)}/{len(essential)} backups stored"
    summary = head + ("; " + "; ".join(lines) if lines else "")
    if essential and len(good) == len(essential):
        return RestorePointState.COMPLETE, summary
    if stopped:
        return RestorePointState.CANCELLED, summary
    return (RestorePointState.PARTIAL if good else RestorePointState.FAILED), summary


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""
