"""Contract section 5: /var/vcap/store/bbr-backup (the busy marker), cleanups, pre-backup-check."""

from __future__ import annotations

from bbr_orchestrator.sandbox.bbrsim import invocations, is_busy, locked_jobs

from .simkit import BACKUP_CLEANUP_FOOTER, HOST, Sim, tree

BUSY = "Directory /var/vcap/store/bbr-backup already exists on instance bosh/0"


def test_busy_target_refuses_check_backup_and_restore_until_cleanup(sim: Sim) -> None:
    """With the busy marker present, pre-backup-check, backup and restore exit 1 until cleanup."""
    assert sim.director("backup").returncode == 0
    artifact = sim.only_artifact()
    sim.faults(leave_busy=True, once=True)
    check = sim.director("pre-backup-check")
    assert check.returncode == 1
    assert check.stderr == f"1 error occurred:\nerror 1:\n{BUSY}\n"
    assert is_busy(sim.state, HOST)
    backup = sim.director("backup")
    assert backup.returncode == 1
    assert backup.stderr == f"1 error occurred:\nerror 1:\n{BUSY}\n{BACKUP_CLEANUP_FOOTER}\n"
    restore = sim.director("restore", "--artifact-path", str(artifact))
    assert restore.returncode == 1
    assert BUSY in restore.stderr
    assert sim.artifacts() == [artifact]
    assert is_busy(sim.state, HOST)

    cleanup = sim.director("backup-cleanup")
    assert (cleanup.returncode, cleanup.stderr) == (0, "\n\n")
    assert not is_busy(sim.state, HOST)
    assert sim.director("pre-backup-check").returncode == 0
    assert sim.director("restore", "--artifact-path", str(artifact)).returncode == 0


def test_backup_cleanup_is_idempotent(sim: Sim) -> None:
    """backup-cleanup exits 0 and prints `'<name>' cleaned up` even with nothing to clean."""
    for _ in range(2):
        result = sim.director("backup-cleanup")
        assert (result.returncode, result.stderr) == (0, "\n\n")
        assert result.stdout.splitlines()[-1].endswith(f"INFO - '{HOST}' cleaned up")


def test_backup_cleanup_never_touches_local_artifacts(sim: Sim) -> None:
    """backup-cleanup leaves complete and partial artifacts in the working directory alone."""
    assert sim.director("backup").returncode == 0
    sim.faults(fail_scripts=["fake-db/backup"], start_time="2026-01-01T00:00:00Z", once=True)
    assert sim.director("backup").returncode == 1
    before = tree(sim.work)
    assert sim.director("backup-cleanup").returncode == 0
    assert tree(sim.work) == before


def test_restore_cleanup_clears_the_marker(sim: Sim) -> None:
    """restore-cleanup also removes the busy marker and exits 0."""
    sim.faults(leave_busy=True, once=True, commands=["pre-backup-check"])
    assert sim.director("pre-backup-check").returncode == 1
    result = sim.director("restore-cleanup")
    assert (result.returncode, result.stderr) == (0, "\n\n")
    assert not is_busy(sim.state, HOST)


def test_pre_backup_check_changes_nothing(sim: Sim) -> None:
    """pre-backup-check changes nothing in the world or the working directory."""
    sim.director("backup-cleanup")  # creates the default world for HOST
    world = sim.state / "directors" / HOST
    before = (tree(world), tree(sim.work))
    assert sim.director("pre-backup-check").returncode == 0
    assert (tree(world), tree(sim.work)) == before


def test_cleanup_failure_leaves_busy_until_backup_cleanup(sim: Sim) -> None:
    """A failed final cleanup (exit 16) leaves the marker; the next backup fails until cleanup."""
    sim.faults(cleanup_fails=True, once=True)
    result = sim.director("backup")
    assert result.returncode == 16
    assert result.stderr.endswith(BACKUP_CLEANUP_FOOTER + "\n")
    assert is_busy(sim.state, HOST)
    assert sim.director("backup").returncode == 1
    assert sim.director("backup-cleanup").returncode == 0
    assert not is_busy(sim.state, HOST)


def test_persistent_cleanup_fault_fails_backup_cleanup_too(sim: Sim) -> None:
    """With a persistent cleanup fault, backup-cleanup itself fails with bit 16."""
    sim.faults(leave_busy=True, cleanup_fails=True)
    assert sim.director("backup-cleanup").returncode == 16
    assert is_busy(sim.state, HOST)


def test_kill_during_backup_leaves_marker_and_partial_artifact(sim: Sim) -> None:
    """A bbr killed mid-backup leaves the busy marker, a locked platform and only `metadata`."""
    sim.faults(kill_during_backup=True, once=True)
    result = sim.director("backup")
    assert result.returncode == -9
    assert is_busy(sim.state, HOST)
    assert locked_jobs(sim.state, HOST) == ["bosh/0/fake-blobstore", "bosh/0/fake-db"]
    assert [p.name for p in sim.only_artifact().iterdir()] == ["metadata"]
    assert "finish_time" not in (sim.only_artifact() / "metadata").read_text()
    record = invocations(sim.state)[-1]
    assert (record["exit_code"], record["signal"]) == (None, "SIGKILL")


def test_two_backups_at_once_always_collide(sim: Sim) -> None:
    """Two backups of one target started together: exactly one succeeds, the other finds it busy."""
    sim.faults(backup_delay_seconds=1.5)
    processes = []
    for name in ("first", "second"):
        args = sim.director_args("backup", "--artifact-path", str(sim.fresh_dir(name)))
        processes.append(sim.popen(args))
    results = [(p.wait(timeout=30), p.communicate()[1]) for p in processes]
    assert sorted(code for code, _ in results) == [0, 1]
    assert BUSY in next(err for code, err in results if code == 1)
    assert not is_busy(sim.state, HOST)
