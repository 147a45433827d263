"""`check` against the real test bed: sshd + bbr simulator, SeaweedFS, a SQLite catalog."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bbr_orchestrator.adapters.catalog import upgrade
from bbr_orchestrator.config import Config, validate_data
from bbr_orchestrator.core.checks import CheckResult, CheckStatus, exit_code, overall
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from bbr_orchestrator.service.checks import run_checks

DIRECTOR_HOST = "10.0.9.6"
CLIENT_SECRET = "check-client-secret"
WRONG_FINGERPRINT = "SHA256:" + base64.b64encode(bytes(32)).decode().rstrip("=")


def _secret(directory: Path, name: str, value: str) -> dict[str, str]:
    path = directory / name
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return {"file": str(path)}


def check_config_data(
    base: Path, jumpbox: Jumpbox, s3: S3Server, bucket_name: str
) -> dict[str, Any]:
    """A complete config (like the sandbox's) pointing at the test bed; secrets in files."""
    secret_dir = base / "secrets"
    secret_dir.mkdir(mode=0o700, exist_ok=True)
    ca_cert = base / "root_ca_certificate"
    ca_cert.write_text("-----BEGIN CERTIFICATE-----\ncheck\n-----END CERTIFICATE-----\n")
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\ncheck\n-----END OPENSSH PRIVATE KEY-----"
    return {
        "state_dir": str(base / "state"),
        "object_store": {
            "endpoint_url": s3.endpoint_url,
            "bucket": bucket_name,
            "region": s3.region,
            "addressing_style": "path",
            "credentials": {
                "source": "secrets",
                "access_key_id": _secret(secret_dir, "s3_access_key", s3.access_key),
                "secret_access_key": _secret(secret_dir, "s3_secret_key", s3.secret_key),
            },
        },
        "jumpboxes": [
            {
                "name": "check-jumpbox",
                "host": jumpbox.host,
                "port": jumpbox.port,
                "user": jumpbox.user,
                "private_key_file": str(jumpbox.client_key_path),
                "known_hosts_file": str(jumpbox.known_hosts_path),
                "work_root": str(base / "jumpbox-work"),
                "connect_timeout": "5s",
            }
        ],
        "targets": [
            {
                "kind": "director",
                "name": "bosh-director",
                "jumpbox": "check-jumpbox",
                "host": DIRECTOR_HOST,
                "private_key": _secret(secret_dir, "director_key", key),
            },
            {
                "kind": "deployment",
                "name": "cf",
                "jumpbox": "check-jumpbox",
                "bosh_target": f"https://{DIRECTOR_HOST}:25555",
                "client": "bbr_client",
                "client_secret": _secret(secret_dir, "bosh_client_secret", CLIENT_SECRET),
                "ca_cert_path": str(ca_cert),
                "deployment": "cf-check",
            },
        ],
    }


@pytest.fixture
def testbed(bbr_state: Path) -> Iterator[Path]:
    """The simulator accepts our client secret and has no faults; both undone afterwards."""
    secret_file = bbr_state / "deployment_secret"
    secret_file.write_text(CLIENT_SECRET, encoding="utf-8")
    bbrsim.clear_faults(bbr_state)
    yield bbr_state
    bbrsim.clear_faults(bbr_state)
    secret_file.unlink(missing_ok=True)


@pytest.fixture
def data(
    tmp_path: Path, jumpbox: Jumpbox, seaweedfs: S3Server, bucket: BucketFactory, testbed: Path
) -> dict[str, Any]:
    """Config data for a healthy test bed (catalog not yet migrated)."""
    return check_config_data(tmp_path, jumpbox, seaweedfs, bucket(seaweedfs))


def migrated(data: dict[str, Any]) -> Config:
    config = validate_data(data)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(config.catalog_url())
    return config


def by_key(results: list[CheckResult]) -> dict[tuple[str, str], CheckResult]:
    return {(r.name, r.subject): r for r in results}


def test_all_green(data: dict[str, Any], seaweedfs: S3Server) -> None:
    """A healthy test bed yields only OK records for every check, and exit code 0."""
    results = run_checks(migrated(data))
    assert [r for r in results if r.status is not CheckStatus.OK] == []
    assert exit_code(overall(results)) == 0
    names = {(r.name, r.subject) for r in results}
    assert {("ssh", "check-jumpbox"), ("bbr-version", "check-jumpbox")} <= names
    assert {("work-space", "check-jumpbox"), ("pre-backup-check", "bosh-director")} <= names
    assert ("pre-backup-check", "cf") in names
    assert {r.name for r in results} >= {"catalog", "object-store"}
    assert "bytes free" in by_key(results)[("work-space", "check-jumpbox")].detail
    bucket_name = data["object_store"]["bucket"]
    left = seaweedfs.client().list_objects_v2(Bucket=bucket_name).get("Contents", [])
    assert left == []  # the probe object is deleted
    work = Path(data["jumpboxes"][0]["work_root"])
    assert list(work.iterdir()) == []  # the throwaway pre-backup-check dirs are removed


def test_catalog_not_migrated(data: dict[str, Any]) -> None:
    """A catalog without the schema is one CRITICAL record telling to run `db upgrade`."""
    results = run_checks(validate_data(data))
    catalog = [r for r in results if r.name == "catalog"]
    assert len(catalog) == 1 and catalog[0].status is CheckStatus.CRITICAL
    assert "bbr-orchestrator db upgrade" in catalog[0].detail
    assert exit_code(overall(results)) == 2
    assert all(r.status is CheckStatus.OK for r in results if r.name != "catalog")


def test_failing_pre_backup_check_is_critical_for_that_target_only(
    data: dict[str, Any], testbed: Path
) -> None:
    """The director's pre-backup-check failing is CRITICAL for it (with bbr's words); cf is OK."""
    config = migrated(data)
    bbrsim.set_faults(
        testbed,
        {"target": DIRECTOR_HOST, "commands": ["pre-backup-check"], "pre_backup_check_fails": True},
    )
    results = run_checks(config)
    bad = [r for r in results if r.status is not CheckStatus.OK]
    assert [(r.name, r.subject) for r in bad] == [("pre-backup-check", "bosh-director")]
    assert "no backup scripts" in bad[0].detail
    assert "exited 1" in bad[0].detail
    assert exit_code(overall(results)) == 2


def test_wrong_pinned_fingerprint(data: dict[str, Any], jumpbox: Jumpbox) -> None:
    """A host key that differs from the pinned fingerprint: CRITICAL naming both fingerprints."""
    box = data["jumpboxes"][0]
    del box["known_hosts_file"]
    box["host_key_fingerprint"] = WRONG_FINGERPRINT
    results = run_checks(migrated(data), targets=["cf"])
    ssh = by_key(results)[("ssh", "check-jumpbox")]
    assert ssh.status is CheckStatus.CRITICAL
    assert WRONG_FINGERPRINT in ssh.detail and jumpbox.host_key_fingerprint in ssh.detail
    assert str(jumpbox.port) in ssh.detail
    dependent = by_key(results)[("pre-backup-check", "cf")]
    assert dependent.status is CheckStatus.CRITICAL and "unreachable" in dependent.detail
    assert ("pre-backup-check", "bosh-director") not in by_key(results)


def test_wrong_bucket(data: dict[str, Any]) -> None:
    """A bucket that does not exist: the object-store record is CRITICAL and names it."""
    data["object_store"]["bucket"] = "no-such-bucket-for-check"
    results = run_checks(migrated(data))
    store = [r for r in results if r.name == "object-store"]
    assert len(store) == 1 and store[0].status is CheckStatus.CRITICAL
    assert "no-such-bucket-for-check" in store[0].detail
    assert [r for r in results if r.status is not CheckStatus.OK] == store
