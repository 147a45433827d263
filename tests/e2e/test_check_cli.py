"""`bbr-orchestrator check` as a subprocess against the test bed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from bbr_orchestrator.adapters.catalog import upgrade
from bbr_orchestrator.config import validate_data
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.integration.test_check import CLIENT_SECRET, check_config_data

EXE = str(Path(sys.executable).parent / "bbr-orchestrator")


def test_check_json_all_ok(
    tmp_path: Path,
    jumpbox: Jumpbox,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """`check --json` on a healthy test bed prints a list of ok records and exits 0."""
    data = check_config_data(tmp_path, jumpbox, seaweedfs, bucket(seaweedfs))
    config = validate_data(data)
    config.state_dir.mkdir(parents=True)
    upgrade(config.catalog_url())
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    secret_file = bbr_state / "deployment_secret"
    secret_file.write_text(CLIENT_SECRET, encoding="utf-8")
    bbrsim.clear_faults(bbr_state)
    try:
        result = subprocess.run(
            [EXE, "-c", str(path), "check", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        secret_file.unlink(missing_ok=True)
    assert result.returncode == 0, result.stdout + result.stderr
    records = json.loads(result.stdout)
    assert isinstance(records, list) and len(records) == 7
    for record in records:
        assert set(record) == {"name", "subject", "status", "detail"}
        assert record["status"] == "ok"
    assert {r["name"] for r in records} == {
        "catalog",
        "object-store",
        "ssh",
        "bbr-version",
        "work-space",
        "pre-backup-check",
    }
    table = subprocess.run(
        [EXE, "-c", str(path), "check", "--target", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert table.returncode == 2 and "no such target: nope" in table.stderr
