"""Pruning against a real S3 server (SeaweedFS) and a real SQLite catalog: an interrupted prune
and its re-run, and an object under S3 Object Lock keeping its backup."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog, upgrade
from bbr_orchestrator.adapters.s3 import S3ObjectStore
from bbr_orchestrator.core.retention import Policy
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from tests.integration.test_s3_store import store_for
from tests.unit.test_prune import (
    T0,
    Crash,
    add_point,
    bucket_problems,
    nightly,
    prune,
)


class CrashingStore:
    """The real store, but the process "dies" on the n-th delete request (before sending it)."""

    def __init__(self, store: S3ObjectStore, crash_on: int) -> None:
        self._store = store
        self._left = crash_on

    def delete(self, keys: Sequence[str]) -> None:
        self._left -= 1
        if self._left == 0:
            raise Crash
        self._store.delete(keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[SqlCatalog]:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    upgrade(url)
    with open_catalog(url) as opened:
        yield opened


def _listed(store: S3ObjectStore) -> set[str]:
    return {o.key for o in store.list("bbr/")}


@pytest.mark.parametrize("crash_on", [1, 2, 3, 6])
def test_an_interrupted_prune_and_its_rerun_leave_no_manifest_without_data(
    crash_on: int,
    tmp_path: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
    catalog: SqlCatalog,
) -> None:
    """A prune killed at a delete request leaves no manifest without its data and no object
    without a live catalog row; the re-run deletes exactly the dropped points' objects and
    marks their rows deleted."""
    store = store_for(seaweedfs, bucket(seaweedfs), tmp_path)
    points = nightly(catalog, store, 4, prefix="bbr")
    kept = {k for p in points[2:] for keys in p.keys.values() for k in keys}
    assert len(_listed(store)) == 4 * 2 * 4

    with pytest.raises(Crash):
        prune(catalog, CrashingStore(store, crash_on), T0 + timedelta(days=4))  # type: ignore[arg-type]
    assert bucket_problems(catalog, _listed(store)) == []

    report = prune(catalog, store, T0 + timedelta(days=4))

    assert report.failed == ()
    assert _listed(store) == kept
    assert bucket_problems(catalog, _listed(store)) == []
    for point in points[:2]:
        assert catalog.get_restore_point(point.id).deleted_at is not None
        assert all(catalog.get_run(r).deleted_at is not None for r in point.runs)
    assert all(catalog.get_run(r).deleted_at is None for p in points[2:] for r in p.runs)


def test_an_object_under_object_lock_keeps_its_backup_and_the_rest_goes(
    tmp_path: Path, seaweedfs: S3Server, bucket: BucketFactory, catalog: SqlCatalog
) -> None:
    """One object of the oldest backup under a governance lock for a day: that backup keeps
    every object and its catalog row ("retained until <date>"); the other dropped backup of
    the same point and an older point's backups go."""
    name = bucket(seaweedfs, versioning=True, object_lock=True)
    store = store_for(seaweedfs, name, tmp_path)
    oldest = add_point(catalog, store, T0 - timedelta(days=1), prefix="bbr")
    older = add_point(catalog, store, T0 - timedelta(days=2), prefix="bbr")
    nightly(catalog, store, 2, prefix="bbr")
    locked_run, free_run = oldest.runs
    locked_key = oldest.keys[locked_run][0]
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    seaweedfs.client().put_object_retention(
        Bucket=name, Key=locked_key, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}
    )

    report = prune(catalog, store, datetime.now(UTC), Policy(keep_last=2, min_good=1))

    (failed,) = report.failed
    assert failed.point.id == oldest.id
    assert failed.problems == (
        f"backup {locked_run}: retained until {until:%Y-%m-%d %H:%M:%S}Z, not deleted yet",
    )
    listed = _listed(store)
    assert set(oldest.keys[locked_run]) <= listed
    assert not set(oldest.keys[free_run]) & listed
    assert not {k for keys in older.keys.values() for k in keys} & listed
    assert catalog.get_run(locked_run).delete_reason is None
    assert catalog.get_restore_point(oldest.id).deleted_at is None
    assert catalog.get_restore_point(older.id).deleted_at is not None
