"""Running one bbr operation: run records, streamed log, decoded outcome, automatic cleanup."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

from bbr_orchestrator.actions.bbr_operation import TargetRun, run_operation
from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.core.bbr_argv import DirectorSpec, Operation, director_argv
from bbr_orchestrator.core.models import LogStream, Run, RunKind, RunState, TargetKind, Trigger
from bbr_orchestrator.errors import SshError
from bbr_orchestrator.ports import LineSink, RemoteShell
from tests.unit.fakes import FakeClock, MemoryCatalog, ScriptedShell


def build(op: Operation, workdir: str, artifact_path: str | None) -> tuple[str, ...]:
    spec = DirectorSpec("10.0.0.6", "bbr", f"{workdir}/director_key.pem")
    path = workdir if op is Operation.BACKUP else artifact_path
    return director_argv("bbr", spec, op, artifact_path=path)


SPEC = TargetRun(
    target="bosh-director",
    target_kind=TargetKind.DIRECTOR,
    build_argv=build,
    work_root="/home/ubuntu/bbr-orchestrator",
    run_files={"director_key.pem": b"KEY\n"},
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
            return code if not argv[-1].endswith("-cleanup") else 0
        return 0

    return ScriptedShell(respond)


def run(
    shell: ScriptedShell, operation: Operation = Operation.BACKUP, **kw: Any
) -> tuple[MemoryCatalog, Run]:
    catalog = MemoryCatalog()
    finished = run_operation(
        catalog,
        lambda: shell,
        FakeClock(),
        SPEC,
        operation,
        OPERATOR,
        **kw,
    )
    return catalog, finished


def test_successful_backup_is_recorded_with_its_log() -> None:
    """A backup that exits 0 ends SUCCEEDED with exit code, outcome and bbr's lines in the log."""
    catalog, finished = run(bbr_exits(0))
    assert finished.state is RunState.SUCCEEDED
    assert (finished.exit_code, finished.outcome) == (0, "succeeded")
    assert finished.kind is RunKind.BACKUP and finished.triggered_by == "alice@laptop"
    assert (
        finished.started_at and finished.finished_at and finished.finished_at > finished.started_at
    )
    texts = [line.text for line in catalog.read_log(finished.id)]
    assert any("Starting backup of 10.0.0.6" in t for t in texts)
    assert len(catalog.runs) == 1, "no cleanup after a success"


def test_backup_runs_in_its_own_workdir_with_the_key_copied_and_removed() -> None:
    """bbr runs in <work_root>/<run id>; the director key is written 0600 there, then removed."""
    shell = bbr_exits(0)
    _, finished = run(shell)
    workdir = f"/home/ubuntu/bbr-orchestrator/{finished.id}"
    assert shell.calls[0][0] == ("mkdir", "-p", "-m", "0700", workdir)
    assert shell.files == {f"{workdir}/director_key.pem": (b"KEY\n", 0o600)}
    argv, cwd, _ = next(c for c in shell.calls if c[0][0] == "bbr")
    assert cwd == workdir
    assert argv[-3:] == ("backup", "--artifact-path", workdir)
    assert ("rm", "-f", f"{workdir}/director_key.pem") in [c[0] for c in shell.calls]
    assert shell.closed == 1


def test_pre_backup_check_removes_its_run_directory() -> None:
    """Runs that leave no artifact remove their whole run directory afterwards."""
    shell = bbr_exits(0)
    _, finished = run(shell, Operation.PRE_BACKUP_CHECK)
    assert ("rm", "-rf", f"/home/ubuntu/bbr-orchestrator/{finished.id}") in [
        c[0] for c in shell.calls
    ]


def test_unlock_failure_is_not_success_and_triggers_cleanup() -> None:
    """Exit 8 ends FAILED as unlock-failed, keeps stderr as summary, and runs backup-cleanup."""
    stderr = "1 error occurred:\nerror 1:\nError attempting to run post-backup-unlock - exit code 1"
    catalog, finished = run(bbr_exits(8, stderr))
    assert finished.state is RunState.FAILED
    assert finished.outcome == "unlock-failed"
    assert finished.error_summary and "post-backup-unlock" in finished.error_summary
    cleanups = [r for r in catalog.runs.values() if r.kind is RunKind.BACKUP_CLEANUP]
    assert len(cleanups) == 1
    assert cleanups[0].state is RunState.SUCCEEDED
    assert cleanups[0].triggered_by == f"auto-cleanup after {finished.id}"


