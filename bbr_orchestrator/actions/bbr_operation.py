"""Run one bbr operation against one target on its jumpbox, and record it in the catalog.

The run is claimed in the catalog first, so that every failure (the jumpbox unreachable
included) ends as a catalog row with a reason. It gets its own working directory on the
jumpbox (``<work_root>/<run id>``, mode 0700); bbr runs there, so its ``bbr-*.err.log`` and any
partial artifact belong to this run. Output streams line by line into the run log. The exit
status is decoded once (``decode_exit``); after a failed or cancelled backup or restore the
matching cleanup runs and is recorded as its own run. A restore that bbr finished records its
recovery time (RTO: from the run's start, the artifact fetch included, to bbr's successful exit).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import structlog

from bbr_orchestrator.actions import workdirs
from bbr_orchestrator.actions.backup_storage import Storage, bbr_version, store_backup
from bbr_orchestrator.actions.run_claim import (
    Requester,
    RunRequest,
    claim_now,
    new_run,
    start_run,
)
from bbr_orchestrator.actions.run_log import RunLogWriter
from bbr_orchestrator.actions.session import Session
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import (
    LogStream,
    Run,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
)
from bbr_orchestrator.core.outcome import decode_exit
from bbr_orchestrator.errors import OrchestratorError
from bbr_orchestrator.ports import CancelToken, Catalog, Clock, Jumpbox, LineSink, ShellFactory

log = structlog.get_logger(__name__)

ArgvBuilder = Callable[[Operation, str, str | None], tuple[str, ...]]
"""``(operation, workdir, artifact_path) -> argv``; the workdir is where run files live."""

Prepare = Callable[[Jumpbox, str], str]
"""``(jumpbox, workdir) -> artifact_path``: puts what bbr needs into the run's workdir first."""


@dataclass(frozen=True)
class AfterFailure:
    """Why the work after a successful bbr run failed the run (``outcome``: a short word)."""

    outcome: str
    reason: str


After = Callable[[Jumpbox, str, Run, LineSink], AfterFailure | None]
"""``(jumpbox, workdir, run, log) -> failure``: more work inside the run once bbr succeeded (a
drill's smoke command), before the workdir is removed and the run finalised; ``log`` streams
into the run log. A failure (or an ``OrchestratorError``: outcome ``error``) fails the run;
bbr's exit code and the RTO stay recorded and no cleanup follows (bbr's own work succeeded)."""

CLEANUP_AFTER = {
    Operation.BACKUP: Operation.BACKUP_CLEANUP,
    Operation.RESTORE: Operation.RESTORE_CLEANUP,
}
_SUMMARY_CHARS = 2000


@dataclass(frozen=True)
class TargetRun:
    """Everything needed to run bbr against one target.

    ``run_files`` are written into the run directory (mode 0600) before bbr starts and removed
    when it ends: a director key that is not already on the jumpbox travels this way.
    """

    target: str
    target_kind: TargetKind
    build_argv: ArgvBuilder
    work_root: str
    env: Mapping[str, str] = field(default_factory=dict)
    run_files: Mapping[str, bytes] = field(default_factory=dict)
    timeout_seconds: float | None = None
    plan: str | None = None
    keep_failed_workdirs: int = 3


@dataclass(frozen=True)
class _Result:
    state: RunState
    update: RunUpdate
    needs_cleanup: bool


