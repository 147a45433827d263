"""The README's main-job command, run as a process against its own fresh sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_sandbox_main_job_runs_and_records_every_run(tmp_path: Path) -> None:
    """The sandbox main job backs up both targets by hand, then runs the daemon until its plan
    made a complete restore point, and shows the catalog and the metrics."""
    result = subprocess.run(
        [sys.executable, "-m", "bbr_orchestrator.sandbox", "--dir", str(tmp_path / "sb")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert out.count("succeeded (succeeded)") == 4
    assert "$ bbr-orchestrator runs list" in out
    assert "Backup created of 10.0.0.6" in out, "runs logs shows bbr's output"
    assert "manifest written" in out, "the backup ends with its artifact stored"
    assert "bbr/bosh-director/10.0.0.6_" in out and "bosh-0-fake-db.tar" in out, (
        "runs show lists objects"
    )
    assert "$ bbr-orchestrator daemon" in out
    assert ": complete (3/3 backups stored)" in out, "the demo plan's restore point is complete"
    assert "bbr_orchestrator_build_info{" in out, "the metrics endpoint answered"
    assert "daemon stopped (SIGTERM), exit code 0" in out
    config = tmp_path / "sb" / "config.yml"
    listed = subprocess.run(
        [
            str(Path(sys.executable).parent / "bbr-orchestrator"),
            "-c",
            str(config),
            "runs",
            "list",
            "--state",
            "succeeded",
            "--kind",
            "backup",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count('"kind": "backup"') == 4, "2 by hand, 2 in the restore point"
    secret = (tmp_path / "sb" / "secrets" / "bosh_client_secret").read_text().strip()
    assert secret not in config.read_text(), "the config references secrets, never holds them"
    assert secret not in out + result.stderr
