"""Pins the test bed itself: the sshd jumpbox and the two S3 servers are real and strict."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
import pytest
from botocore.exceptions import ClientError

from bbr_orchestrator.errors import SandboxError
from bbr_orchestrator.sandbox import _proc
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox, fingerprint, running_sshd, start_sshd, stop_sshd

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIB = 1024 * 1024
MARKER_VALUE = "a value with spaces"


# --- helpers ---------------------------------------------------------------------------------


def connect(box: Jumpbox, known_hosts: Path) -> paramiko.SSHClient:
    """A paramiko client that trusts only ``known_hosts`` (RejectPolicy for anything else)."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            box.host,
            port=box.port,
            username=box.user,
            key_filename=str(box.client_key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
            banner_timeout=10,
            auth_timeout=10,
        )
    except BaseException:
        client.close()
        raise
    return client


def run(box: Jumpbox, command: str) -> tuple[int, str, str]:
    """Run ``command`` on the jumpbox with host key verification; (exit code, stdout, stderr)."""
    client = connect(box, box.known_hosts_path)
    try:
        _, stdout, stderr = client.exec_command(command, timeout=30)
        out, err = stdout.read().decode(), stderr.read().decode()
        return stdout.channel.recv_exit_status(), out, err
    finally:
        client.close()


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response.get("Error", {}).get("Code"))


@pytest.fixture(scope="module")
def plain_jumpbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jumpbox]:
    """sshd alone (no bbr simulator), with a marker command in its bin dir."""
    base = tmp_path_factory.mktemp("plain-jumpbox")
    bin_dir = base / "bin"
    bin_dir.mkdir()
    hello = bin_dir / "testbed-hello"
    hello.write_text("#!/bin/sh\necho hello from the test bed\n")
    hello.chmod(0o755)
    with running_sshd(base / "sshd", bin_dir=bin_dir, env={"TESTBED_MARKER": MARKER_VALUE}) as box:
        yield box


# --- sshd ------------------------------------------------------------------------------------


def test_paramiko_connects_with_host_key_verification(plain_jumpbox: Jumpbox) -> None:
    """paramiko logs in with the client key, trusting only the written known_hosts, and runs."""
    code, out, _ = run(plain_jumpbox, "echo ok; exit 3")
    assert (code, out) == (3, "ok\n")


def test_wrong_known_hosts_entry_is_refused(plain_jumpbox: Jumpbox, tmp_path: Path) -> None:
    """A known_hosts entry with another key for [127.0.0.1]:port makes paramiko refuse."""
    other = paramiko.Ed25519Key.from_private_key_file(str(plain_jumpbox.client_key_path))
    wrong = tmp_path / "known_hosts"
    wrong.write_text(
        f"[{plain_jumpbox.host}]:{plain_jumpbox.port} ssh-ed25519 {other.get_base64()}\n"
    )
    with pytest.raises(paramiko.BadHostKeyException):
        connect(plain_jumpbox, wrong)


