"""Stored backups verified from the object store alone (SeaweedFS): intact, or every fault
named by object key and tar member."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from bbr_orchestrator.actions.verify_backup import verify_backup
from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.s3 import S3ObjectStore
from bbr_orchestrator.ports import ShellFactory
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from tests.integration.test_fetch_artifact import stored_backup


def _backup(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
    host: str,
) -> tuple[S3ObjectStore, str, str]:
    name = bucket(seaweedfs)
    store, key = stored_backup(catalog, shell, tmp_path, bbr_state, seaweedfs, name, host)
    return store, key, name


def _tar_keys(store: S3ObjectStore, key: str) -> list[str]:
    prefix = key.rsplit("/", 1)[0] + "/"
    return sorted(o.key for o in store.list(prefix) if o.key.endswith(".tar"))


def test_an_intact_backup_verifies_every_object_and_member(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """Every object is re-read and re-hashed, every tar member checked: no problem."""
    store, key, _ = _backup(catalog, shell, tmp_path, bbr_state, seaweedfs, bucket, "10.7.1.6")
    report = verify_backup(store, key, buffer_size=256 * 1024)
    assert report.ok, report.problems
    assert report.objects_checked == len(_tar_keys(store, key))
    assert report.members_checked >= report.objects_checked
    assert report.bytes_checked > 6 * 1024 * 1024


def test_a_deleted_object_and_a_corrupted_member_are_both_reported(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """One tar deleted, one member of another flipped in the bucket: both named, by key and
    (for the flip) member, in one verification."""
    store, key, name = _backup(catalog, shell, tmp_path, bbr_state, seaweedfs, bucket, "10.7.2.6")
    client = seaweedfs.client()
    deleted, damaged = _tar_keys(store, key)[:2]
    client.delete_object(Bucket=name, Key=deleted)
    raw = bytearray(client.get_object(Bucket=name, Key=damaged)["Body"].read())
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        member = next(m for m in tar.getmembers() if m.isfile() and m.size > 0)
        offset = member.offset_data
    raw[offset] ^= 0xFF
    client.put_object(Bucket=name, Key=damaged, Body=bytes(raw))
    report = verify_backup(store, key)
    problems = {p.key: p for p in report.problems}
    assert set(problems) == {deleted, damaged}, report.problems
    assert "missing" in problems[deleted].reason
    assert problems[damaged].member is not None
    assert problems[damaged].member.lstrip("./") == member.name.lstrip("./")


def test_rolling_selection_reads_only_the_chosen_objects(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """A selection re-reads only its objects (the rest are counted as skipped)."""
    store, key, _ = _backup(catalog, shell, tmp_path, bbr_state, seaweedfs, bucket, "10.7.3.6")
    first = _tar_keys(store, key)[0]
    report = verify_backup(store, key, select=lambda obj: obj.key == first)
    assert report.ok and report.objects_checked == 1
    assert report.skipped == len(_tar_keys(store, key)) - 1


def test_a_missing_manifest_means_an_incomplete_backup(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """Without its manifest a backup is incomplete by definition, and verification says so."""
    store, key, name = _backup(catalog, shell, tmp_path, bbr_state, seaweedfs, bucket, "10.7.4.6")
    seaweedfs.client().delete_object(Bucket=name, Key=key)
    report = verify_backup(store, key)
    assert [p.reason for p in report.problems] == ["no manifest: the backup is incomplete"]
