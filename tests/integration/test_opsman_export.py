"""Ops Manager installation exports: om stand-in on the real sshd jumpbox, into a real S3 bucket."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.opsman_export import OpsmanRun, run_opsman_export
from bbr_orchestrator.actions.upload import Progress
from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.adapters.s3 import S3ObjectStore
from bbr_orchestrator.adapters.s3.retry import RetryPolicy
from bbr_orchestrator.core.layout import parse_manifest
from bbr_orchestrator.core.models import LogStream, RunKind, RunState, TargetKind
from bbr_orchestrator.core.om_argv import OmConnection, export_installation_argv, om_environment
from bbr_orchestrator.ports import MultipartUpload, ShellFactory
from bbr_orchestrator.sandbox import omsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.integration.bbr_targets import OPERATOR

PASSWORD = "opsman-pw-7f3a9c1e55d2"
PASSPHRASE = "decrypt-me-0b8e44a1"


@pytest.fixture(scope="session")
def om_state(jumpbox: Jumpbox) -> Path:
    """The om stand-in's state dir behind ``jumpbox`` (faults, invocation records)."""
    return Path(jumpbox.env[omsim.STATE_ENV])


def opsman(tmp_path: Path, url: str) -> OpsmanRun:
    """An Ops Manager target whose credentials reach om through its environment only."""
    connection = OmConnection(url, skip_ssl_validation=True, request_timeout_seconds=7200)
    return OpsmanRun(
        target=f"opsman-{url.split('//')[1]}",
        build_argv=lambda output: export_installation_argv("om", connection, output),
        work_root=str(tmp_path / "work"),
        env=om_environment(username="admin", password=PASSWORD, decryption_passphrase=PASSPHRASE),
        timeout_seconds=120,
    )


class WriteOrder:
    """Our ObjectStore port around the real S3 store, noting the order objects are written."""

    def __init__(self, inner: S3ObjectStore) -> None:
        self.inner = inner
        self.keys: list[str] = []

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        self.keys.append(key)

    def start_upload(self, key: str) -> MultipartUpload:
        self.keys.append(key)
        return self.inner.start_upload(key)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def storage(
    server: S3Server, bucket: str, progress: Progress | None = None, order: list[str] | None = None
) -> Storage:
    inner = S3ObjectStore(
        server.client(), bucket, "bbr", retry=RetryPolicy(attempts=2, base_delay=0.1, max_delay=0.2)
    )
    store = WriteOrder(inner)
    if order is not None:
        store.keys = order
    return Storage(
        store=store,  # type: ignore[arg-type]
        prefix="bbr",
        orchestrator_version="test",
        progress=progress,
    )


def objects(server: S3Server, bucket: str) -> dict[str, bytes]:
    client = server.client()
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing
    }


def invocations_for(om_state: Path, url: str) -> list[Mapping[str, object]]:
    return [r for r in omsim.invocations(om_state) if r.get("target") == url]


