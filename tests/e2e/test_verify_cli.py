"""`bbr-orchestrator verify` as a subprocess: a stored backup re-checked from the bucket alone."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from bbr_orchestrator.adapters.catalog import open_catalog, upgrade
from bbr_orchestrator.config import validate_data
from bbr_orchestrator.core.models import RunFilter, RunKind, RunState
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.integration.test_check import check_config_data

EXE = str(Path(sys.executable).parent / "bbr-orchestrator")


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "-c", str(config), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_verify_passes_an_intact_backup_then_catches_a_deleted_object_and_a_flipped_member(
    tmp_path: Path, jumpbox: Jumpbox, bbr_state: Path, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """`verify latest` says intact (exit 0, backup marked restorable); after one tar is deleted
    and a member of another flipped in the bucket it exits 1 naming both, and the backup is
    marked not restorable — without any bbr command run."""
    name = bucket(seaweedfs)
    data = check_config_data(tmp_path, jumpbox, seaweedfs, name)
    data["targets"][0]["host"] = "10.8.0.6"
    config = validate_data(data)
    config.state_dir.mkdir(parents=True)
    upgrade(config.catalog_url())
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    bbrsim.clear_faults(bbr_state)
    backup = _cli(path, "run", "backup", "bosh-director", "--quiet")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    intact = _cli(path, "verify", "latest", "--target", "bosh-director")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "intact" in intact.stdout
    client = seaweedfs.client()
    tars = sorted(
        o["Key"]
        for o in client.list_objects_v2(Bucket=name)["Contents"]
        if o["Key"].endswith(".tar")
    )
    deleted, damaged = tars[:2]
    client.delete_object(Bucket=name, Key=deleted)
    raw = bytearray(client.get_object(Bucket=name, Key=damaged)["Body"].read())
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        member = next(m for m in tar.getmembers() if m.isfile() and m.size > 0)
    raw[member.offset_data] ^= 0x01
    client.put_object(Bucket=name, Key=damaged, Body=bytes(raw))
    calls_before = len(bbrsim.invocations(bbr_state))
    broken = _cli(path, "verify", "latest", "--target", "bosh-director")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert deleted in broken.stderr and damaged in broken.stderr
    assert member.name.lstrip("./") in broken.stderr
    assert len(bbrsim.invocations(bbr_state)) == calls_before, "verify never runs bbr"
    shown = _cli(path, "runs", "show", broken.stdout.split()[1].rstrip(":"))
    assert "marked not restorable" in shown.stdout, shown.stdout
    assert "bbr-orchestrator runs logs" in shown.stdout
    with open_catalog(config.catalog_url()) as catalog:
        runs = catalog.list_runs(RunFilter(target="bosh-director", limit=50))
        stored = next(r for r in runs if r.kind is RunKind.BACKUP)
        verifies = [r for r in runs if r.kind is RunKind.VERIFY]
    assert stored.restorable is False and stored.verified_at is not None
    assert [v.state for v in verifies] == [RunState.FAILED, RunState.SUCCEEDED]
    assert [v.outcome for v in verifies] == ["corrupt", "verified"]
    assert all(v.subject_run_id == stored.id for v in verifies)
