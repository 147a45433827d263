"""Memory while streaming an artifact to S3 is bounded, measured (the uploading process's own
peak RSS, VmHWM) rather than assumed: an artifact 5 times larger costs no more."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox

MiB = 1024 * 1024
PART_MIB = 8
ARTIFACT = "big-deployment_20260101T000000Z"
REPO = Path(__file__).resolve().parents[2]


def _member(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(4 * MiB, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def make_artifact(workdir: Path, file_mib: int, files: int = 3) -> int:
    """A bbr artifact dir of ``files`` tars of ``file_mib`` random MiB each (two members per tar)
    with a matching ``metadata``; returns its size in bytes."""
    directory = workdir / ARTIFACT
    directory.mkdir(parents=True, mode=0o700)
    artifacts = []
    for i in range(files):
        stage = workdir / f"stage-{i}"
        stage.mkdir()
        half = file_mib * MiB // 2
        checksums = {f"./m{j}.bin": _member(stage / f"m{j}.bin", half) for j in (0, 1)}
        subprocess.run(
            ["tar", "-C", str(stage), "-c", "-f", str(directory / f"bosh-0-job{i}.tar"), "."],
            check=True,
        )
        subprocess.run(["rm", "-rf", str(stage)], check=True)
        artifacts.append({"name": f"job{i}", "checksums": checksums})
    metadata = {
        "instances": [{"name": "bosh", "index": "0", "artifacts": artifacts}],
        "backup_activity": {
            "start_time": "2026/01/01 00:00:00 UTC",
            "finish_time": "2026/01/01 00:10:00 UTC",
        },
    }
    (directory / "metadata").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return sum(p.stat().st_size for p in directory.iterdir())


def upload_peak_rss(
    jumpbox: Jumpbox, server: S3Server, bucket: str, workdir: Path, run_id: str
) -> tuple[int, dict[str, int]]:
    """Upload ``workdir``'s artifact in a child process; its peak RSS in bytes and its report."""
    job = {
        "host": jumpbox.host,
        "port": jumpbox.port,
        "user": jumpbox.user,
        "key": str(jumpbox.client_key_path),
        "known_hosts": str(jumpbox.known_hosts_path),
        "endpoint_url": server.endpoint_url,
        "region": server.region,
        "bucket": bucket,
        "workdir": str(workdir),
        "run_id": run_id,
        "part_mib": PART_MIB,
    }
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
    }
    child = subprocess.run(
        [sys.executable, "-m", "tests.integration.upload_child", json.dumps(job)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-4000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    return int(report.pop("peak")), report


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_artifact_size(
    jumpbox: Jumpbox, moto_s3: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """Peak RSS uploading 768 MiB (3x the 256 MiB bound) stays within 48 MiB of uploading
    144 MiB (already enough to fill every part buffer) and under 256 MiB."""
    name = bucket(moto_s3)
    small_dir, large_dir = tmp_path / "small", tmp_path / "large"
    small = make_artifact(small_dir, 48)
    large = make_artifact(large_dir, 256)
    assert large >= 5 * small
    small_peak, small_report = upload_peak_rss(jumpbox, moto_s3, name, small_dir, "small")
    large_peak, large_report = upload_peak_rss(jumpbox, moto_s3, name, large_dir, "large")
    assert small_report == large_report == {"objects": 4, "members": 6}
    print(f"peak RSS {small_peak // MiB} MiB ({small // MiB} MiB artifact)", end=", ")
    print(f"{large_peak // MiB} MiB ({large // MiB} MiB artifact)")
    # 624 MiB more data; RSS noise between runs of the same size is up to ~20 MiB.
    assert large_peak - small_peak < 48 * MiB, (small_peak, large_peak)
    assert large_peak < 256 * MiB, large_peak
