"""Contract sections 3 and 8: what a healthy bbr prints on stdout and stderr."""

from __future__ import annotations

import re

from .simkit import HOST, LOG_LINE, Sim

BACKUP_SEQUENCE = [
    "Looking for scripts",
    "Detected order: fake-db should be locked before fake-blobstore during backup",
    f"Running pre-checks for backup of {HOST}...",
    f"Starting backup of {HOST}...",
    "Running pre-backup-lock scripts...",
    "Locking fake-db on bosh/0 for backup...",
    "Finished locking fake-db on bosh/0 for backup.",
    "Locking fake-blobstore on bosh/0 for backup...",
    "Running backup scripts...",
    "Backing up fake-db on bosh/0...",
    "Finished backing up fake-db on bosh/0.",
    "Running post-backup-unlock scripts...",
    "Unlocking fake-blobstore on bosh/0...",
    "Unlocking fake-db on bosh/0...",
    "Copying backup -- 12K uncompressed -- for job fake-db on bosh/0...",
    "Copying backup for job fake-db on bosh/0 -- 100% complete",
    "Finished copying backup -- for job fake-db on bosh/0...",
    "Starting validity checks -- for job fake-db on bosh/0...",
    "Finished validity checks -- for job fake-db on bosh/0...",
    f"Backup created of {HOST} on ",
    "Cleaning up...",
]


def messages(stdout: str) -> list[str]:
    return [line.split(" - ", 1)[1] for line in stdout.splitlines() if " - " in line]


def in_order(expected: list[str], actual: list[str]) -> bool:
    """Whether every expected message starts some actual message, in this order."""
    position = 0
    for wanted in expected:
        while position < len(actual) and not actual[position].startswith(wanted):
            position += 1
        if position == len(actual):
            return False
        position += 1
    return True


def test_backup_stdout_follows_the_real_sequence(sim: Sim) -> None:
    """A director backup logs the real bbr sequence, every line `[bbr] date time INFO - msg`."""
    result = sim.director("backup")
    assert result.returncode == 0
    assert all(re.fullmatch(LOG_LINE, line) for line in result.stdout.splitlines())
    assert in_order(BACKUP_SEQUENCE, messages(result.stdout)), result.stdout
    created = next(m for m in messages(result.stdout) if m.startswith("Backup created of"))
    go_time = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} \S+ m=\+\d+\.\d{9}"
    assert re.fullmatch(rf"Backup created of {re.escape(HOST)} on {go_time}", created)


def test_successful_backup_stderr_is_two_newlines(sim: Sim) -> None:
    """Backup, restore and both cleanups print exactly "\\n\\n" on stderr when they succeed."""
    backup = sim.director("backup")
    restore = sim.director("restore", "--artifact-path", str(sim.only_artifact()))
    results = [backup, restore, sim.director("backup-cleanup"), sim.director("restore-cleanup")]
    assert [(r.returncode, r.stderr) for r in results] == [(0, "\n\n")] * 4


def test_debug_flag_adds_debug_lines(sim: Sim) -> None:
    """`--debug` adds DEBUG lines; without it there are none."""
    plain = sim.director("pre-backup-check")
    args = sim.director_args("backup")
    args.insert(-1, "--debug")
    debug = sim.run(*args)
    assert " DEBUG - " not in plain.stdout
    assert " DEBUG - " in debug.stdout
    assert all(re.fullmatch(LOG_LINE, line) for line in debug.stdout.splitlines())


def test_director_pre_backup_check_verdict(sim: Sim) -> None:
    """Director pre-backup-check ends with `Director can be backed up.`, stderr empty, exit 0."""
    result = sim.director("pre-backup-check")
    lines = result.stdout.splitlines()
    assert (result.returncode, result.stderr, lines[-1]) == (0, "", "Director can be backed up.")
    assert lines[-2].endswith(f"INFO - Running pre-checks for backup of {HOST}...")
    assert sim.err_logs() == []


def test_deployment_pre_backup_check_verdict(sim: Sim) -> None:
    """Deployment pre-backup-check prints `[HH:MM:SS] Deployment 'cf' can be backed up.`."""
    result = sim.deployment("pre-backup-check")
    assert (result.returncode, result.stderr) == (0, "")
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] Deployment 'cf' can be backed up\.",
                        result.stdout.splitlines()[-1])  # fmt: skip


def test_deployment_pre_backup_check_failure_verdict(sim: Sim) -> None:
    """A deployment that cannot be backed up gets `cannot be backed up.`, exit 1 and the footer."""
    sim.faults(leave_busy=True, once=True)
    result = sim.deployment("pre-backup-check")
    assert result.returncode == 1
    assert any(re.fullmatch(r"\[\d\d:\d\d:\d\d\] Deployment 'cf' cannot be backed up\.", line)
               for line in result.stdout.splitlines())  # fmt: skip
    assert "Directory /var/vcap/store/bbr-backup already exists on instance api/" in result.stderr
    assert "bbr backup-cleanup" in result.stderr


def test_backup_cleanup_output(sim: Sim) -> None:
    """backup-cleanup logs `'<name>' cleaned up` and exits 0."""
    result = sim.director("backup-cleanup")
    assert result.returncode == 0
    assert messages(result.stdout)[-1] == f"'{HOST}' cleaned up"


def test_deployment_backup_names_instances_by_group_and_id(sim: Sim) -> None:
    """Deployment mode logs jobs as `<job> on <group>/<uuid>` for every instance."""
    result = sim.deployment("backup")
    assert result.returncode == 0
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    backing_up = [m for m in messages(result.stdout) if m.startswith("Backing up ")]
    assert len(backing_up) == 3
    assert all(
        re.fullmatch(rf"Backing up \S+ on (api|database)/{uuid}\.\.\.", m) for m in backing_up
    )


def test_slow_drain_prints_progress_periodically(sim: Sim) -> None:
    """A slow copy prints `-- N% complete` lines at the requested interval while it drains."""
    sim.faults(drain_delay_seconds=0.6, progress_interval_seconds=0.1)
    result = sim.director("backup")
    assert result.returncode == 0
    progress = [m for m in messages(result.stdout) if "for job fake-db on bosh/0 -- " in m]
    assert len(progress) >= 4
    percents = [int(re.search(r"-- (\d+)% complete", m).group(1)) for m in progress]  # type: ignore[union-attr]
    assert percents == sorted(percents)
    assert percents[-1] == 100
