"""Contract section 1: `bbr deployment --all-deployments`."""

from __future__ import annotations

import re

from bbr_orchestrator.sandbox.bbrsim import Faults, is_busy, set_faults

from .simkit import Sim


def test_all_deployments_backup_writes_one_log_per_deployment(sim: Sim) -> None:
    """--all-deployments backs up every known deployment, each with a `<d>_<ts>.log`, exit 0."""
    result = sim.deployment("backup", deployment=None)
    assert result.returncode == 0, result.stderr
    assert [p.name.split("_")[0] for p in sim.artifacts()] == ["cf", "p-mysql"]
    logs = sorted(sim.work.glob("*.log"))
    assert [re.fullmatch(r"(cf|p-mysql)_\d{8}T\d{6}Z\.log", p.name) is not None for p in logs] == [
        True, True]  # fmt: skip
    assert "INFO - Backing up mysql-backup on database/" in logs[0].read_text()
    assert result.stdout.splitlines()[-1] == "All 2 deployments backed up."


def test_all_deployments_exit_1_whatever_the_failure(sim: Sim) -> None:
    """Any deployment failing (even an unlock failure, 8 alone) makes --all-deployments exit 1."""
    sim.faults(target="p-mysql", fail_scripts=["mysql-backup/post-backup-unlock"])
    result = sim.deployment("backup", deployment=None)
    assert result.returncode == 1
    assert result.stderr.startswith("1 out of 2 deployments cannot be backed up:\np-mysql\n")
    assert "Deployment 'p-mysql': 1 error occurred:" in result.stderr
    assert "bbr deployment --all-deployments backup-cleanup" in result.stderr
    assert re.search(r"^\[\d\d:\d\d:\d\d\] ERROR: failed to backup p-mysql$", result.stdout, re.M)
    assert sim.err_logs()


def test_all_deployments_pre_backup_check_and_cleanup(sim: Sim) -> None:
    """pre-backup-check and backup-cleanup run for every deployment with one verdict each."""
    set_faults(sim.state, [Faults(target="cf", leave_busy=True, once=True)])
    check = sim.deployment("pre-backup-check", deployment=None)
    assert check.returncode == 1
    assert "Deployment 'cf' cannot be backed up." in check.stdout
    assert "Deployment 'p-mysql' can be backed up." in check.stdout
    assert is_busy(sim.state, "cf")
    assert not is_busy(sim.state, "p-mysql")
    cleanup = sim.deployment("backup-cleanup", deployment=None)
    assert cleanup.returncode == 0
    assert "Cleaned up deployment 'cf'" in cleanup.stdout
    assert cleanup.stdout.splitlines()[-1] == "All 2 deployments were cleaned up."
    assert not is_busy(sim.state, "cf")
    assert sim.deployment("pre-backup-check", deployment=None).returncode == 0


def test_new_deployment_joins_all_deployments(sim: Sim) -> None:
    """A deployment first used by name becomes one the director knows about."""
    assert sim.deployment("pre-backup-check", deployment="redis").returncode == 0
    result = sim.deployment("pre-backup-check", deployment=None)
    assert "Found 3 deployments:" in result.stdout