def test_unknown_host_is_refused(plain_jumpbox: Jumpbox, tmp_path: Path) -> None:
    """With no known_hosts entry for the server, RejectPolicy makes paramiko refuse."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connect(plain_jumpbox, empty)


def test_host_key_fingerprint_is_what_ssh_keygen_prints(plain_jumpbox: Jumpbox) -> None:
    """The exposed fingerprint equals `ssh-keygen -lf known_hosts` and the key the server shows."""
    listed = subprocess.run(
        ["ssh-keygen", "-lf", str(plain_jumpbox.known_hosts_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed[1] == plain_jumpbox.host_key_fingerprint
    assert listed[-1] == "(ED25519)"
    client = connect(plain_jumpbox, plain_jumpbox.known_hosts_path)
    try:
        transport = client.get_transport()
        assert transport is not None
        shown = transport.get_remote_server_key()
    finally:
        client.close()
    assert fingerprint(f"{shown.get_name()} {shown.get_base64()}") == listed[1]


def test_session_path_and_env_come_from_setenv(plain_jumpbox: Jumpbox) -> None:
    """Sessions have the bin dir first on PATH (commands there resolve) and the extra env vars."""
    code, out, err = run(
        plain_jumpbox,
        'echo "$PATH"; command -v testbed-hello; testbed-hello; echo "$TESTBED_MARKER"',
    )
    assert code == 0, err
    path, where, hello, marker = out.splitlines()
    assert plain_jumpbox.bin_dir is not None
    assert path.split(":")[0] == str(plain_jumpbox.bin_dir)
    assert where == str(plain_jumpbox.bin_dir / "testbed-hello")
    assert hello == "hello from the test bed"
    assert marker == MARKER_VALUE


def test_openssh_client_argv_connects(plain_jumpbox: Jumpbox) -> None:
    """Jumpbox.ssh_argv() works with the OpenSSH client under StrictHostKeyChecking=yes."""
    result = subprocess.run(
        plain_jumpbox.ssh_argv("echo", "via-openssh"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "via-openssh\n"), result.stderr


def test_sftp_subsystem_reads_files(plain_jumpbox: Jumpbox) -> None:
    """The internal-sftp subsystem is enabled (paramiko SFTP can read a file)."""
    client = connect(plain_jumpbox, plain_jumpbox.known_hosts_path)
    try:
        with client.open_sftp() as sftp:
            assert (sftp.stat(str(plain_jumpbox.config_path)).st_size or 0) > 0
    finally:
        client.close()


def test_stop_kills_processes_left_by_sessions(tmp_path: Path) -> None:
    """Stopping sshd also kills background processes sessions left behind."""
    box = start_sshd(tmp_path / "sshd")
    try:
        code, out, err = run(box, "sleep 300 >/dev/null 2>&1 </dev/null & echo $!")
        assert code == 0, err
        orphan = int(out)
        assert is_running(orphan)
    finally:
        stop_sshd(box)
    assert not is_running(box.process.pid)
    assert not is_running(orphan)


def test_readiness_failure_raises_sandbox_error_with_log_tail(tmp_path: Path) -> None:
    """A sandbox process that dies before it is ready gives SandboxError with its log's tail."""
    log = tmp_path / "dies.log"
    proc = _proc.spawn(
        [sys.executable, "-c", "print('boom: cannot bind'); raise SystemExit(3)"],
        log_path=log,
        cwd=tmp_path,
    )
    with pytest.raises(SandboxError, match=r"(?s)exited with code 3.*boom: cannot bind") as exc:
        _proc.wait_ready(proc, lambda: "not yet", component="demo", log_path=log, timeout=30)
    assert exc.value.component == "demo"


# --- SeaweedFS -------------------------------------------------------------------------------


def test_seaweedfs_round_trips_an_object(seaweedfs: S3Server, bucket: BucketFactory) -> None:
    """SeaweedFS stores and returns an object byte for byte, with the MD5 as ETag."""
    name, body = bucket(seaweedfs), b"artifact bytes \x00\xff" * 1000
    s3 = seaweedfs.client()
    put = s3.put_object(Bucket=name, Key="dir/a.tar", Body=body)
    assert put["ETag"].strip('"') == hashlib.md5(body).hexdigest()  # noqa: S324
    assert s3.get_object(Bucket=name, Key="dir/a.tar")["Body"].read() == body


