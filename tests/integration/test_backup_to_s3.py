"""Backups streamed from the jumpbox (real sshd + bbr simulator) into a real S3 server."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.bbr_operation import run_operation
from bbr_orchestrator.actions.upload import StreamSettings
from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.adapters.s3 import S3ObjectStore
from bbr_orchestrator.adapters.s3.retry import RetryPolicy
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import RunState
from bbr_orchestrator.ports import MultipartUpload, ShellFactory
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import (
    BucketFactory,
    S3Server,
    start_s3_server,
    stop_s3_server,
)
from tests.integration.bbr_targets import OPERATOR, director
from tests.integration.remote_procs import kill_session

MiB = 1024 * 1024
SMALL_PARTS = StreamSettings(parts_in_flight=2, min_part_size=5 * MiB, retry_backoff=0.1)


def storage(server: S3Server, bucket: str, **kw: object) -> Storage:
    store = S3ObjectStore(
        server.client(), bucket, "bbr", retry=RetryPolicy(attempts=2, base_delay=0.1, max_delay=0.2)
    )
    return Storage(
        store=store, prefix="bbr", orchestrator_version="test", settings=SMALL_PARTS, **kw
    )  # type: ignore[arg-type]


def objects(server: S3Server, bucket: str) -> dict[str, bytes]:
    client = server.client()
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing
    }


def open_uploads(server: S3Server, bucket: str) -> list[str]:
    return [
        u["Key"] for u in server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    ]


def test_multi_part_artifact_is_stored_verified_with_manifest_last(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """A backup with a tar larger than the part size lands byte-exact under
    prefix/target/artifact/, with a manifest listing every object and the catalog matching."""
    name, host = bucket(seaweedfs), "10.8.0.1"
    bbrsim.set_faults(
        bbr_state,
        {
            "target": host,
            "commands": ["backup"],
            "once": True,
            "large_artifacts": {"fake-db": 13 * MiB},
        },
    )
    run = run_operation(
        catalog,
        shell,
        SystemClock(),
        director(tmp_path, host),
        Operation.BACKUP,
        OPERATOR,
        storage=storage(seaweedfs, name),
    )
    assert run.state is RunState.SUCCEEDED, run.error_summary
    stored = objects(seaweedfs, name)
    (manifest_key,) = [k for k in stored if k.endswith("/manifest.json")]
    prefix = manifest_key.removesuffix("manifest.json")
    assert prefix.startswith(f"bbr/director-{host}/{host}_")
    manifest = json.loads(stored[manifest_key])
    listed = {o["key"]: o for o in manifest["objects"]}
    assert set(listed) | {manifest_key} == set(stored)
    for key, entry in listed.items():
        assert hashlib.sha256(stored[key]).hexdigest() == entry["sha256"]
        assert len(stored[key]) == entry["size"]
    assert len(stored[prefix + "bosh-0-fake-db.tar"]) > 13 * MiB
    assert listed[prefix + "bosh-0-fake-db.tar"]["member_checksums"] == 3
    assert manifest["bbr_version"] == "1.9.79" and manifest["run_id"] == run.id
    recorded = {a.object_key: a.sha256 for a in catalog.list_artifacts(run.id)}
    assert recorded == {k: hashlib.sha256(v).hexdigest() for k, v in stored.items()}
    assert run.bytes_total == sum(e["size"] for e in listed.values())
    assert not (tmp_path / "work" / run.id).exists(), "the jumpbox copy goes once stored"
    assert open_uploads(seaweedfs, name) == []


def test_corrupt_member_fails_the_run_and_keeps_the_jumpbox_copy(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """A tar member that no longer matches bbr's checksum fails the run naming file and member;
    no manifest is written, no multipart upload stays open, the artifact stays on the jumpbox."""
    name, host = bucket(seaweedfs), "10.8.0.2"
    bbrsim.set_faults(
        bbr_state,
        {
            "target": host,
            "commands": ["backup"],
            "once": True,
            "large_artifacts": {"fake-db": 11 * MiB},
            "corrupt_artifacts": ["fake-db"],
        },
    )
    run = run_operation(
        catalog,
        shell,
        SystemClock(),
        director(tmp_path, host),
        Operation.BACKUP,
        OPERATOR,
        storage=storage(seaweedfs, name),
    )
    assert (run.state, run.outcome) == (RunState.FAILED, "upload-failed")
    assert run.error_summary and "bosh-0-fake-db.tar" in run.error_summary
    assert "./" in run.error_summary, "the member is named"
    assert not any(k.endswith("manifest.json") for k in objects(seaweedfs, name))
    assert open_uploads(seaweedfs, name) == []
    assert (tmp_path / "work" / run.id).is_dir()
    assert catalog.list_artifacts(run.id) == []


def test_s3_server_stopped_mid_upload_fails_the_run_and_keeps_the_artifact(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
) -> None:
    """The object store dying mid-upload ends in a failed run within bounded time, with the
    artifact kept on the jumpbox (nothing lost)."""
    server = start_s3_server("seaweedfs", tmp_path / "s3")
    stopped = threading.Event()
    seen = 0

    def progress(n: int) -> None:
        nonlocal seen
        seen += n
        if seen >= 10 * MiB and not stopped.is_set():
            stopped.set()
            stop_s3_server(server)

    try:
        name = server.create_bucket()
        host = "10.8.0.3"
        bbrsim.set_faults(
            bbr_state,
            {
                "target": host,
                "commands": ["backup"],
                "once": True,
                "large_artifacts": {"fake-db": 40 * MiB},
            },
        )
        run = run_operation(
            catalog,
            shell,
            SystemClock(),
            director(tmp_path, host),
            Operation.BACKUP,
            OPERATOR,
            storage=storage(server, name, progress=progress),
        )
    finally:
        if not stopped.is_set():
            stop_s3_server(server)
    assert stopped.is_set()
    assert (run.state, run.outcome) == (RunState.FAILED, "upload-failed")
    assert run.error_summary and "stays in" in run.error_summary
    (artifact,) = (tmp_path / "work" / run.id).glob(f"{host}_*")
    assert (artifact / "bosh-0-fake-db.tar").stat().st_size > 40 * MiB


class CountingStore:
    """Our ObjectStore port around the real S3 store, counting the parts sent."""

    def __init__(self, inner: S3ObjectStore) -> None:
        self.inner = inner
        self.parts: list[tuple[str, int]] = []

    def start_upload(self, key: str) -> MultipartUpload:
        upload = self.inner.start_upload(key)
        parts = self.parts

        class Counted:
            def __init__(self) -> None:
                self.key = upload.key

            def upload_part(self, number: int, data: memoryview | bytes) -> None:
                parts.append((key, number))
                upload.upload_part(number, data)

            def complete(self) -> None:
                upload.complete()

            def abort(self) -> None:
                upload.abort()

        return Counted()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_ssh_drop_mid_file_resumes_without_resending_parts(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """The SSH session serving a tar is killed mid-file; the upload reconnects, resumes at the
    byte offset, sends every part exactly once, and the stored tar is byte-exact."""
    name, host = bucket(seaweedfs), "10.8.0.4"
    bbrsim.set_faults(
        bbr_state,
        {
            "target": host,
            "commands": ["backup"],
            "once": True,
            "large_artifacts": {"fake-db": 30 * MiB},
        },
    )
    killed = threading.Event()
    seen = 0

    def progress(n: int) -> None:
        nonlocal seen
        seen += n
        # Early: the 16 MiB SSH window must still hold the remote reader back when we kill it.
        if seen >= 5 * MiB and not killed.is_set():
            (tar,) = (tmp_path / "work").glob(f"*/{host}_*/bosh-0-fake-db.tar")
            kill_session(tar)
            killed.set()

    counting = CountingStore(S3ObjectStore(seaweedfs.client(), name, "bbr"))
    run = run_operation(
        catalog,
        shell,
        SystemClock(),
        director(tmp_path, host),
        Operation.BACKUP,
        OPERATOR,
        storage=Storage(
            store=counting,
            prefix="bbr",
            orchestrator_version="test",
            settings=SMALL_PARTS,
            progress=progress,
        ),
    )
    assert killed.is_set()
    assert run.state is RunState.SUCCEEDED, run.error_summary
    tar_parts = [n for key, n in counting.parts if key.endswith("bosh-0-fake-db.tar")]
    assert sorted(tar_parts) == list(range(1, len(tar_parts) + 1)), "each part sent once"
    stored = objects(seaweedfs, name)
    (key,) = [k for k in stored if k.endswith("bosh-0-fake-db.tar")]
    recorded = {a.object_key: a.sha256 for a in catalog.list_artifacts(run.id)}
    assert hashlib.sha256(stored[key]).hexdigest() == recorded[key]
