"""Crash recovery: reap the runs and restore points a dead process left active.

A row is stale when its owner has not beaten for ``stale_after``. Reaping a run is a
compare-and-set in the catalog (two reapers cannot both win, and a run whose owner came back
to life is left alone). A run that was running gets, each step recorded in its log:

1. marked ``interrupted``, handing its target straight to its cleanup run (same transaction);
2. its bbr (or om) process on the jumpbox, if it outlived its daemon, sent SIGTERM (found by
   the pid file in its work directory, and only if that pid still works in that directory);
3. its open multipart uploads aborted (nothing left billing);
4. ``backup-cleanup`` (or ``restore-cleanup``) run and recorded, so the platform is unlocked;
5. its work directory on the jumpbox removed.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from bbr_orchestrator.actions import workdirs
from bbr_orchestrator.actions.run_claim import Requester, RunRequest, new_run
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import (
    LogStream,
    RestorePointState,
    RestorePointUpdate,
    Run,
    RunKind,
    RunState,
    RunUpdate,
)
from bbr_orchestrator.errors import OrchestratorError, RunConflict
from bbr_orchestrator.ports import PID_FILE, Catalog, Clock, ObjectStore, ShellFactory

log = structlog.get_logger(__name__)

CLEANUP_FOR = {RunKind.BACKUP: Operation.BACKUP_CLEANUP, RunKind.RESTORE: Operation.RESTORE_CLEANUP}
_UPLOADS_FROM = frozenset({RunKind.BACKUP, RunKind.OPSMAN_EXPORT})
_TIMEOUT = 120

CleanupRunner = Callable[[Operation, Run], Run]
"""Runs the cleanup ``operation`` as the given (already running) run; returns it finished."""


@dataclass(frozen=True)
class RecoveryTarget:
    """How to reach what a target's run left behind."""

    connect: ShellFactory
    work_root: str
    store: ObjectStore | None
    upload_prefix: str
    """Full key prefix of the target's objects (``{prefix}/{target}/``)."""
    cleanup: CleanupRunner | None


TargetResolver = Callable[[str], RecoveryTarget | None]
"""The recovery view of a target by name; None when it is no longer configured."""


def reap(
    catalog: Catalog,
    clock: Clock,
    stale_after: timedelta,
    resolve: TargetResolver,
    requester: Requester,
) -> list[Run]:
    """Reap every stale run and restore point; returns the runs this call interrupted."""
    now = clock.now()
    before = now - stale_after
    for point in catalog.stale_restore_points(before):
        why = _why(point.heartbeat_at or point.created_at, point.daemon_instance, requester)
        try:
            catalog.transition_restore_point(
                point.id,
                [RestorePointState.QUEUED, RestorePointState.RUNNING],
                RestorePointState.INTERRUPTED,
                RestorePointUpdate(finished_at=now, summary=why),
            )
            log.warning("restore_point_interrupted", restore_point_id=point.id, plan=point.plan)
        except RunConflict:
            continue
    reaped = []
    for run in catalog.stale_runs(before):
        done = _reap_run(catalog, clock, before, run, resolve, requester)
        if done is not None:
            reaped.append(done)
    return reaped


def _why(last: datetime, owner: str | None, requester: Requester) -> str:
    return (
        f"interrupted: its owner {owner or '(unknown)'} stopped beating at {last.isoformat()} "
        f"(presumed dead); reaped by {requester.daemon_instance or requester.who}"
    )


