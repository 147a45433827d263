"""A restore drill: the plan's latest good backup restored into a sandbox, timed, smoke-tested.

A drill is one run (kind ``drill``, ``subject_run_id`` = the backup restored) on the drill
target, which it holds like a restore. The backup is the source's backup step of the plan's
newest complete restore point; a backup a verification found damaged is skipped for the next
older complete point. The drill goes through ``run_operation`` exactly as an operator's restore
does (fetch verified into the workdir, ``bbr restore``, restore-cleanup after a failure); the
time from the run's start until bbr's restore succeeded is its RTO. A configured smoke command
then runs on the jumpbox inside the same run; if it fails, the drill fails (``smoke-failed``)
with the RTO still recorded.
"""

from __future__ import annotations

import shlex
from collections import deque
from dataclasses import dataclass

import structlog

from bbr_orchestrator.actions.bbr_operation import AfterFailure, TargetRun
from bbr_orchestrator.actions.restore_backup import (
    RestoreRefused,
    queue_restore,
    restore_plan,
    restore_queued,
)
from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.core.models import (
    LogStream,
    RestorePoint,
    RestorePointState,
    Run,
    RunFilter,
    RunKind,
    RunState,
)
from bbr_orchestrator.errors import DrillRefused, OrchestratorError, TargetBusy
from bbr_orchestrator.ports import (
    CancelToken,
    Catalog,
    Clock,
    Jumpbox,
    LineSink,
    ObjectStore,
    ShellFactory,
)

log = structlog.get_logger(__name__)

SMOKE_FAILED = "smoke-failed"
POINTS_SEARCHED = 100
"""How many of the plan's newest complete restore points are searched for a good backup."""
_STDERR_KEPT = 20
_REASONS_SHOWN = 3


@dataclass(frozen=True)
class Drill:
    """One drill of a plan: restore ``source``'s backup into ``spec``'s target (the sandbox)."""

    plan: str
    source: str
    spec: TargetRun
    smoke_command: tuple[str, ...] | None = None
    """argv run on the drill target's jumpbox after the restore (in the run's workdir)."""


@dataclass(frozen=True)
class DrillChoice:
    """The backup a drill restores, where it comes from, and newer points passed over."""

    point: RestorePoint
    backup: Run
    manifest_key: str
    skipped: tuple[str, ...] = ()


def choose_backup(catalog: Catalog, plan: str, source: str, spec: TargetRun) -> DrillChoice:
    """The source's backup step of the plan's newest complete restore point that can be
    restored into ``spec``'s target (not marked unrestorable, stored, of the right kind);
    ``DrillRefused`` when none of the newest ``POINTS_SEARCHED`` complete points has one."""
    points = catalog.list_restore_points(
        plan=plan, states=[RestorePointState.COMPLETE], limit=POINTS_SEARCHED
    )
    if not points:
        raise DrillRefused(plan, source, f"plan {plan} has no complete restore point yet")
    skipped: list[str] = []
    for point in points:
        if point.deleted_at is not None:
            continue
        steps = catalog.list_runs(
            RunFilter(restore_point_id=point.id, target=source, kind=RunKind.BACKUP, limit=10)
        )
        if not steps:
            skipped.append(f"restore point {point.id} holds no backup of {source}")
            continue
        backup = steps[0]
        try:
            key = restore_plan(catalog, spec, backup)
        except RestoreRefused as exc:
            skipped.append(f"restore point {point.id}: backup {backup.id}: {exc.reason}")
            continue
        return DrillChoice(point, backup, key, tuple(skipped))
    shown = "; ".join(skipped[:_REASONS_SHOWN])
    more = f"; and {len(skipped) - _REASONS_SHOWN} more" if len(skipped) > _REASONS_SHOWN else ""
    noun = "point" if len(points) == 1 else "points"
    raise DrillRefused(
        plan,
        source,
        f"no restorable backup of {source} in the {len(points)} newest complete restore "
        f"{noun} of plan {plan} ({shown}{more})",
    )


def smoke_result(run: Run, smoke_configured: bool) -> str:
    """``passed``, ``failed``, ``not run`` (the restore did not succeed) or ``none``."""
    if not smoke_configured:
        return "none"
    if run.outcome == SMOKE_FAILED:
        return "failed"
    return "passed" if run.state is RunState.SUCCEEDED else "not run"