def run_operation(
    catalog: Catalog,
    connect: ShellFactory,
    clock: Clock,
    spec: TargetRun,
    operation: Operation,
    requester: Requester,
    *,
    artifact_path: str | None = None,
    cancel: CancelToken | None = None,
    observer: LineSink | None = None,
    storage: Storage | None = None,
    queued: Run | None = None,
    running: Run | None = None,
    prepare: Prepare | None = None,
    after: After | None = None,
) -> Run:
    """Run ``operation`` and return the finished run record. A bbr failure, a broken or
    unreachable jumpbox and a cancellation all end as a recorded run, not an exception.

    The run is created and started here, or, with ``queued``, that queued run is started
    (``running``: a run already started and holding the target, such as a handed-over
    cleanup). ``TargetBusy`` is raised (and nothing else happens) when another run holds the
    target.
    With ``storage``, a backup whose artifact bbr calls complete is streamed to the object
    store before the run ends; the run succeeds only once its manifest is stored. After a
    failed or cancelled backup/restore, its cleanup run takes the target over atomically.
    ``prepare`` runs once the workdir exists, before bbr; its result is the artifact path
    (a restore fetching its artifact); an ``OrchestratorError`` from it fails the run.
    ``after`` runs once bbr succeeded (see ``After``)."""
    if running is not None:
        run = running
    elif queued is None:
        request = RunRequest(RunKind(operation.value), spec.target, spec.target_kind, spec.plan)
        run = claim_now(catalog, clock, request, requester)
    else:
        run = start_run(catalog, clock, queued)
    bound = log.bind(run_id=run.id, target=spec.target, operation=operation.value)
    writer = RunLogWriter(catalog, clock, run.id, bound, observer)
    try:
        result = _execute(
            catalog,
            connect,
            clock,
            spec,
            operation,
            run,
            artifact_path,
            writer,
            cancel,
            storage,
            prepare,
            after,
        )
    finally:
        writer.flush()
    cleanup = None
    if operation in CLEANUP_AFTER and result.needs_cleanup:
        cleaner = Requester(
            requester.trigger, f"auto-cleanup after {run.id}", requester.daemon_instance
        )
        cleanup_request = RunRequest(
            RunKind(CLEANUP_AFTER[operation].value),
            spec.target,
            spec.target_kind,
            spec.plan,
            run.restore_point_id,
            run.step,
        )
        cleanup = replace(new_run(clock, cleanup_request, cleaner), state=RunState.RUNNING)
    finished = catalog.transition(
        run.id,
        [RunState.RUNNING],
        result.state,
        replace(result.update, finished_at=clock.now()),
        successor=cleanup,
    )
    bound.info(
        "run_finished",
        state=finished.state.value,
        outcome=finished.outcome,
        exit_code=finished.exit_code,
        duration_seconds=finished.duration_seconds,
        error=finished.error_summary,
    )
    if cleanup is not None:
        run_operation(
            catalog,
            connect,
            clock,
            spec,
            CLEANUP_AFTER[operation],
            requester,
            observer=observer,
            running=catalog.get_run(cleanup.id),
        )
    return finished


def _execute(
    catalog: Catalog,
    connect: ShellFactory,
    clock: Clock,
    spec: TargetRun,
    operation: Operation,
    run: Run,
    artifact_path: str | None,
    writer: RunLogWriter,
    cancel: CancelToken | None,
    storage: Storage | None,
    prepare: Prepare | None = None,
    after: After | None = None,
) -> _Result:
    workdir = workdirs.path_of(spec.work_root, run.id)
    rto: float | None = None
    try:
        session = Session(connect(), connect)
    except OrchestratorError as exc:
        writer.event(f"cannot reach the jumpbox: {exc}")
        return _Result(RunState.FAILED, _error(exc), needs_cleanup=True)
    try:
        shell = session.current
        workdirs.prepare(shell, workdir, spec.run_files, writer)
        if prepare is not None:
            artifact_path = prepare(shell, workdir)
            writer.event(f"artifact ready at {artifact_path}")
        argv = spec.build_argv(operation, workdir, artifact_path)
        storing = storage is not None and operation is Operation.BACKUP
        version = bbr_version(shell, argv[0], writer) if storing else None
        writer.event(f"running {shlex.join(argv)} in {workdir} on {shell.host}")
        code = shell.run(
            argv,
            on_line=writer.line,
            cwd=workdir,
            env=spec.env,
            timeout=spec.timeout_seconds,
            cancel=cancel,
        )
        outcome = decode_exit(code)
        cancelled = cancel is not None and cancel.is_set()
        done = outcome.succeeded and not cancelled
        rto = _rto(clock, run) if done and operation is Operation.RESTORE else None
        workdirs.collect_err_logs(shell, workdir, writer)
        writer.event(f"bbr exited {code}: {outcome.name}" + (" (cancelled)" if cancelled else ""))
        if rto is not None:
            writer.event(f"{spec.target} restored {rto:.1f} s after the run started (RTO)")
        failure = _after(after, shell, workdir, run, writer) if done and after else None
        workdirs.finish(
            shell, workdir, spec.run_files, keep=operation is Operation.BACKUP, writer=writer
        )
        if operation is Operation.BACKUP and not outcome.succeeded:
            writer.event(f"kept {workdir} for inspection (partial artifact, err.log)")
            workdirs.remove(
                shell,
                workdirs.stale_failed(
                    catalog, spec.target, RunKind.BACKUP, spec.work_root, spec.keep_failed_workdirs
                ),
                writer,
                "older failed backups",
            )
        summary = None if outcome.succeeded else writer.stderr_summary(_SUMMARY_CHARS)
        state = RunState.SUCCEEDED if outcome.succeeded else RunState.FAILED
        if cancelled:
            state = RunState.CANCELLED
            summary = "cancelled by request" + (f"\n{summary}" if summary else "")
        name = outcome.name
        if failure is not None:
            name, summary = failure.outcome, failure.reason[:_SUMMARY_CHARS]
            state = RunState.FAILED
            if cancel is not None and cancel.is_set():
                state, summary = RunState.CANCELLED, f"cancelled by request\n{summary}"
        result = _Result(
            state,
            RunUpdate(exit_code=code, outcome=name, error_summary=summary, rto_seconds=rto),
            needs_cleanup=outcome.needs_cleanup or cancelled,
        )
        if storing and storage is not None and outcome.backup_artifact_complete and not cancelled:
            result = _store(
                catalog, session, clock, storage, run, spec, workdir, version, writer, result
            )
        return result
    except OrchestratorError as exc:
        writer.event(f"run failed: {exc}")
        _tidy_after_error(session.current, workdir, spec, operation, writer)
        # A restore bbr already finished keeps its RTO and needs no restore-cleanup.
        update = replace(_error(exc), rto_seconds=rto)
        return _Result(RunState.FAILED, update, needs_cleanup=rto is None)
    finally:
        session.current.close()


