"""Stored backups fetched back onto the jumpbox (real sshd + SeaweedFS), verified before bbr."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.bbr_operation import run_operation
from bbr_orchestrator.actions.fetch_artifact import FetchSettings, fetch_artifact
from bbr_orchestrator.actions.upload import StreamSettings
from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.adapters.s3 import S3ObjectStore
from bbr_orchestrator.adapters.s3.retry import RetryPolicy
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import RunState
from bbr_orchestrator.errors import ArtifactCorrupt
from bbr_orchestrator.ports import ShellFactory
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from tests.integration.bbr_targets import OPERATOR, director

MiB = 1024 * 1024
SETTINGS = FetchSettings(buffer_size=1 * MiB, retry_backoff=0.1)


def stored_backup(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    server: S3Server,
    bucket: str,
    host: str,
) -> tuple[S3ObjectStore, str]:
    """Run a real backup (simulator -> sshd -> SeaweedFS); returns the store and manifest key."""
    bbrsim.set_faults(
        bbr_state,
        {
            "target": host,
            "commands": ["backup"],
            "once": True,
            "large_artifacts": {"fake-db": 6 * MiB},
        },
    )
    retry = RetryPolicy(attempts=2, base_delay=0.1, max_delay=0.2)
    store = S3ObjectStore(server.client(), bucket, "bbr", retry=retry)
    streaming = StreamSettings(parts_in_flight=2, min_part_size=5 * MiB, retry_backoff=0.1)
    storage = Storage(store=store, prefix="bbr", orchestrator_version="test", settings=streaming)
    run = run_operation(
        catalog,
        shell,
        SystemClock(),
        director(tmp_path, host),
        Operation.BACKUP,
        OPERATOR,
        storage=storage,
    )
    assert run.state is RunState.SUCCEEDED, run.error_summary
    (key,) = [o.key for o in store.list("bbr/") if o.key.endswith("/manifest.json")]
    return store, key


def restores(bbr_state: Path) -> list[dict[str, object]]:
    return [i for i in bbrsim.invocations(bbr_state) if i.get("subcommand") == "restore"]


def test_fetched_artifact_is_byte_identical_and_bbr_restores_it(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """A stored backup fetched into a new run directory is byte-identical to its objects
    (0600 files in a 0700 directory) and the bbr simulator's restore accepts it."""
    name, host = bucket(seaweedfs), "10.8.1.1"
    store, key = stored_backup(catalog, shell, tmp_path, bbr_state, seaweedfs, name, host)
    client = seaweedfs.client()
    box = shell()
    try:
        fetched = fetch_artifact(
            box,
            shell,
            store,
            manifest_key=key,
            workdir=str(tmp_path / "restore-1"),
            settings=SETTINGS,
        )
    finally:
        box.close()
    artifact = Path(fetched.path)
    assert artifact == tmp_path / "restore-1" / fetched.name
    assert stat.S_IMODE(artifact.stat().st_mode) == 0o700
    listed = {o.name: o for o in fetched.manifest.objects}
    assert {p.name for p in artifact.iterdir()} == set(listed) >= {"metadata", "bosh-0-fake-db.tar"}
    for file_name, entry in listed.items():
        local = artifact / file_name
        stored = client.get_object(Bucket=name, Key=entry.key)["Body"].read()
        assert local.read_bytes() == stored, file_name
        assert hashlib.sha256(stored).hexdigest() == entry.sha256
        assert stat.S_IMODE(local.stat().st_mode) == 0o600
    assert listed["bosh-0-fake-db.tar"].size > 6 * MiB

    before = len(restores(bbr_state))
    run = run_operation(
        catalog,
        shell,
        SystemClock(),
        director(tmp_path, host),
        Operation.RESTORE,
        OPERATOR,
        artifact_path=fetched.path,
    )
    assert run.state is RunState.SUCCEEDED, run.error_summary
    new = restores(bbr_state)[before:]
    assert [(i["exit_code"], i.get("artifact_path")) for i in new] == [(0, fetched.path)]


def test_tampered_object_is_refused_and_bbr_never_sees_it(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """One flipped byte in a stored tar: the fetch is refused naming the object key (and
    member), no artifact directory is left on the jumpbox, and bbr is never invoked."""
    name, host = bucket(seaweedfs), "10.8.1.2"
    store, key = stored_backup(catalog, shell, tmp_path, bbr_state, seaweedfs, name, host)
    tar_key = key.removesuffix("manifest.json") + "bosh-0-fake-db.tar"
    client = seaweedfs.client()
    data = bytearray(client.get_object(Bucket=name, Key=tar_key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=name, Key=tar_key, Body=bytes(data))
    before = len(restores(bbr_state))
    workdir = tmp_path / "restore-2"
    box = shell()
    try:
        with pytest.raises(ArtifactCorrupt) as caught:
            fetch_artifact(
                box, shell, store, manifest_key=key, workdir=str(workdir), settings=SETTINGS
            )
    finally:
        box.close()
    assert caught.value.file == tar_key and tar_key in str(caught.value)
    assert caught.value.member is not None and caught.value.member.startswith("./")
    assert list(workdir.iterdir()) == [], "the artifact directory is removed"
    assert len(restores(bbr_state)) == before
