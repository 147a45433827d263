"""Contract sections 2 and 3: the exit bitmask and the error blocks on stderr, fault by fault."""

from __future__ import annotations

import re

import pytest

from bbr_orchestrator.sandbox.bbrsim import Faults, locked_jobs, set_faults

from .simkit import BACKUP_CLEANUP_FOOTER, HOST, Sim

UNLOCK_FAILURE_STDERR = (
    "1 error occurred:\nerror 1:\n1 error occurred:\nerror 1:\n"
    "Error attempting to run post-backup-unlock for job fake-db on bosh/0: "
    "injected failure in fake-db/post-backup-unlock - exit code 1\n"
    f"{BACKUP_CLEANUP_FOOTER}\n"
)
BACKUP_FAILURE_STDERR = (
    "1 error occurred:\nerror 1:\n1 error occurred:\nerror 1:\n"
    "Error attempting to run backup for job fake-db on bosh/0: "
    "injected failure in fake-db/backup - exit code 1\n\n"
)


@pytest.mark.parametrize(
    ("faults", "code"),
    [
        (Faults(fail_scripts=["fake-db/backup"]), 1),
        (Faults(fail_scripts=["fake-db/pre-backup-lock"]), 4),
        (Faults(fail_scripts=["fake-db/post-backup-unlock"]), 8),
        (Faults(fail_scripts=["fake-db/pre-backup-lock", "fake-db/post-backup-unlock"]), 12),
        (Faults(fail_scripts=["fake-db/backup", "fake-blobstore/post-backup-unlock"]), 9),
        (Faults(fail_scripts=["fake-blobstore/backup"], cleanup_fails=True), 17),
        (Faults(cleanup_fails=True), 16),
    ],
    ids=[
        "backup-1",
        "lock-4",
        "unlock-8",
        "lock+unlock-12",
        "backup+unlock-9",
        "backup+cleanup-17",
        "cleanup-16",
    ],
)
def test_backup_exit_bits(sim: Sim, faults: Faults, code: int) -> None:
    """Each injected backup fault yields bbr's exit bits (1, 4, 8, 16 and the combos 12, 9, 17)."""
    set_faults(sim.state, faults)
    result = sim.director("backup")
    assert result.returncode == code, result.stderr
    assert result.returncode & 2 == 0


def test_unlock_failure_stderr_is_verbatim(sim: Sim) -> None:
    """A post-backup-unlock failure prints the contract's error block and backup-cleanup footer."""
    sim.faults(fail_scripts=["fake-db/post-backup-unlock"])
    result = sim.director("backup")
    assert (result.returncode, result.stderr) == (8, UNLOCK_FAILURE_STDERR)


def test_backup_script_failure_stderr_is_verbatim(sim: Sim) -> None:
    """A backup script failure prints the contract's error block with no footer, exit 1."""
    sim.faults(fail_scripts=["fake-db/backup"])
    result = sim.director("backup")
    assert (result.returncode, result.stderr) == (1, BACKUP_FAILURE_STDERR)


def test_two_errors_are_numbered_in_one_block(sim: Sim) -> None:
    """Lock and unlock failures make one `2 errors occurred:` block with both scripts' stderr."""
    sim.faults(fail_scripts=["fake-db/pre-backup-lock", "fake-db/post-backup-unlock"])
    result = sim.director("backup")
    assert result.returncode == 12
    assert result.stderr.startswith("2 errors occurred:\nerror 1:\n1 error occurred:\nerror 1:\n")
    assert "injected failure in fake-db/pre-backup-lock - exit code 1error 2:\n" in result.stderr
    assert "injected failure in fake-db/post-backup-unlock - exit code 1\n" in result.stderr
    assert result.stderr.endswith(BACKUP_CLEANUP_FOOTER + "\n")


def test_unlock_failure_keeps_a_complete_artifact_and_a_locked_job(sim: Sim) -> None:
    """After exit 8 the artifact is complete and the job stays locked until backup-cleanup."""
    sim.faults(fail_scripts=["fake-db/post-backup-unlock"], once=True)
    assert sim.director("backup").returncode == 8
    metadata = (sim.only_artifact() / "metadata").read_text()
    assert "name: fake-db" in metadata and "name: fake-blobstore" in metadata
    assert "finish_time:" in metadata
    assert locked_jobs(sim.state, HOST) == ["bosh/0/fake-db"]
    assert sim.director("backup-cleanup").returncode == 0
    assert locked_jobs(sim.state, HOST) == []


@pytest.mark.parametrize(
    ("script", "code", "footer"),
    [("pre-restore-lock", 1, False), ("restore", 1, False), ("post-restore-unlock", 8, True)],
)
def test_restore_exit_bits(sim: Sim, script: str, code: int, footer: bool) -> None:
    """Restore faults: pre-restore-lock and restore failures are 1, post-restore-unlock is 8."""
    assert sim.director("backup").returncode == 0
    sim.faults(fail_scripts=[f"fake-db/{script}"])
    result = sim.director("restore", "--artifact-path", str(sim.only_artifact()))
    assert result.returncode == code
    assert f"injected failure in fake-db/{script} - exit code 1" in result.stderr
    assert ("bbr restore-cleanup" in result.stderr) is footer


def test_err_log_written_on_failure_only(sim: Sim) -> None:
    """Every failure writes `bbr-<RFC3339 UTC>.err.log` into the working directory; success none."""
    assert sim.director("backup").returncode == 0
    assert sim.err_logs() == []
    sim.faults(fail_scripts=["fake-db/backup"])
    failed = sim.work / "failed"
    failed.mkdir()
    assert sim.director("backup", cwd=failed).returncode == 1
    [log] = sim.err_logs(failed)
    assert re.fullmatch(r"bbr-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.err\.log", log.name)
    assert "injected failure in fake-db/backup" in log.read_text()


def test_pre_backup_check_failure_fault(sim: Sim) -> None:
    """The pre-check fault fails pre-backup-check (`Director cannot be backed up.`) and backup."""
    sim.faults(pre_backup_check_fails=True)
    check = sim.director("pre-backup-check")
    assert check.returncode == 1
    assert check.stdout.splitlines()[-1] == "Director cannot be backed up."
    assert (
        check.stderr == f"1 error occurred:\nerror 1:\nDeployment '{HOST}' has no backup scripts\n"
    )
    assert sim.director("backup").returncode == 1
    assert sim.artifacts() == []


def test_auth_failure_fault(sim: Sim) -> None:
    """The auth fault makes director and deployment commands fail with exit 1 and an err.log."""
    sim.faults(auth_fails=True)
    director = sim.director("backup")
    assert director.returncode == 1
    assert "unable to authenticate" in director.stderr
    deployment = sim.deployment("backup")
    assert deployment.returncode == 1
    assert "401" in deployment.stderr
    assert sim.artifacts() == []
    assert sim.err_logs()


def test_failure_is_logged_as_error_lines_on_stdout(sim: Sim) -> None:
    """A failing script shows as an `ERROR -` log line on stdout."""
    sim.faults(fail_scripts=["fake-db/backup"])
    result = sim.director("backup")
    errors = [line for line in result.stdout.splitlines() if " ERROR - " in line]
    assert len(errors) == 1
    assert "injected failure in fake-db/backup" in errors[0]