def run_restore_drill(
    catalog: Catalog,
    connect: ShellFactory,
    clock: Clock,
    store: ObjectStore,
    drill: Drill,
    requester: Requester,
    *,
    cancel: CancelToken | None = None,
    observer: LineSink | None = None,
) -> Run:
    """Run ``drill`` and return the finished drill run.

    Raises ``DrillRefused`` (nothing recorded) when there is no backup to restore, and
    ``TargetBusy`` (the drill run recorded as cancelled, ``target-busy``) when another run
    holds the drill target. A fetch, bbr or smoke failure ends as a failed run."""
    spec = drill.spec
    try:
        choice = choose_backup(catalog, drill.plan, drill.source, spec)
    except DrillRefused as exc:
        log.warning(
            "drill_refused",
            plan=drill.plan,
            target=spec.target,
            source=drill.source,
            reason=exc.reason,
        )
        raise
    backup, key = choice.backup, choice.manifest_key
    intro = [f"passed over {why}" for why in choice.skipped]
    intro.append(
        f"drill of plan {drill.plan}: restoring backup {backup.id} of {drill.source} "
        f"(restore point {choice.point.id}) from {key} into {spec.target}, "
        f"asked by {requester.who}"
    )
    if drill.smoke_command:
        intro.append(f"then the smoke command: {shlex.join(drill.smoke_command)}")
    queued = queue_restore(
        catalog, clock, RunKind.DRILL, spec, drill.plan, backup, requester, intro, observer
    )
    bound = log.bind(
        run_id=queued.id,
        plan=drill.plan,
        target=spec.target,
        source=drill.source,
        subject_run_id=backup.id,
    )
    bound.info("drill_started", restore_point_id=choice.point.id, skipped=len(choice.skipped))
    smoke = _smoke(drill.smoke_command, spec.timeout_seconds, cancel)
    try:
        finished = restore_queued(
            catalog,
            connect,
            clock,
            store,
            spec,
            queued,
            key,
            requester,
            bound,
            cancel=cancel,
            observer=observer,
            after=smoke,
        )
    except TargetBusy as exc:
        busy = catalog.get_run(queued.id)
        bound.info(
            "drill_finished", state=busy.state.value, outcome=busy.outcome, holder=exc.holder
        )
        raise
    bound.info(
        "drill_finished",
        state=finished.state.value,
        outcome=finished.outcome,
        rto_seconds=finished.rto_seconds,
        smoke=smoke_result(finished, smoke is not None),
        duration_seconds=finished.duration_seconds,
        error=finished.error_summary,
    )
    return finished


class _Smoke:
    """The smoke command as ``run_operation``'s ``after`` hook."""

    def __init__(
        self, argv: tuple[str, ...], timeout: float | None, cancel: CancelToken | None
    ) -> None:
        self.argv = argv
        self.timeout = timeout
        self.cancel = cancel

    def __call__(
        self, jumpbox: Jumpbox, workdir: str, _run: Run, sink: LineSink
    ) -> AfterFailure | None:
        command = shlex.join(self.argv)
        sink(LogStream.EVENT, f"running the smoke command {command} in {workdir} on {jumpbox.host}")
        stderr: deque[str] = deque(maxlen=_STDERR_KEPT)

        def line(stream: LogStream, text: str) -> None:
            if stream is LogStream.STDERR and text.strip():
                stderr.append(text)
            sink(stream, text)

        try:
            code = jumpbox.run(
                self.argv, on_line=line, cwd=workdir, timeout=self.timeout, cancel=self.cancel
            )
        except OrchestratorError as exc:
            sink(LogStream.EVENT, f"the smoke command did not finish: {exc}")
            return AfterFailure(
                SMOKE_FAILED, f"the restore succeeded; the smoke command {command} failed: {exc}"
            )
        sink(LogStream.EVENT, f"the smoke command exited {code}")
        if code == 0:
            return None
        tail = "\n".join(stderr).strip()
        reason = (
            f"the restore succeeded; the smoke command {command} exited {code} on {jumpbox.host}"
        )
        return AfterFailure(SMOKE_FAILED, reason + (f"\n{tail}" if tail else ""))


def _smoke(
    argv: tuple[str, ...] | None, timeout: float | None, cancel: CancelToken | None
) -> _Smoke | None:
    return _Smoke(argv, timeout, cancel) if argv else None