def _reap_run(
    catalog: Catalog,
    clock: Clock,
    before: datetime,
    run: Run,
    resolve: TargetResolver,
    requester: Requester,
) -> Run | None:
    target = resolve(run.target)
    was_running = run.state is RunState.RUNNING
    operation = CLEANUP_FOR.get(run.kind)
    successor = None
    if was_running and operation is not None and target is not None and target.cleanup:
        after = Requester(requester.trigger, f"recovery of {run.id}", requester.daemon_instance)
        request = RunRequest(
            RunKind(operation.value),
            run.target,
            run.target_kind,
            run.plan,
            run.restore_point_id,
            run.step,
        )
        successor = replace(new_run(clock, request, after), state=RunState.RUNNING)
    why = _why(run.heartbeat_at or run.created_at, run.daemon_instance, requester)
    update = RunUpdate(finished_at=clock.now(), outcome="interrupted", error_summary=why)
    interrupted = catalog.interrupt_run(run.id, before, update, successor)
    if interrupted is None:
        return None
    bound = log.bind(run_id=run.id, target=run.target, kind=run.kind.value)
    bound.warning("run_interrupted", owner=run.daemon_instance, was=run.state.value)
    note = _Notes(catalog, clock, run.id)
    note(why)
    if not was_running:
        return interrupted
    if target is None:
        note(f"target {run.target} is no longer configured: clean up by hand")
        return interrupted
    _stop_orphan(target, run, note)
    # Uploads first, while the cleanup run still holds the target: no new run of this target
    # can have started an upload that the abort would take down.
    if run.kind in _UPLOADS_FROM and target.store is not None:
        _abort_uploads(target.store, target.upload_prefix, note)
    if successor is not None and target.cleanup is not None and operation is not None:
        note(f"running {operation.value} as run {successor.id}")
        cleaned = target.cleanup(operation, catalog.get_run(successor.id))
        note(f"{operation.value} run {cleaned.id} ended {cleaned.state.value} ({cleaned.outcome})")
    _remove_workdir(target, run, note)
    return interrupted


class _Notes:
    """Appends recovery events to the reaped run's log (and never fails the reaping)."""

    def __init__(self, catalog: Catalog, clock: Clock, run_id: str) -> None:
        self._catalog, self._clock, self._run_id = catalog, clock, run_id

    def __call__(self, text: str) -> None:
        try:
            self._catalog.append_log(self._run_id, [(self._clock.now(), LogStream.EVENT, text)])
        except OrchestratorError as exc:
            log.warning("recovery_note_lost", run_id=self._run_id, note=text, error=str(exc))


def _abort_uploads(store: ObjectStore, prefix: str, note: _Notes) -> None:
    try:
        count = store.abort_incomplete_uploads(prefix)
        note(f"aborted {count} open multipart upload(s) under {prefix}")
    except OrchestratorError as exc:
        note(f"could not abort open uploads under {prefix}: {exc}")


#: SIGTERM the pid recorded in the work dir if it is alive and still works in that directory
#: (a recycled pid belongs to someone else); wait up to 20 s for it to go.
_STOP_ORPHAN = """\
dir=$1
pid=$(cat "$dir/$2" 2>/dev/null) || exit 0
[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$(cd "$dir" && pwd -P)" ] || exit 0
echo "stopping orphaned process $pid (still running in $dir)"
kill -TERM "$pid" 2>/dev/null || exit 0
for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
echo "process $pid did not stop after SIGTERM"; exit 1
"""


def _stop_orphan(target: RecoveryTarget, run: Run, note: _Notes) -> None:
    workdir = workdirs.path_of(target.work_root, run.id)
    _remote(target, ("sh", "-c", _STOP_ORPHAN, "sh", workdir, PID_FILE), note, "")


def _remove_workdir(target: RecoveryTarget, run: Run, note: _Notes) -> None:
    workdir = workdirs.path_of(target.work_root, run.id)
    _remote(target, ("rm", "-rf", workdir), note, f"removed {workdir}")


def _remote(target: RecoveryTarget, argv: tuple[str, ...], note: _Notes, done: str) -> None:
    """Run one housekeeping command on the target's jumpbox; every outcome is noted."""
    try:
        shell = target.connect()
    except OrchestratorError as exc:
        note(f"could not reach the jumpbox for `{shlex.join(argv[:3])}`: {exc}")
        return
    try:
        code = shell.run(argv, on_line=lambda _stream, line: note(line), timeout=_TIMEOUT)
        if code != 0:
            note(f"`{shlex.join(argv[:3])}` on {shell.host} exited {code}")
        elif done:
            note(f"{done} on {shell.host}")
    except OrchestratorError as exc:
        note(f"`{shlex.join(argv[:3])}` failed: {exc}")
    finally:
        shell.close()