@pytest.mark.parametrize(
    ("secret", "access"),
    [
        pytest.param("wrong-secret", None, id="wrong-secret"),
        pytest.param(None, "nobody", id="unknown-key"),
    ],
)
def test_seaweedfs_enforces_sigv4_credentials(
    seaweedfs: S3Server, bucket: BucketFactory, secret: str | None, access: str | None
) -> None:
    """SeaweedFS refuses requests signed with a wrong secret or an unknown access key."""
    name = bucket(seaweedfs)
    s3 = seaweedfs.client(access_key=access, secret_key=secret)
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=name)
    assert error_code(exc) in {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"}


def test_seaweedfs_rejects_wrong_content_md5(seaweedfs: S3Server, bucket: BucketFactory) -> None:
    """A PUT whose Content-MD5 does not match the body fails with BadDigest."""
    name = bucket(seaweedfs)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()  # noqa: S324
    with pytest.raises(ClientError) as exc:
        seaweedfs.client().put_object(Bucket=name, Key="k", Body=b"payload", ContentMD5=wrong)
    assert error_code(exc) == "BadDigest"


def test_seaweedfs_rejects_wrong_sha256_checksum(
    seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """A PUT whose x-amz-checksum-sha256 does not match the body fails with BadDigest."""
    name = bucket(seaweedfs)
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        seaweedfs.client().put_object(Bucket=name, Key="k", Body=b"payload", ChecksumSHA256=wrong)
    assert error_code(exc) == "BadDigest"


def _multipart(s3: S3Server, name: str, sizes: list[int]) -> None:
    client = s3.client()
    upload = client.create_multipart_upload(Bucket=name, Key="mp")["UploadId"]
    parts: list[CompletedPartTypeDef] = []
    for number, size in enumerate(sizes, start=1):
        etag = client.upload_part(
            Bucket=name, Key="mp", UploadId=upload, PartNumber=number, Body=b"x" * size
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    client.complete_multipart_upload(
        Bucket=name, Key="mp", UploadId=upload, MultipartUpload={"Parts": parts}
    )


def test_seaweedfs_enforces_5_mib_minimum_part_size(
    seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """Completing a multipart upload whose non-last part is under 5 MiB fails (EntityTooSmall)."""
    name = bucket(seaweedfs)
    with pytest.raises(ClientError) as exc:
        _multipart(seaweedfs, name, [5 * MIB - 1, 1024])
    assert error_code(exc) == "EntityTooSmall"


def test_seaweedfs_accepts_5_mib_parts(seaweedfs: S3Server, bucket: BucketFactory) -> None:
    """A multipart upload of a 5 MiB part plus a small last part completes."""
    name = bucket(seaweedfs)
    _multipart(seaweedfs, name, [5 * MIB, 1024])
    head = seaweedfs.client().head_object(Bucket=name, Key="mp")
    assert head["ContentLength"] == 5 * MIB + 1024


def test_bucket_factory_makes_fresh_versioned_buckets(
    seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """bucket() gives a new empty bucket each call; versioning=True turns versioning on."""
    first, second = bucket(seaweedfs), bucket(seaweedfs, versioning=True)
    s3 = seaweedfs.client()
    assert first != second
    assert s3.list_objects_v2(Bucket=first).get("KeyCount", 0) == 0
    assert s3.get_bucket_versioning(Bucket=second).get("Status") == "Enabled"


def test_seaweedfs_object_lock_holds_a_governance_version(
    seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """On an object-lock bucket a GOVERNANCE-retained version survives deletes unless bypassed."""
    name = bucket(seaweedfs, object_lock=True)
    s3 = seaweedfs.client()
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    version = s3.put_object(
        Bucket=name,
        Key="k",
        Body=b"kept",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=name, Key="k", VersionId=version)
    assert error_code(exc) == "AccessDenied"
    s3.delete_object(Bucket=name, Key="k", VersionId=version, BypassGovernanceRetention=True)


# --- moto ------------------------------------------------------------------------------------


def test_moto_round_trips_an_object(moto_s3: S3Server, bucket: BucketFactory) -> None:
    """moto in server mode stores and returns an object byte for byte."""
    name, body = bucket(moto_s3), b"small and fast" * 100
    s3 = moto_s3.client()
    s3.put_object(Bucket=name, Key="k", Body=body)
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == body


def test_moto_is_lax_about_checksums_and_signatures(
    moto_s3: S3Server, bucket: BucketFactory
) -> None:
    """moto accepts a wrong Content-MD5 and a wrong secret: integrity/auth tests need SeaweedFS."""
    name = bucket(moto_s3)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()  # noqa: S324
    moto_s3.client().put_object(Bucket=name, Key="k", Body=b"payload", ContentMD5=wrong)
    listed = moto_s3.client(secret_key="wrong-secret").list_objects_v2(Bucket=name)
    assert [item["Key"] for item in listed.get("Contents", [])] == ["k"]


# --- the combined jumpbox (sshd + bbr simulator) ---------------------------------------------


def test_jumpbox_runs_the_bbr_simulator(jumpbox: Jumpbox) -> None:
    """On the jumpbox fixture, `bbr version` over SSH answers as bbr 1.9.79."""
    code, out, err = run(jumpbox, "bbr version")
    assert code == 0, err
    assert out.strip() == "bbr version 1.9.79"
