"""`bbr-orchestrator restore … --dry-run` as a subprocess: a go / no-go preview through real SSH
and S3 that never runs bbr, never prompts and records nothing."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bbr_orchestrator.adapters.catalog import open_catalog, upgrade
from bbr_orchestrator.config import Config, validate_data
from bbr_orchestrator.core.models import Run, RunFilter, RunKind
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.integration.test_check import check_config_data

EXE = str(Path(sys.executable).parent / "bbr-orchestrator")


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=subprocess.DEVNULL,  # no terminal, and no --yes: a dry-run must not ask
    )


@pytest.fixture
def director_port() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 standing in for the director's SSH port."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server.getsockname()[1]


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def _setup(
    tmp_path: Path, jumpbox: Jumpbox, seaweedfs: S3Server, bucket_name: str, port: int
) -> tuple[Path, Config]:
    """Director bosh-director at 127.0.0.1:``port``; sandbox-director at a closed port."""
    data: dict[str, Any] = check_config_data(tmp_path, jumpbox, seaweedfs, bucket_name)
    data["targets"][0]["host"] = f"127.0.0.1:{port}"
    closed = f"127.0.0.1:{_closed_port()}"
    data["targets"].append(dict(data["targets"][0], name="sandbox-director", host=closed))
    config = validate_data(data)
    config.state_dir.mkdir(parents=True)
    upgrade(config.catalog_url())
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path, config


def _runs(config: Config) -> list[Run]:
    with open_catalog(config.catalog_url()) as catalog:
        return catalog.list_runs(RunFilter(limit=100))


def _flip_a_member(seaweedfs: S3Server, bucket_name: str) -> tuple[str, str]:
    """Flip one byte inside a tar member in the bucket; returns (object key, member name)."""
    client = seaweedfs.client()
    keys = sorted(
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket_name)["Contents"]
        if o["Key"].endswith(".tar")
    )
    raw = bytearray(client.get_object(Bucket=bucket_name, Key=keys[0])["Body"].read())
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        member = next(m for m in tar.getmembers() if m.isfile() and m.size > 0)
    raw[member.offset_data] ^= 0x01
    client.put_object(Bucket=bucket_name, Key=keys[0], Body=bytes(raw))
    return keys[0], member.name.lstrip("./")


def test_dry_run_says_go_for_an_intact_backup_and_no_go_naming_a_flipped_member(
    tmp_path: Path,
    jumpbox: Jumpbox,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
    director_port: int,
) -> None:
    """An intact backup previews GO (exit 0) listing its part, bbr version and bosh/0's jobs;
    into a director whose port is closed it is NO-GO naming the address; after a byte of a tar
    member is flipped in the bucket it is NO-GO (exit 1) naming the object key and the member.
    No bbr command ever runs, nothing prompts, no run is recorded, the backup is not marked."""
    name = bucket(seaweedfs)
    path, config = _setup(tmp_path, jumpbox, seaweedfs, name, director_port)
    bbrsim.clear_faults(bbr_state)
    backup = _cli(path, "run", "backup", "bosh-director", "--quiet")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    (stored,) = _runs(config)
    calls = len(bbrsim.invocations(bbr_state))

    intact = _cli(path, "restore", "bosh-director", "--from", "latest", "--dry-run")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    out = intact.stdout
    assert "\nGO" in out and "NO-GO" not in out
    assert f"bosh-director (director) backup {stored.id}" in out and "<- this restore" in out
    assert f"bbr version: {bbrsim.VERSION}" in out
    assert "bosh/0: " in out and "fake-db" in out and "fake-blobstore" in out
    assert f"ok        director-reachable  127.0.0.1:{director_port}" in out

    closed = _cli(
        path, "restore", "bosh-director", "--from", stored.id, "--to", "sandbox-director",
        "--dry-run", "--json",
    )  # fmt: skip
    assert closed.returncode == 1, closed.stdout + closed.stderr
    report = json.loads(closed.stdout)
    assert (report["verdict"], report["go"]) == ("no-go", False)
    critical = [c for c in report["checks"] if c["status"] == "critical"]
    assert [c["name"] for c in critical] == ["director-reachable"], critical
    assert any("director-reachable" in r for r in report["reasons"])

    key, member = _flip_a_member(seaweedfs, name)
    broken = _cli(path, "restore", "bosh-director", "--from", stored.id, "--dry-run")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    verdict = broken.stdout.split("NO-GO", 1)[1]
    assert key in verdict and member in verdict and "tar-members" in verdict

    assert len(bbrsim.invocations(bbr_state)) == calls, "a dry-run never runs bbr"
    assert [(r.id, r.kind, r.restorable) for r in _runs(config)] == [
        (stored.id, RunKind.BACKUP, None)
    ], "a dry-run records nothing and marks nothing"