def test_pre_backup_check_failure_needs_no_cleanup() -> None:
    """A failed pre-backup-check changes nothing, so no cleanup follows it."""
    catalog, finished = run(bbr_exits(1), Operation.PRE_BACKUP_CHECK)
    assert finished.state is RunState.FAILED and finished.outcome == "failed"
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

    catalog, finished = run(ScriptedShell(respond))
    lines = list(catalog.read_log(finished.id))
    assert any(line.text == "goroutine 1 [running]: panic" for line in lines)
    assert any(line.stream is LogStream.EVENT and "err.log" in line.text for line in lines)


def test_ssh_failure_mid_run_is_recorded_not_raised() -> None:
    """When the SSH session breaks, the run ends FAILED with the reason, and cleanup is tried."""

    def respond(argv: Sequence[str], sink: LineSink) -> int:
        if argv[0] == "bbr" and "backup" in argv and "backup-cleanup" not in argv:
            raise SshError("jumpbox.test", "connection reset")
        return 0

    catalog, finished = run(ScriptedShell(respond))
    assert finished.state is RunState.FAILED
    assert finished.error_summary and "connection reset" in finished.error_summary
    assert any(r.kind is RunKind.BACKUP_CLEANUP for r in catalog.runs.values())


def test_unreachable_jumpbox_is_a_failed_run_with_the_reason() -> None:
    """If the jumpbox cannot be reached, the run is still recorded: FAILED, naming the host."""

    def unreachable() -> RemoteShell:
        raise SshError("[10.0.0.5]:22", "cannot connect: timed out")

    catalog = MemoryCatalog()
    finished = run_operation(
        catalog, unreachable, FakeClock(), SPEC, Operation.PRE_BACKUP_CHECK, OPERATOR
    )
    assert finished.state is RunState.FAILED
    assert finished.error_summary == "jumpbox [10.0.0.5]:22: cannot connect: timed out"
    assert finished.finished_at is not None


def test_cancelled_backup_is_cancelled_and_cleaned_up() -> None:
    """A cancelled backup (bbr killed by SIGTERM) ends CANCELLED and backup-cleanup runs."""
    cancel = threading.Event()

    def respond(argv: Sequence[str], sink: LineSink) -> int:
        if argv[0] == "bbr" and argv[-3] == "backup":
            cancel.set()
            return -1
        return 0

    catalog, finished = run(ScriptedShell(respond), cancel=cancel)
    assert finished.state is RunState.CANCELLED
    assert finished.outcome == "killed"
    assert finished.error_summary and finished.error_summary.startswith("cancelled by request")
    assert [r.kind for r in catalog.runs.values()].count(RunKind.BACKUP_CLEANUP) == 1


def test_observer_sees_lines_live() -> None:
    """An observer (the CLI on a terminal) gets bbr's lines and the orchestrator's events."""
    seen: list[tuple[LogStream, str]] = []
    run(bbr_exits(0), observer=lambda s, t: seen.append((s, t)))
    assert (
        LogStream.STDOUT,
        "[bbr] 2026/11/27 02:00:01 INFO - Starting backup of 10.0.0.6...",
    ) in seen
    assert any(s is LogStream.EVENT and t.startswith("running bbr director") for s, t in seen)


def test_only_the_newest_failed_backup_dirs_are_kept() -> None:
    """With keep_failed_workdirs=2, a third failing backup removes the oldest failed run's dir."""
    catalog, shell, clock = MemoryCatalog(), bbr_exits(1), FakeClock()
    spec = dataclasses.replace(SPEC, keep_failed_workdirs=2)
    runs = [
        run_operation(catalog, lambda: shell, clock, spec, Operation.BACKUP, OPERATOR)
        for _ in range(3)
    ]
    backup_dirs = {f"/home/ubuntu/bbr-orchestrator/{run.id}" for run in runs}
    removed = [p for c in shell.calls if c[0][:2] == ("rm", "-rf") for p in c[0][2:]]
    assert [p for p in removed if p in backup_dirs] == [
        f"/home/ubuntu/bbr-orchestrator/{runs[0].id}"
    ]


