"""Encrypted backups (real sshd + bbr simulator + SeaweedFS): stored as ciphertext, verified,
fetched back byte-identical and restored; a tampered ciphertext chunk refused before bbr."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.bbr_operation import run_operation
from bbr_orchestrator.actions.fetch_artifact import FetchSettings, fetch_artifact
from bbr_orchestrator.actions.upload import StreamSettings
from bbr_orchestrator.actions.verify_backup import verify_backup
from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.adapters.encryption import EncryptingStore, Keyring
from bbr_orchestrator.adapters.encryption.format import DEFAULT_CHUNK, MAGIC, TAG
from bbr_orchestrator.adapters.s3 import S3ObjectStore
from bbr_orchestrator.adapters.s3.retry import RetryPolicy
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.layout import parse_manifest
from bbr_orchestrator.core.models import RunState
from bbr_orchestrator.errors import ArtifactCorrupt
from bbr_orchestrator.ports import ShellFactory
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from tests.integration.bbr_targets import OPERATOR, director

MiB = 1024 * 1024
KEYS = Keyring({"key-a": os.urandom(32), "key-b": os.urandom(32)})
RETRY = RetryPolicy(attempts=2, base_delay=0.1, max_delay=0.2)
FETCH = FetchSettings(buffer_size=1 * MiB, retry_backoff=0.1)
TAR = "bosh-0-fake-db.tar"


def store_for(server: S3Server, bucket: str, key_id: str | None) -> EncryptingStore:
    """The store as wiring builds it: S3 under prefix ``bbr`` behind the encryption."""
    return EncryptingStore(
        S3ObjectStore(server.client(), bucket, "bbr", retry=RETRY), KEYS, key_id, prefix="bbr"
    )


def encrypted_backup(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    server: S3Server,
    bucket: str,
    host: str,
) -> str:
    """A real backup with a 6 MiB tar (two 5 MiB-class parts) encrypted under ``key-a``;
    returns its manifest key."""
    bbrsim.set_faults(
        bbr_state,
        {
            "target": host,
            "commands": ["backup"],
            "once": True,
            "large_artifacts": {"fake-db": 6 * MiB},
        },
    )
    streaming = StreamSettings(parts_in_flight=2, min_part_size=5 * MiB, retry_backoff=0.1)
    storage = Storage(
        store=store_for(server, bucket, "key-a"),
        prefix="bbr",
        orchestrator_version="test",
        settings=streaming,
        encryption_key_id="key-a",
    )
    run = run_operation(
        catalog, shell, SystemClock(), director(tmp_path, host), Operation.BACKUP, OPERATOR,
        storage=storage,
    )  # fmt: skip
    assert run.state is RunState.SUCCEEDED, run.error_summary
    listing = server.client().list_objects_v2(Bucket=bucket)["Contents"]
    (key,) = [o["Key"] for o in listing if o["Key"].endswith("/manifest.json")]
    return str(key)


def restores(bbr_state: Path) -> list[dict[str, object]]:
    return [i for i in bbrsim.invocations(bbr_state) if i.get("subcommand") == "restore"]


def test_an_encrypted_backup_is_verified_fetched_byte_identical_and_restored(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """The bucket holds ciphertext for every object but the plain manifest, which records the
    key id and the plaintext's sizes and SHA-256s; a reader holding the keyring (no active
    key, as verify and restore build it) verifies every member, fetches the artifact
    byte-identical onto the jumpbox, and the simulator's bbr restores it."""
    name, host = bucket(seaweedfs), "10.8.3.1"
    key = encrypted_backup(catalog, shell, tmp_path, bbr_state, seaweedfs, name, host)
    client = seaweedfs.client()
    raw_manifest = client.get_object(Bucket=name, Key=key)["Body"].read()
    manifest = parse_manifest(raw_manifest, key)
    assert json.loads(raw_manifest)["encryption_key_id"] == "key-a"
    assert manifest.encryption_key_id == "key-a"
    reader = store_for(seaweedfs, name, None)
    for obj in manifest.objects:
        stored = client.get_object(Bucket=name, Key=obj.key)["Body"].read()
        assert stored.startswith(MAGIC) and b"key-a" in stored[:32], obj.key
        assert hashlib.sha256(stored).hexdigest() != obj.sha256
        assert len(stored) > obj.size + TAG * (obj.size // DEFAULT_CHUNK)
        found = reader.head(obj.key)
        assert found is not None and found.size == obj.size, "head() gives the plaintext size"
    assert next(o for o in manifest.objects if o.name == TAR).size > 6 * MiB

    report = verify_backup(reader, key, buffer_size=256 * 1024)
    assert report.ok, report.problems
    assert report.members_checked >= report.objects_checked >= 1

    box = shell()
    try:
        fetched = fetch_artifact(
            box, shell, reader, manifest_key=key, workdir=str(tmp_path / "restore"), settings=FETCH
        )
    finally:
        box.close()
    for obj in manifest.objects:
        local = (Path(fetched.path) / obj.name).read_bytes()
        assert len(local) == obj.size and hashlib.sha256(local).hexdigest() == obj.sha256
    before = len(restores(bbr_state))
    run = run_operation(
        catalog, shell, SystemClock(), director(tmp_path, host), Operation.RESTORE, OPERATOR,
        artifact_path=fetched.path,
    )  # fmt: skip
    assert run.state is RunState.SUCCEEDED, run.error_summary
    new = restores(bbr_state)[before:]
    assert [(i["exit_code"], i.get("artifact_path")) for i in new] == [(0, fetched.path)]


def test_a_tampered_ciphertext_chunk_is_refused_before_bbr_and_named_by_verify(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """One flipped byte in a ciphertext chunk of the tar (size unchanged): the fetch fails
    naming the object and the chunk, leaves nothing on the jumpbox and bbr never runs; a
    verification reports the same object."""
    name, host = bucket(seaweedfs), "10.8.3.2"
    key = encrypted_backup(catalog, shell, tmp_path, bbr_state, seaweedfs, name, host)
    tar_key = key.removesuffix("manifest.json") + TAR
    client = seaweedfs.client()
    data = bytearray(client.get_object(Bucket=name, Key=tar_key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=name, Key=tar_key, Body=bytes(data))
    reader = store_for(seaweedfs, name, None)
    workdir = tmp_path / "restore"
    before = len(restores(bbr_state))
    box = shell()
    try:
        with pytest.raises(ArtifactCorrupt) as caught:
            fetch_artifact(
                box, shell, reader, manifest_key=key, workdir=str(workdir), settings=FETCH
            )
    finally:
        box.close()
    assert caught.value.file == tar_key and "fails authentication" in caught.value.reason
    assert list(workdir.iterdir()) == [], "the artifact directory is removed"
    assert len(restores(bbr_state)) == before, "bbr never ran"

    report = verify_backup(reader, key)
    assert [(p.key, "fails authentication" in p.reason) for p in report.problems] == [
        (tar_key, True)
    ]
