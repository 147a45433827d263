"""The installation export action against in-memory ports: records, outcomes, claims, pruning."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.opsman_export import OpsmanRun, run_opsman_export
from bbr_orchestrator.actions.run_claim import Requester, RunRequest, new_run, start_run
from bbr_orchestrator.core.models import LogStream, Run, RunKind, RunState, TargetKind, Trigger
from bbr_orchestrator.core.om_argv import OmConnection, export_installation_argv
from bbr_orchestrator.errors import SshError, TargetBusy
from bbr_orchestrator.ports import LineSink
from tests.unit.fakes import FakeClock, MemoryCatalog, MemoryStore, ScriptedShell

OPERATOR = Requester(Trigger.OPERATOR, "alice@laptop")
CONNECTION = OmConnection("https://opsman.test", skip_ssl_validation=True)
SPEC = OpsmanRun(
    target="opsman",
    build_argv=lambda output: export_installation_argv("om", CONNECTION, output),
    work_root="/home/ubuntu/bbr-orchestrator",
    env={"OM_USERNAME": "admin", "OM_PASSWORD": "pw-value"},
    keep_failed_workdirs=2,
)
STORAGE = Storage(store=MemoryStore(), prefix="bbr", orchestrator_version="test")


def om_exits(code: int, stderr: Sequence[str] = ()) -> ScriptedShell:
    def respond(argv: Sequence[str], sink: LineSink) -> int:
        if argv[0] == "om":
            sink(LogStream.STDERR, "exporting installation")
            for line in stderr:
                sink(LogStream.STDERR, line)
            return code
        return 0

    return ScriptedShell(respond)


def export(
    shell: ScriptedShell,
    catalog: MemoryCatalog | None = None,
    clock: FakeClock | None = None,
    **kw: Any,
) -> Run:
    return run_opsman_export(
        catalog or MemoryCatalog(),
        lambda: shell,
        clock or FakeClock(),
        SPEC,
        OPERATOR,
        storage=STORAGE,
        **kw,
    )


def test_om_failure_is_a_failed_run_with_om_stderr() -> None:
    """om exiting 1 fails the run with its stderr as the summary; om ran in the run directory
    with the credentials in its environment only."""
    shell = om_exits(1, ['could not execute "export-installation": 401 Unauthorized'])
    run = export(shell)
    assert (run.state, run.outcome, run.exit_code) == (RunState.FAILED, "failed", 1)
    assert (run.kind, run.target_kind) == (RunKind.OPSMAN_EXPORT, TargetKind.OPSMAN)
    assert run.error_summary and "401 Unauthorized" in run.error_summary
    workdir = f"/home/ubuntu/bbr-orchestrator/{run.id}"
    (om_call,) = [c for c in shell.calls if c[0][0] == "om"]
    assert om_call == (
        export_installation_argv("om", CONNECTION, f"{workdir}/installation.zip"),
        workdir,
        {"OM_USERNAME": "admin", "OM_PASSWORD": "pw-value"},
    )
    assert not any(c[0][:2] == ("rm", "-rf") and workdir in c[0] for c in shell.calls)
    assert shell.closed == 1


def test_unreachable_jumpbox_is_a_failed_run_with_the_reason() -> None:
    """A jumpbox that cannot be reached ends as a failed run naming the host, not an exception."""

    def refuse() -> ScriptedShell:
        raise SshError("jumpbox.test", "connection refused")

    run = run_opsman_export(MemoryCatalog(), refuse, FakeClock(), SPEC, OPERATOR, storage=STORAGE)
    assert (run.state, run.outcome) == (RunState.FAILED, "error")
    assert run.error_summary and "connection refused" in run.error_summary


def test_cancel_ends_cancelled() -> None:
    """A cancel token set while om runs makes the run CANCELLED, whatever om exited with."""
    cancel = threading.Event()

    def respond(argv: Sequence[str], sink: LineSink) -> int:
        if argv[0] == "om":
            cancel.set()
            return -15
        return 0

    run = export(ScriptedShell(respond), cancel=cancel)
    assert (run.state, run.outcome) == (RunState.CANCELLED, "cancelled")
    assert run.error_summary and run.error_summary.startswith("cancelled by request")


def test_a_busy_target_raises_and_runs_nothing() -> None:
    """Another running run on the same target: TargetBusy propagates and om never runs."""
    catalog, clock = MemoryCatalog(), FakeClock()
    request = RunRequest(RunKind.OPSMAN_EXPORT, "opsman", TargetKind.OPSMAN)
    start_run(catalog, clock, catalog.create_run(new_run(clock, request, OPERATOR)))
    shell = om_exits(0)
    with pytest.raises(TargetBusy):
        export(shell, catalog, clock)
    assert shell.calls == []


def test_a_queued_run_is_started_and_finished() -> None:
    """With ``queued``, that run (not a new one) is started and carries the outcome."""
    catalog, clock = MemoryCatalog(), FakeClock()
    request = RunRequest(RunKind.OPSMAN_EXPORT, "opsman", TargetKind.OPSMAN, plan="nightly")
    queued = catalog.create_run(new_run(clock, request, OPERATOR))
    run = export(om_exits(1), catalog, clock, queued=queued)
    assert run.id == queued.id and run.state is RunState.FAILED
    assert len(catalog.runs) == 1


def test_only_the_newest_failed_export_dirs_are_kept() -> None:
    """After a failure, run directories of older failed exports beyond the number kept go."""
    catalog, clock = MemoryCatalog(), FakeClock()
    shell = om_exits(1)
    first, second, third = (export(shell, catalog, clock) for _ in range(3))
    removals = [c[0] for c in shell.calls if c[0][:2] == ("rm", "-rf")]
    assert removals == [("rm", "-rf", f"/home/ubuntu/bbr-orchestrator/{first.id}")]
    assert third.state is RunState.FAILED and second.state is RunState.FAILED
