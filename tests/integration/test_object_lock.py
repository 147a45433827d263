"""S3 Object Lock against SeaweedFS, which enforces it on versioned, lock-enabled buckets."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.bbr_operation import run_operation
from bbr_orchestrator.actions.upload import StreamSettings
from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.adapters.s3 import ClientLimits, RetryPolicy, S3ObjectStore
from bbr_orchestrator.config import validate_data
from bbr_orchestrator.config.object_store import ObjectStoreConfig
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.checks import CheckResult, CheckStatus
from bbr_orchestrator.core.models import RunState
from bbr_orchestrator.errors import DeleteFailed, StorageError
from bbr_orchestrator.ports import ShellFactory
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from bbr_orchestrator.service.checks import run_checks
from tests.integration.bbr_targets import OPERATOR, director
from tests.integration.test_check import check_config_data

MiB = 1024 * 1024
FAST = RetryPolicy(attempts=2, base_delay=0.05, max_delay=0.1)
LIMITS = ClientLimits(connect_timeout=2.0, read_timeout=10.0, parallel_parts=2)
SMALL_PARTS = StreamSettings(parts_in_flight=2, min_part_size=5 * MiB, retry_backoff=0.1)


def lock_settings(
    server: S3Server, bucket: str, tmp_path: Path, mode: str, retain_for: str
) -> ObjectStoreConfig:
    """An ObjectStoreConfig with object lock; credentials in secret files, as in production."""
    (tmp_path / "access").write_text(server.access_key)
    (tmp_path / "secret").write_text(server.secret_key)
    data: dict[str, Any] = {
        "endpoint_url": server.endpoint_url,
        "bucket": bucket,
        "prefix": "bbr",
        "region": server.region,
        "addressing_style": "path",
        "credentials": {
            "source": "secrets",
            "access_key_id": {"file": str(tmp_path / "access")},
            "secret_access_key": {"file": str(tmp_path / "secret")},
        },
        "object_lock": {"mode": mode, "retain_for": retain_for},
    }
    return ObjectStoreConfig.model_validate(data)


def locked_store(
    server: S3Server, bucket: str, tmp_path: Path, *, mode: str = "compliance", retain: str = "1h"
) -> S3ObjectStore:
    settings = lock_settings(server, bucket, tmp_path, mode, retain)
    return S3ObjectStore.from_config(settings, limits=LIMITS, retry=FAST)


def write_objects(store: S3ObjectStore, folder: str) -> dict[str, bytes]:
    """A multipart object (one small part: fast) and a small put under ``bbr/<folder>/``."""
    big, small = bytes(range(256)) * 64, b'{"manifest": true}\n'
    upload = store.start_upload(store.key(folder, "data.tar"))
    upload.upload_part(1, big)
    upload.complete()
    store.put(store.key(folder, "manifest.json"), small)
    return {store.key(folder, "data.tar"): big, store.key(folder, "manifest.json"): small}


def versions(server: S3Server, bucket: str, prefix: str) -> list[str]:
    page = server.client().list_object_versions(Bucket=bucket, Prefix=prefix)
    return [v["Key"] for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]]


def read(store: S3ObjectStore, key: str) -> bytes:
    reader, chunks = store.open_read(key), []
    buffer = memoryview(bytearray(MiB))
    while n := reader.readinto(buffer):
        chunks.append(bytes(buffer[:n]))
    reader.close()
    return b"".join(chunks)


def test_backup_objects_are_written_with_the_retention(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """Every object of a real backup (multipart tar, small puts, manifest) carries the
    configured mode and retain-until = write time + retain_for, as the store and head() say."""
    name, host = bucket(seaweedfs, versioning=True, object_lock=True), "10.8.8.1"
    bbrsim.set_faults(
        bbr_state,
        {
            "target": host,
            "commands": ["backup"],
            "once": True,
            "large_artifacts": {"fake-db": 6 * MiB},
        },
    )
    (tmp_path / "s").mkdir()
    store = locked_store(seaweedfs, name, tmp_path / "s", mode="governance", retain="2d")
    storage = Storage(store=store, prefix="bbr", orchestrator_version="t", settings=SMALL_PARTS)
    before = datetime.now(UTC)
    run = run_operation(
        catalog,
        shell,
        SystemClock(),
        director(tmp_path, host),
        Operation.BACKUP,
        OPERATOR,
        storage=storage,
    )
    after = datetime.now(UTC)
    assert run.state is RunState.SUCCEEDED, run.error_summary
    keys = [o.key for o in store.list("bbr/")]
    assert any(k.endswith("/manifest.json") for k in keys)
    assert any(k.endswith("-fake-db.tar") for k in keys)
    sizes = {o.key: o.size for o in store.list("bbr/")}
    assert max(sizes.values()) > 5 * MiB  # the tar went up in parts
    client = seaweedfs.client()
    for key in keys:
        retention = client.get_object_retention(Bucket=name, Key=key)["Retention"]
        assert retention["Mode"] == "GOVERNANCE"
        until = retention["RetainUntilDate"].astimezone(UTC)
        assert before + timedelta(days=2) - timedelta(seconds=1) <= until
        assert until <= after + timedelta(days=2, seconds=1)
        head = store.head(key)
        assert head is not None and head.retain_until == until


def test_delete_before_retain_until_is_refused_and_reported(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """A delete before retain-until is refused by the store: DeleteFailed names each key as
    "retained until <date> (compliance mode)" and the data stays readable."""
    name = bucket(seaweedfs, versioning=True, object_lock=True)
    store = locked_store(seaweedfs, name, tmp_path, mode="compliance", retain="1h")
    written = write_objects(store, "run-1")
    with pytest.raises(DeleteFailed) as failed:
        store.delete(list(written))
    assert set(failed.value.failures) == set(written)
    for key in written:
        head = store.head(key)
        assert head is not None and head.retain_until is not None
        date = head.retain_until.isoformat().replace("+00:00", "Z")
        assert failed.value.failures[key] == f"retained until {date} (compliance mode)"
        assert read(store, key) == written[key]
    assert "retained until" in str(failed.value)


def test_governance_mode_without_bypass_is_refused(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """Governance retention is enforced too: we never send the bypass header."""
    name = bucket(seaweedfs, versioning=True, object_lock=True)
    store = locked_store(seaweedfs, name, tmp_path, mode="governance", retain="1h")
    requests: list[dict[str, str]] = []
    store.client.meta.events.register(
        "before-send.s3.*", lambda request, **_: requests.append(dict(request.headers))
    )
    key = store.key("run-2", "manifest.json")
    store.put(key, b"{}")
    with pytest.raises(DeleteFailed) as failed:
        store.delete([key])
    assert failed.value.failures[key].startswith("retained until ")
    assert failed.value.failures[key].endswith("(governance mode)")
    assert read(store, key) == b"{}"
    assert all("x-amz-bypass-governance-retention" not in {h.lower() for h in r} for r in requests)


def test_delete_after_retain_until_removes_every_version(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """Once retain-until has passed, delete removes every version and delete marker of each
    key (a plain delete would only hide the data behind a marker); neighbours stay."""
    name = bucket(seaweedfs, versioning=True, object_lock=True)
    store = locked_store(seaweedfs, name, tmp_path, mode="compliance", retain="2s")
    written = write_objects(store, "run-3")
    neighbour = store.key("run-3", "data.tar.keep")
    store.put(neighbour, b"stays")
    first = next(iter(written))
    seaweedfs.client().delete_object(Bucket=name, Key=first)  # an old-style delete marker
    until = max(h.retain_until for k in written if (h := store.head(k)) and h.retain_until)
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.5)
    store.delete(list(written))
    assert versions(seaweedfs, name, "bbr/run-3/") == [neighbour]
    assert store.head(first) is None


def test_lock_headers_on_a_bucket_without_lock_fail_with_a_hint(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """Writing with a retention into a bucket without object lock fails at once, saying why."""
    name = bucket(seaweedfs)
    store = locked_store(seaweedfs, name, tmp_path)
    with pytest.raises(StorageError, match="object lock is configured: the bucket must be"):
        store.put(store.key("x", "manifest.json"), b"{}")
    with pytest.raises(StorageError, match="object lock is configured"):
        store.start_upload(store.key("x", "data.tar"))


def object_checks(
    tmp_path: Path, jumpbox: Jumpbox, server: S3Server, name: str, lock: dict[str, str] | None
) -> dict[str, CheckResult]:
    """The object store records of ``check`` (no targets: nothing runs on the jumpbox)."""
    data = check_config_data(tmp_path, jumpbox, server, name)
    if lock is not None:
        data["object_store"]["object_lock"] = lock
    results = run_checks(validate_data(data), targets=[])
    return {r.name: r for r in results if r.name.startswith("object-")}


def test_check_probes_a_locked_bucket(
    tmp_path: Path, jumpbox: Jumpbox, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """`check` with object lock on a lock-enabled bucket: lock OK, and the probe object is
    refused deletion until its short retain-until date, then deleted (no version left)."""
    name = bucket(seaweedfs, versioning=True, object_lock=True)
    found = object_checks(
        tmp_path, jumpbox, seaweedfs, name, {"mode": "compliance", "retain_for": "35d"}
    )
    assert found["object-lock"].status is CheckStatus.OK, found["object-lock"].detail
    assert "compliance mode for 35d" in found["object-lock"].detail
    assert found["object-store"].status is CheckStatus.OK, found["object-store"].detail
    assert "refused deletion until its retain-until date" in found["object-store"].detail
    assert versions(seaweedfs, name, "") == []


def test_check_without_lock_on_the_bucket_is_critical(
    tmp_path: Path, jumpbox: Jumpbox, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """`check` is CRITICAL when the config asks for object lock and the bucket has none; a
    lock-enabled bucket without the setting is a WARNING (deletes would only add markers)."""
    plain = bucket(seaweedfs)
    found = object_checks(tmp_path, jumpbox, seaweedfs, plain, {"mode": "governance"})
    assert found["object-lock"].status is CheckStatus.CRITICAL
    assert "object lock not enabled" in found["object-lock"].detail
    assert found["object-store"].status is CheckStatus.OK  # probed without lock headers
    locked = bucket(seaweedfs, versioning=True, object_lock=True)
    (tmp_path / "2").mkdir()
    found = object_checks(tmp_path / "2", jumpbox, seaweedfs, locked, None)
    assert found["object-lock"].status is CheckStatus.WARNING
    assert "object_lock is not set" in found["object-lock"].detail
