"""`bbr-orchestrator drill` as a subprocess: a plan's restore point (taken by the daemon)
restored into a sandbox director through real SSH + S3, timed, smoke-tested, recorded."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bbr_orchestrator.adapters.catalog import open_catalog, upgrade
from bbr_orchestrator.config import Config, validate_data
from bbr_orchestrator.core.models import (
    RestorePointState,
    Run,
    RunFilter,
    RunKind,
    RunState,
    Trigger,
)
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.e2e.test_restore_cli import EXE, _cli, _restores, _tree
from tests.integration.test_check import check_config_data

pytestmark = pytest.mark.slow

PLAN = "nightly"
EVERY_4S = "*/4 * * * * *"
FAILING_SMOKE = ["sh", "-c", "echo 'smoke: director did not answer' >&2; exit 3"]


def _setup(
    tmp_path: Path,
    jumpbox: Jumpbox,
    seaweedfs: S3Server,
    bucket: BucketFactory,
    hosts: tuple[str, str],
    smoke: list[str] | None,
) -> tuple[Path, Config]:
    """bosh-director (host A) in plan PLAN, fired every 4 s, with a drill into
    sandbox-director (host B); a migrated SQLite catalog."""
    data: dict[str, Any] = check_config_data(tmp_path, jumpbox, seaweedfs, bucket(seaweedfs))
    data["targets"][0]["host"] = hosts[0]
    data["targets"].append(dict(data["targets"][0], name="sandbox-director", host=hosts[1]))
    drill: dict[str, Any] = {
        "target": "sandbox-director",
        "source": "bosh-director",
        "schedule": "0 6 1 1 *",
        "timezone": "UTC",
    }
    if smoke is not None:
        drill["smoke_command"] = smoke
    data["plans"] = [
        {
            "name": PLAN,
            "targets": ["bosh-director"],
            "schedule": EVERY_4S,
            "timezone": "UTC",
            "drills": [drill],
        },
        {"name": "no-drills", "targets": ["bosh-director"], "schedule": "0 2 * * *",
         "timezone": "UTC", "paused": True},
    ]  # fmt: skip
    data["daemon"] = {
        "heartbeat_interval": "1s",
        "stale_after": "4s",
        "shutdown_grace": "60s",
        "misfire_grace": "30s",
        "preflight_checks": False,
    }
    data["metrics"] = {"enabled": False}
    data["logging"] = {"level": "info", "format": "json"}
    config = validate_data(data)
    config.state_dir.mkdir(parents=True)
    upgrade(config.catalog_url())
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path, config


def _complete_point(path: Path, config: Config, bbr_state: Path) -> Run:
    """Run the daemon until PLAN has a complete restore point; its backup of bosh-director."""
    bbrsim.clear_faults(bbr_state)
    log_path = path.parent / "daemon.log"
    with log_path.open("wb") as sink:
        daemon = subprocess.Popen(
            [EXE, "-c", str(path), "daemon"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            with open_catalog(config.catalog_url()) as catalog:
                points = catalog.list_restore_points(
                    plan=PLAN, states=[RestorePointState.COMPLETE], limit=1
                )
            if points:
                break
            assert daemon.poll() is None, log_path.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, "no complete restore point within 90 s"
            time.sleep(0.3)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(90) == 0, log_path.read_text(errors="replace")[-4000:]
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
    with open_catalog(config.catalog_url()) as catalog:
        (point,) = catalog.list_restore_points(
            plan=PLAN, states=[RestorePointState.COMPLETE], limit=1
        )
        (backup,) = catalog.list_runs(
            RunFilter(restore_point_id=point.id, kind=RunKind.BACKUP, target="bosh-director")
        )
    return backup


def _drill_runs(config: Config) -> list[Run]:
    with open_catalog(config.catalog_url()) as catalog:
        return catalog.list_runs(RunFilter(kind=RunKind.DRILL, limit=50))


def test_drill_restores_the_latest_restore_point_into_the_sandbox_and_records_its_rto(
    tmp_path: Path, jumpbox: Jumpbox, bbr_state: Path, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """`drill nightly` restores the plan's latest complete restore point into
    sandbox-director (its files become the source's as backed up; the source gets no bbr
    restore), runs the smoke command, exits 0; the DRILL run records the backup and an RTO
    that `runs show` prints and its JSON carries."""
    hosts = ("10.8.1.41", "10.8.1.42")
    source = bbrsim.director_job_dir(bbr_state, hosts[0], "fake-db")
    sandbox = bbrsim.director_job_dir(bbr_state, hosts[1], "fake-db")
    (source / "dump.sql").write_text("source data for the drill\n", encoding="utf-8")
    (sandbox / "dump.sql").write_text("sandbox data\n", encoding="utf-8")
    smoke = ["grep", "-q", "source data for the drill", str(sandbox / "dump.sql")]
    path, config = _setup(tmp_path, jumpbox, seaweedfs, bucket, hosts, smoke)
    expected = _tree(source)
    backup = _complete_point(path, config, bbr_state)

    result = _cli(path, "drill", PLAN, "--live")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _tree(sandbox) == expected
    assert _restores(bbr_state, hosts[0]) == []
    assert [i["exit_code"] for i in _restores(bbr_state, hosts[1])] == [0]
    (run,) = _drill_runs(config)
    assert (run.state, run.target, run.plan, run.subject_run_id, run.trigger) == (
        RunState.SUCCEEDED,
        "sandbox-director",
        PLAN,
        backup.id,
        Trigger.OPERATOR,
    )
    assert run.rto_seconds is not None and run.duration_seconds is not None
    assert 0 < run.rto_seconds <= run.duration_seconds
    assert run.id in result.stdout and backup.id in result.stdout
    assert f"{run.rto_seconds:.1f} s" in result.stdout
    assert "smoke:" in result.stdout and "passed" in result.stdout
    assert "==> running the smoke command grep" in result.stderr

    shown = _cli(path, "runs", "show", run.id)
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"^rto\s+{run.rto_seconds:.1f} s", shown.stdout, re.MULTILINE)
    as_json = json.loads(_cli(path, "runs", "show", run.id, "--json").stdout)
    assert as_json["rto_seconds"] == pytest.approx(run.rto_seconds)
    assert as_json["kind"] == "drill"


def test_a_failing_smoke_command_fails_the_drill_and_runs_show_explains_it(
    tmp_path: Path, jumpbox: Jumpbox, bbr_state: Path, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """A smoke command exiting 3 after a good restore: `drill nightly --drill
    sandbox-director` exits 1, the run is failed as smoke-failed with its RTO kept, and
    `runs show` says in plain words that the restore worked but the smoke command did not."""
    hosts = ("10.8.1.43", "10.8.1.44")
    path, config = _setup(tmp_path, jumpbox, seaweedfs, bucket, hosts, FAILING_SMOKE)
    _complete_point(path, config, bbr_state)

    result = _cli(path, "drill", PLAN, "--drill", "sandbox-director", "--quiet")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed" in result.stdout and "smoke-failed" in result.stdout
    assert "exited 3" in result.stderr and "smoke: director did not answer" in result.stderr
    (run,) = _drill_runs(config)
    assert (run.state, run.outcome, run.exit_code) == (RunState.FAILED, "smoke-failed", 0)
    assert run.rto_seconds is not None and run.rto_seconds > 0
    assert [i["exit_code"] for i in _restores(bbr_state, hosts[1])] == [0]
    shown = _cli(path, "runs", "show", run.id)
    assert "restore itself succeeded" in shown.stdout and "smoke command" in shown.stdout
    assert "rto" in shown.stdout
    logs = _cli(path, "runs", "logs", run.id).stdout
    assert "the smoke command exited 3" in logs


def test_drill_refuses_without_a_complete_restore_point_and_names_bad_plans(
    tmp_path: Path, jumpbox: Jumpbox, bbr_state: Path, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """No complete restore point yet: refused (exit 1) naming plan and source, nothing
    recorded or restored. An unknown plan, a plan without drills or an unknown drill target
    is a usage error (exit 2) naming the plan."""
    hosts = ("10.8.1.45", "10.8.1.46")
    path, config = _setup(tmp_path, jumpbox, seaweedfs, bucket, hosts, None)
    refused = _cli(path, "drill", PLAN)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refused" in refused.stdout and PLAN in refused.stdout
    assert "bosh-director" in refused.stdout
    assert _drill_runs(config) == []
    assert _restores(bbr_state, hosts[1]) == []
    for args, words in (
        (["nope"], "'nope'"),
        (["no-drills"], "'no-drills' has no drills"),
        ([PLAN, "--drill", "bosh-director"], "no drill into 'bosh-director'"),
    ):
        usage = _cli(path, "drill", *args)
        assert usage.returncode == 2, usage.stdout + usage.stderr
        assert words in usage.stderr
    assert _cli(path, "drill", "--help").returncode == 0