def test_export_is_stored_with_manifest_last_and_checksums_recorded(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    om_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """A successful export ends SUCCEEDED with installation.zip + manifest.json in the bucket
    and the catalog's sizes and SHA-256s equal to the stored bytes; the jumpbox copy is gone."""
    name, url = bucket(seaweedfs), "https://opsman-1.example.internal"
    order: list[str] = []
    run = run_opsman_export(
        catalog,
        shell,
        SystemClock(),
        opsman(tmp_path, url),
        OPERATOR,
        storage=storage(seaweedfs, name, order=order),
    )
    assert (run.state, run.outcome, run.exit_code) == (RunState.SUCCEEDED, "succeeded", 0)
    assert (run.kind, run.target_kind) == (RunKind.OPSMAN_EXPORT, TargetKind.OPSMAN)
    stored = objects(seaweedfs, name)
    prefix = f"bbr/opsman-opsman-1.example.internal/installation_{run.id}/"
    assert order == [prefix + "installation.zip", prefix + "manifest.json"], "manifest last"
    assert set(stored) == set(order)
    assert stored[prefix + "installation.zip"] == omsim.installation_zip(url)
    manifest = parse_manifest(stored[prefix + "manifest.json"], "manifest.json")
    (entry,) = manifest.objects
    assert (manifest.run_id, manifest.target_kind) == (run.id, TargetKind.OPSMAN)
    assert entry.sha256 == hashlib.sha256(stored[entry.key]).hexdigest()
    recorded = {a.object_key: (a.size_bytes, a.sha256) for a in catalog.list_artifacts(run.id)}
    assert recorded == {k: (len(v), hashlib.sha256(v).hexdigest()) for k, v in stored.items()}
    assert run.bytes_total == len(stored[prefix + "installation.zip"])
    assert not (tmp_path / "work" / run.id).exists(), "the jumpbox copy goes once stored"
    lines = [line.text for line in catalog.read_log(run.id)]
    assert "exporting installation" in lines and "finished exporting installation" in lines


def test_om_failure_fails_the_run_with_its_reason_and_stores_nothing(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    om_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """om exiting 1 ends FAILED with om's error in error_summary, no object in the bucket, and
    the run directory (with the partial download) kept on the jumpbox."""
    name, url = bucket(seaweedfs), "https://opsman-2.example.internal"
    omsim.set_faults(
        om_state, {"target": url, "fail": "Ops Manager is applying changes", "once": True}
    )
    run = run_opsman_export(
        catalog,
        shell,
        SystemClock(),
        opsman(tmp_path, url),
        OPERATOR,
        storage=storage(seaweedfs, name),
    )
    assert (run.state, run.outcome, run.exit_code) == (RunState.FAILED, "failed", 1)
    assert run.error_summary and "Ops Manager is applying changes" in run.error_summary
    assert objects(seaweedfs, name) == {}
    assert catalog.list_artifacts(run.id) == []
    assert (tmp_path / "work" / run.id / "installation.zip").stat().st_size > 0


def test_credentials_reach_om_only_through_its_environment(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    om_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """om got the password and passphrase (by SHA-256) in its environment, while neither
    appears in its command line nor anywhere in the run log or the catalog row."""
    name, url = bucket(seaweedfs), "https://opsman-3.example.internal"
    run = run_opsman_export(
        catalog,
        shell,
        SystemClock(),
        opsman(tmp_path, url),
        OPERATOR,
        storage=storage(seaweedfs, name),
    )
    assert run.state is RunState.SUCCEEDED, run.error_summary
    (record,) = invocations_for(om_state, url)
    creds = record["credentials"]
    assert isinstance(creds, dict)
    assert creds["OM_PASSWORD"]["sha256"] == hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert (
        creds["OM_DECRYPTION_PASSPHRASE"]["sha256"]
        == hashlib.sha256(PASSPHRASE.encode()).hexdigest()
    )
    assert record["credential_flags_in_argv"] == [] and record["secret_in_argv"] is False
    argv = record["argv"]
    assert isinstance(argv, list)
    assert not any(PASSWORD in a or PASSPHRASE in a for a in argv)
    log_text = "\n".join(line.text for line in catalog.read_log(run.id))
    assert PASSWORD not in log_text and PASSPHRASE not in log_text
    assert PASSWORD not in repr(catalog.get_run(run.id))


def test_file_changed_during_upload_fails_the_checksum_comparison(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    om_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """A zip that changes on the jumpbox after it was read no longer matches the jumpbox's
    SHA-256: the run fails (upload-failed), no manifest is written, the zip stays."""
    name, url = bucket(seaweedfs), "https://opsman-4.example.internal"

    def flip_a_byte(_n: int) -> None:
        (path,) = (tmp_path / "work").glob("*/installation.zip")
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))

    run = run_opsman_export(
        catalog,
        shell,
        SystemClock(),
        opsman(tmp_path, url),
        OPERATOR,
        storage=storage(seaweedfs, name, progress=flip_a_byte),
    )
    assert (run.state, run.outcome) == (RunState.FAILED, "upload-failed")
    assert run.error_summary and "SHA-256 on the jumpbox" in run.error_summary
    assert not any(k.endswith("manifest.json") for k in objects(seaweedfs, name))
    assert catalog.list_artifacts(run.id) == []
    assert (tmp_path / "work" / run.id / "installation.zip").is_file()


@pytest.mark.parametrize(("damage", "reason"), [("truncate", "truncated"), ("corrupt", "damaged")])
def test_broken_zip_from_om_is_refused_before_upload(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    om_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
    damage: str,
    reason: str,
) -> None:
    """om saying "finished" over a cut-short or damaged zip fails the run (upload-failed)
    before anything is stored; the file stays on the jumpbox."""
    name, url = bucket(seaweedfs), f"https://opsman-5-{damage}.example.internal"
    omsim.set_faults(om_state, {"target": url, "damage": damage, "once": True})
    run = run_opsman_export(
        catalog,
        shell,
        SystemClock(),
        opsman(tmp_path, url),
        OPERATOR,
        storage=storage(seaweedfs, name),
    )
    assert (run.state, run.outcome, run.exit_code) == (RunState.FAILED, "upload-failed", 0)
    assert run.error_summary and reason in run.error_summary
    assert objects(seaweedfs, name) == {}
    assert (tmp_path / "work" / run.id / "installation.zip").is_file()


def test_cancel_stops_om_with_sigterm(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    om_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """Cancelling a slow export sends om SIGTERM: the run ends CANCELLED within seconds and
    nothing is stored."""
    name, url = bucket(seaweedfs), "https://opsman-6.example.internal"
    omsim.set_faults(om_state, {"target": url, "delay_seconds": 60, "once": True})
    cancel = threading.Event()

    def observer(_stream: LogStream, text: str) -> None:
        if text == "exporting installation":
            cancel.set()

    run = run_opsman_export(
        catalog,
        shell,
        SystemClock(),
        opsman(tmp_path, url),
        OPERATOR,
        storage=storage(seaweedfs, name),
        cancel=cancel,
        observer=observer,
    )
    assert (run.state, run.outcome) == (RunState.CANCELLED, "cancelled")
    assert run.duration_seconds is not None and run.duration_seconds < 30
    assert objects(seaweedfs, name) == {}
    (record,) = invocations_for(om_state, url)
    assert record["signal"] == "SIGTERM"


def test_manifest_lists_the_zip_with_its_jumpbox_checksum(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    om_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """A multi-MiB export (several SSH reads) is stored byte-exact and its manifest entry names
    the key, size and SHA-256 of the zip om wrote."""
    name, url = bucket(seaweedfs), "https://opsman-7.example.internal"
    omsim.set_faults(om_state, {"target": url, "size_bytes": 3 << 20, "once": True})
    run = run_opsman_export(
        catalog,
        shell,
        SystemClock(),
        opsman(tmp_path, url),
        OPERATOR,
        storage=storage(seaweedfs, name),
    )
    assert run.state is RunState.SUCCEEDED, run.error_summary
    stored = objects(seaweedfs, name)
    (key,) = [k for k in stored if k.endswith("manifest.json")]
    entries = json.loads(stored[key])["objects"]
    expected = omsim.installation_zip(url, 3 << 20)
    assert [(e["name"], e["size"], e["sha256"]) for e in entries] == [
        ("installation.zip", len(expected), hashlib.sha256(expected).hexdigest())
    ]
