"""`bbr-orchestrator prune`, `pin` and `unpin` as subprocesses, on a SQLite catalog and a
SeaweedFS bucket holding a plan's restore points: the dry run lists, a prune deletes, a pinned
backup survives until unpinned, a deleted backup is shown as such and never verified again."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bbr_orchestrator.adapters.catalog import open_catalog, upgrade
from bbr_orchestrator.adapters.s3 import S3ObjectStore
from bbr_orchestrator.config import validate_data
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.integration.test_check import check_config_data
from tests.unit.test_prune import Point, add_point, bucket_problems

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).parent / "bbr-orchestrator")


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "-c", str(config), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _keys(point: Point) -> set[str]:
    return {k for keys in point.keys.values() for k in keys}


def test_dry_run_lists_prune_deletes_and_a_pinned_backup_survives_until_unpinned(
    tmp_path: Path, jumpbox: Jumpbox, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """Four nightly points, keep-last 2: --dry-run names the two oldest "would delete" with the
    reason and changes nothing; after `pin` of the oldest backup, `prune` deletes only the
    second oldest point (objects and rows), `runs show` tells pinned and deleted apart, a
    deleted backup is refused by `verify`; after `unpin` the next prune deletes the oldest."""
    name = bucket(seaweedfs)
    data: dict[str, Any] = check_config_data(tmp_path, jumpbox, seaweedfs, name)
    data["plans"] = [
        {
            "name": "nightly",
            "targets": ["bosh-director", "cf"],
            "schedule": "0 2 * * *",
            "timezone": "UTC",
            "retention": {"keep_last": 2, "min_verified": 1},
        }
    ]
    config = validate_data(data)
    config.state_dir.mkdir(parents=True)
    upgrade(config.catalog_url())
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    store = S3ObjectStore.from_config(config.object_store)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=4)
    with open_catalog(config.catalog_url()) as catalog:
        points = [
            add_point(catalog, store, start + timedelta(days=d), prefix="bbr") for d in range(4)
        ]
    oldest, second = points[0], points[1]
    pinned_run = oldest.runs[0]

    dry = _cli(path, "prune", "--dry-run")

    assert dry.returncode == 0, dry.stdout + dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0] == ("plan nightly (UTC): keep-last 2, min 1 good, incomplete 3d"), dry.stdout
    assert [line.split()[0:2] for line in lines if line.startswith("  ") and "Z  " in line] == [
        ["keep", points[3].id],
        ["keep", points[2].id],
        ["would", "delete"],
        ["would", "delete"],
    ]
    assert f"would delete {second.id}" in dry.stdout
    assert "outside keep-last 2" in dry.stdout
    assert "2 kept, 2 would be deleted (dry run: nothing changed)" in dry.stdout
    listed = {o.key for o in store.list("bbr/")}
    assert _keys(oldest) | _keys(second) <= listed

    pin = _cli(path, "pin", pinned_run[:20], "--reason", "quarterly audit")
    assert pin.returncode == 0, pin.stdout + pin.stderr
    assert f"pinned backup {pinned_run}" in pin.stdout and "quarterly audit" in pin.stdout

    pruned = _cli(path, "prune")

    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert f"deleted      {second.id}" in pruned.stdout
    assert "pinned" in next(line for line in pruned.stdout.splitlines() if oldest.id in line)
    listed = {o.key for o in store.list("bbr/")}
    assert _keys(oldest) <= listed and not _keys(second) & listed
    with open_catalog(config.catalog_url()) as catalog:
        assert bucket_problems(catalog, listed) == []
    shown = _cli(path, "runs", "show", pinned_run)
    assert "quarterly audit" in shown.stdout and "pinned" in shown.stdout
    gone = _cli(path, "runs", "show", second.runs[0])
    assert "deleted" in gone.stdout and "outside keep-last 2" in gone.stdout
    verify = _cli(path, "verify", second.runs[0])
    assert verify.returncode == 2 and "deleted by retention" in verify.stderr

    unpin = _cli(path, "unpin", pinned_run)
    assert unpin.returncode == 0 and f"unpinned backup {pinned_run}" in unpin.stdout
    again = _cli(path, "prune", "nightly")

    assert again.returncode == 0, again.stdout + again.stderr
    assert f"deleted      {oldest.id}" in again.stdout
    listed = {o.key for o in store.list("bbr/")}
    assert listed == _keys(points[2]) | _keys(points[3])
    unknown = _cli(path, "prune", "weekly")
    assert unknown.returncode == 2 and "no plan 'weekly'" in unknown.stderr