def test_a_run_that_breaks_before_bbr_ends_still_removes_the_director_key() -> None:
    """A failure outside bbr's exit (here: a restore whose artifact could not be prepared)
    still removes the copied director key and the restore's directory."""
    from bbr_orchestrator.errors import ArtifactCorrupt

    shell = bbr_exits(0)

    def prepare(jumpbox: object, workdir: str) -> str:
        raise ArtifactCorrupt("bbr/cf/x/bosh-0-fake-db.tar", "./db.sql", "SHA-256 mismatch")

    _catalog, finished = run(shell, Operation.RESTORE, prepare=prepare)
    assert finished.state is RunState.FAILED
    workdir = f"/home/ubuntu/bbr-orchestrator/{finished.id}"
    assert ("rm", "-rf", workdir) in [c[0] for c in shell.calls]
    assert not any(c[0][0] == "bbr" and "restore" in c[0] for c in shell.calls)


def _prepared(_jumpbox: object, workdir: str) -> str:
    return f"{workdir}/artifact"


def test_a_restore_bbr_finished_records_its_rto_and_a_backup_does_not() -> None:
    """A succeeded restore records the seconds from its start until bbr exited (also in its
    log); a failed restore and a backup record none."""
    catalog, restored = run(bbr_exits(0), Operation.RESTORE, prepare=_prepared)
    assert restored.rto_seconds is not None and restored.duration_seconds is not None
    assert 0 < restored.rto_seconds < restored.duration_seconds
    assert any("(RTO)" in line.text for line in catalog.read_log(restored.id))
    _catalog, failed = run(bbr_exits(1), Operation.RESTORE, prepare=_prepared)
    _catalog, backup = run(bbr_exits(0))
    assert failed.rto_seconds is None and backup.rto_seconds is None


def test_after_hook_runs_in_the_workdir_once_bbr_succeeded_and_can_fail_the_run() -> None:
    """`after` runs after bbr succeeded, before the workdir goes, its lines in the run log;
    the failure it returns fails the run with its outcome, keeping exit code and RTO, and no
    cleanup follows (bbr's own work succeeded)."""
    from bbr_orchestrator.actions.bbr_operation import AfterFailure

    shell = bbr_exits(0)
    seen: list[tuple[str, str, int]] = []

    def after(_jumpbox: object, workdir: str, running: Run, log: LineSink) -> AfterFailure:
        seen.append((workdir, running.id, len(shell.calls)))
        log(LogStream.STDOUT, "smoke says no")
        return AfterFailure("smoke-failed", "the smoke command exited 3")

    catalog, finished = run(shell, Operation.RESTORE, prepare=_prepared, after=after)
    workdir = f"/home/ubuntu/bbr-orchestrator/{finished.id}"
    assert seen == [(workdir, finished.id, seen[0][2])]
    rm_index = [c[0] for c in shell.calls].index(("rm", "-rf", workdir))
    assert seen[0][2] <= rm_index, "the hook ran before the workdir was removed"
    assert (finished.state, finished.outcome, finished.exit_code) == (
        RunState.FAILED,
        "smoke-failed",
        0,
    )
    assert finished.error_summary == "the smoke command exited 3"
    assert finished.rto_seconds is not None
    assert "smoke says no" in [line.text for line in catalog.read_log(finished.id)]
    assert len(catalog.runs) == 1, "no restore-cleanup after a successful bbr restore"


def test_after_hook_error_fails_the_run_and_is_skipped_when_bbr_failed() -> None:
    """An OrchestratorError from `after` fails the run (outcome error, with the reason); when
    bbr itself failed the hook never runs."""
    calls: list[str] = []

    def broken(_jumpbox: object, _workdir: str, _run: Run, _log: LineSink) -> None:
        calls.append("after")
        raise SshError("jumpbox.test", "connection lost")

    _catalog, finished = run(bbr_exits(0), Operation.RESTORE, prepare=_prepared, after=broken)
    assert (finished.state, finished.outcome) == (RunState.FAILED, "error")
    assert finished.error_summary is not None and "connection lost" in finished.error_summary
    _catalog, failed = run(bbr_exits(1), Operation.RESTORE, prepare=_prepared, after=broken)
    assert failed.outcome == "failed" and calls == ["after"]