def _rto(clock: Clock, run: Run) -> float:
    """Seconds from the run's start until now (bbr's restore just exited successfully)."""
    started = run.started_at or run.created_at
    return (clock.now() - started).total_seconds()


def _after(
    after: After, shell: Jumpbox, workdir: str, run: Run, writer: RunLogWriter
) -> AfterFailure | None:
    def log_line(stream: LogStream, text: str) -> None:
        if stream is LogStream.EVENT:
            writer.event(text)
        else:
            writer.line(stream, text)

    try:
        failure = after(shell, workdir, run, log_line)
    except OrchestratorError as exc:
        failure = AfterFailure("error", f"bbr succeeded, then the orchestrator failed: {exc}")
    if failure is not None:
        writer.event(f"run failed after bbr succeeded ({failure.outcome}): {failure.reason}")
    return failure


def _tidy_after_error(
    shell: Jumpbox, workdir: str, spec: TargetRun, operation: Operation, writer: RunLogWriter
) -> None:
    """After a failure outside bbr's own exit (a fetch, a broken session): the run files (a
    director key) never stay behind; a backup's directory stays for inspection, others go."""
    try:
        workdirs.finish(
            shell, workdir, spec.run_files, keep=operation is Operation.BACKUP, writer=writer
        )
    except OrchestratorError as exc:
        writer.event(f"could not tidy {workdir} on {shell.host}: {exc}")


def _store(
    catalog: Catalog,
    session: Session[Jumpbox],
    clock: Clock,
    storage: Storage,
    run: Run,
    spec: TargetRun,
    workdir: str,
    version: str | None,
    writer: RunLogWriter,
    result: _Result,
) -> _Result:
    """Stream the artifact to the object store; on failure the run fails and the artifact stays."""
    try:
        stored = store_backup(
            catalog,
            session,
            clock,
            storage,
            run,
            spec.target_kind,
            workdir,
            version,
            writer,
            bbr_outcome=result.update.outcome,
        )
    except OrchestratorError as exc:
        where = f"{workdir} on {session.current.host}"
        writer.event(f"storing the artifact failed; it stays in {where}: {exc}")
        reason = f"storing the artifact failed (it stays in {where}): {exc}"
        failed = replace(
            result.update, outcome="upload-failed", error_summary=reason[:_SUMMARY_CHARS]
        )
        return _Result(RunState.FAILED, failed, result.needs_cleanup)
    return replace(result, update=replace(result.update, bytes_total=stored))


def _error(exc: OrchestratorError) -> RunUpdate:
    return RunUpdate(outcome="error", error_summary=str(exc)[:_SUMMARY_CHARS])
