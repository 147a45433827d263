"""Run one bbr operation against one target on its jumpbox, and record it in the catalog.

The run gets its own working directory on the jumpbox (``<work_root>/<run id>``, mode 0700);
bbr runs there, so its ``bbr-*.err.log`` and any partial artifact belong to this run. Output
streams line by line into the run log. The exit status is decoded once (``decode_exit``);
after a failed backup or restore the matching cleanup runs and is recorded as its own run.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import structlog

from bbr_orchestrator.actions.run_log import RunLogWriter
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import (
    LogStream,
    NewRun,
    Run,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
    new_run_id,
)
from bbr_orchestrator.core.outcome import decode_exit
from bbr_orchestrator.errors import OrchestratorError
from bbr_orchestrator.ports import Catalog, Clock, RemoteShell

log = structlog.get_logger(__name__)

ArgvBuilder = Callable[[Operation, str | None], tuple[str, ...]]
"""Builds bbr's argv for an operation, given the artifact path (``None`` when not needed)."""

_CLEANUP_AFTER = {
    Operation.BACKUP: Operation.BACKUP_CLEANUP,
    Operation.RESTORE: Operation.RESTORE_CLEANUP,
}
_ERROR_SUMMARY_CHARS = 2000


@dataclass(frozen=True)
class TargetRun:
    """Everything needed to run bbr against one target."""

    target: str
    target_kind: TargetKind
    build_argv: ArgvBuilder
    work_root: str
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None
    plan: str | None = None


@dataclass(frozen=True)
class Requester:
    """Who asked for the run."""

    trigger: Trigger
    who: str
    daemon_instance: str | None = None


def run_operation(
    catalog: Catalog,
    shell: RemoteShell,
    clock: Clock,
    spec: TargetRun,
    operation: Operation,
    requester: Requester,
    *,
    artifact_path: str | None = None,
) -> Run:
    """Run ``operation`` and return the finished run record (never raises for a bbr failure)."""
    run = _claim(catalog, clock, spec, operation, requester)
    bound = log.bind(run_id=run.id, target=spec.target, operation=operation.value)
    workdir = f"{spec.work_root.rstrip('/')}/{run.id}"
    writer = RunLogWriter(catalog, clock, run.id, bound)
    state, update = RunState.FAILED, RunUpdate()
    try:
        _mkdir(shell, workdir, writer)
        argv = spec.build_argv(operation, _artifact_arg(operation, workdir, artifact_path))
        writer.event(f"running {shlex.join(argv)} in {workdir} on {shell.host}")
        bound.info("bbr_started", jumpbox=shell.host, workdir=workdir)
        code = shell.run(
            argv, on_line=writer.line, cwd=workdir, env=spec.env, timeout=spec.timeout_seconds
        )
        outcome = decode_exit(code)
        _collect_err_logs(shell, workdir, writer)
        writer.event(f"bbr exited {code}: {outcome.name}")
        state = RunState.SUCCEEDED if outcome.succeeded else RunState.FAILED
        update = RunUpdate(
            exit_code=code,
            outcome=outcome.name,
            error_summary=None
            if outcome.succeeded
            else writer.stderr_summary(_ERROR_SUMMARY_CHARS),
        )
        if outcome.needs_cleanup and operation in _CLEANUP_AFTER:
            writer.event(f"running {_CLEANUP_AFTER[operation].value} after {outcome.name}")
    except OrchestratorError as exc:
        writer.event(f"run failed: {exc}")
        update = RunUpdate(outcome="error", error_summary=str(exc)[:_ERROR_SUMMARY_CHARS])
        outcome = None
    finally:
        writer.flush()
    finished = catalog.transition(
        run.id,
        [RunState.RUNNING],
        state,
        replace(update, finished_at=clock.now()),
    )
    bound.info(
        "run_finished",
        state=finished.state.value,
        outcome=finished.outcome,
        exit_code=finished.exit_code,
        duration_seconds=finished.duration_seconds,
    )
    if operation in _CLEANUP_AFTER and (outcome is None or outcome.needs_cleanup):
        cleanup_requester = Requester(
            requester.trigger, f"auto-cleanup after {run.id}", requester.daemon_instance
        )
        run_operation(catalog, shell, clock, spec, _CLEANUP_AFTER[operation], cleanup_requester)
    return finished


def _claim(
    catalog: Catalog, clock: Clock, spec: TargetRun, operation: Operation, requester: Requester
) -> Run:
    now = clock.now()
    run = catalog.create_run(
        NewRun(
            id=new_run_id(now, secrets.token_hex(4)),
            kind=RunKind(operation.value),
            target=spec.target,
            target_kind=spec.target_kind,
            trigger=requester.trigger,
            triggered_by=requester.who,
            created_at=now,
            plan=spec.plan,
            daemon_instance=requester.daemon_instance,
        )
    )
    return catalog.transition(
        run.id,
        [RunState.QUEUED],
        RunState.RUNNING,
        RunUpdate(started_at=clock.now(), heartbeat_at=clock.now()),
    )


def _artifact_arg(operation: Operation, workdir: str, artifact_path: str | None) -> str | None:
    if operation is Operation.BACKUP:
        return workdir
    if operation is Operation.RESTORE:
        return artifact_path
    return None


def _mkdir(shell: RemoteShell, workdir: str, writer: RunLogWriter) -> None:
    code = shell.run(("mkdir", "-p", "-m", "0700", workdir), on_line=writer.line, timeout=60)
    if code != 0:
        raise OrchestratorError(f"cannot create the run directory {workdir} on {shell.host}")


def _collect_err_logs(shell: RemoteShell, workdir: str, writer: RunLogWriter) -> None:
    """Copy bbr's ``bbr-*.err.log`` files (written on failure) into the run log."""
    found: list[str] = []

    def keep(stream: LogStream, line: str) -> None:
        found.append(line)

    shell.run(
        ("find", workdir, "-maxdepth", "1", "-name", "bbr-*.err.log", "-type", "f"),
        on_line=keep,
        timeout=60,
    )
    for path in sorted(p for p in found if p.startswith(workdir)):
        writer.event(f"--- {path} ---")
        shell.run(("cat", path), on_line=writer.err_log_line, timeout=60)
