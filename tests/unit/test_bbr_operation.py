"""Running one bbr operation: run records, streamed log, decoded outcome, automatic cleanup."""

from __future__ import annotations

from collections.abc import Sequence

from bbr_orchestrator.actions.bbr_operation import Requester, TargetRun, run_operation
from bbr_orchestrator.core.bbr_argv import DirectorSpec, Operation, director_argv
from bbr_orchestrator.core.models import LogStream, RunKind, RunState, TargetKind, Trigger
from bbr_orchestrator.errors import SshError
from bbr_orchestrator.ports import LineSink
from tests.unit.fakes import FakeClock, MemoryCatalog, ScriptedShell

SPEC = TargetRun(
    target="bosh-director",
    target_kind=TargetKind.DIRECTOR,
    build_argv=lambda op, path: director_argv(
        "bbr", DirectorSpec("10.0.0.6", "bbr", "/k"), op, artifact_path=path
    ),
    work_root="/home/ubuntu/bbr-orchestrator",
)
OPERATOR = Requester(Trigger.OPERATOR, "alice@laptop")


def bbr_exits(code: int, stderr: str = "") -> ScriptedShell:
    def respond(argv: Sequence[str], sink: LineSink) -> int:
        if argv[0] == "bbr":
            sink(
                LogStream.STDOUT, "[bbr] 2026/11/27 02:00:01 INFO - Starting backup of 10.0.0.6..."
            )
            for line in stderr.splitlines():
                sink(LogStream.STDERR, line)
            return code if argv[-1] != "backup-cleanup" else 0
        return 0

    return ScriptedShell(respond)


def test_successful_backup_is_recorded_with_its_log() -> None:
    """A backup that exits 0 ends SUCCEEDED with exit code, outcome and bbr's lines in the log."""
    catalog, shell = MemoryCatalog(), bbr_exits(0)
    run = run_operation(catalog, shell, FakeClock(), SPEC, Operation.BACKUP, OPERATOR)
    assert run.state is RunState.SUCCEEDED
    assert (run.exit_code, run.outcome) == (0, "succeeded")
    assert run.kind is RunKind.BACKUP and run.triggered_by == "alice@laptop"
    assert run.started_at and run.finished_at and run.finished_at > run.started_at
    texts = [line.text for line in catalog.read_log(run.id)]
    assert any("Starting backup of 10.0.0.6" in t for t in texts)
    assert len(catalog.runs) == 1, "no cleanup after a success"


def test_backup_runs_in_its_own_workdir() -> None:
    """bbr runs with cwd and --artifact-path set to <work_root>/<run id>, created first (0700)."""
    catalog, shell = MemoryCatalog(), bbr_exits(0)
    run = run_operation(catalog, shell, FakeClock(), SPEC, Operation.BACKUP, OPERATOR)
    workdir = f"/home/ubuntu/bbr-orchestrator/{run.id}"
    assert shell.calls[0][0] == ("mkdir", "-p", "-m", "0700", workdir)
    argv, cwd, _ = next(c for c in shell.calls if c[0][0] == "bbr")
    assert cwd == workdir
    assert argv[-3:] == ("backup", "--artifact-path", workdir)


def test_unlock_failure_is_not_success_and_triggers_cleanup() -> None:
    """Exit 8 ends FAILED as unlock-failed, keeps stderr as summary, and runs backup-cleanup."""
    stderr = "1 error occurred:\nerror 1:\nError attempting to run post-backup-unlock - exit code 1"
    catalog, shell = MemoryCatalog(), bbr_exits(8, stderr)
    run = run_operation(catalog, shell, FakeClock(), SPEC, Operation.BACKUP, OPERATOR)
    assert run.state is RunState.FAILED
    assert run.outcome == "unlock-failed"
    assert run.error_summary and "post-backup-unlock" in run.error_summary
    cleanups = [r for r in catalog.runs.values() if r.kind is RunKind.BACKUP_CLEANUP]
    assert len(cleanups) == 1
    assert cleanups[0].state is RunState.SUCCEEDED
    assert cleanups[0].triggered_by == f"auto-cleanup after {run.id}"


def test_pre_backup_check_failure_needs_no_cleanup() -> None:
    """A failed pre-backup-check changes nothing, so no cleanup follows it."""
    catalog, shell = MemoryCatalog(), bbr_exits(1)
    run = run_operation(catalog, shell, FakeClock(), SPEC, Operation.PRE_BACKUP_CHECK, OPERATOR)
    assert run.state is RunState.FAILED and run.outcome == "failed"
    assert len(catalog.runs) == 1


def test_err_logs_are_collected_into_the_run_log() -> None:
    """bbr-*.err.log files in the run's workdir are copied into its log."""

    def respond(argv: Sequence[str], sink: LineSink) -> int:
        if argv[0] == "find":
            sink(LogStream.STDOUT, f"{argv[1]}/bbr-2026-11-27T02:00:00Z.err.log")
        elif argv[0] == "cat":
            sink(LogStream.STDOUT, "goroutine 1 [running]: panic")
        elif argv[0] == "bbr":
            return 1 if argv[-1] != "backup-cleanup" else 0
        return 0

    catalog = MemoryCatalog()
    run = run_operation(
        catalog, ScriptedShell(respond), FakeClock(), SPEC, Operation.BACKUP, OPERATOR
    )
    lines = list(catalog.read_log(run.id))
    assert any(line.text == "goroutine 1 [running]: panic" for line in lines)
    assert any(line.stream is LogStream.EVENT and "err.log" in line.text for line in lines)


def test_ssh_failure_mid_run_is_recorded_not_raised() -> None:
    """When the SSH session breaks, the run ends FAILED with the reason, and cleanup is tried."""

    def respond(argv: Sequence[str], sink: LineSink) -> int:
        if argv[0] == "bbr" and argv[-3] == "backup":
            raise SshError("jumpbox.test", "connection reset")
        return 0

    catalog = MemoryCatalog()
    run = run_operation(
        catalog, ScriptedShell(respond), FakeClock(), SPEC, Operation.BACKUP, OPERATOR
    )
    assert run.state is RunState.FAILED
    assert run.error_summary and "connection reset" in run.error_summary
    assert any(r.kind is RunKind.BACKUP_CLEANUP for r in catalog.runs.values())
