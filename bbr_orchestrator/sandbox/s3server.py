"""A real S3-compatible server process on 127.0.0.1: SeaweedFS (strict) or moto (fast, lax).

SeaweedFS enforces SigV4 with the one admin identity configured here, Content-MD5
and x-amz-checksum-* (BadDigest), the 5 MiB minimum multipart part size,
versioning and object lock. moto starts in well under a second and keeps
everything in memory, but is lax about checksums.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bbr_orchestrator.errors import SandboxError
from bbr_orchestrator.sandbox import _proc
from bbr_orchestrator.sandbox.ports import LOOPBACK, free_ports

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Kind = Literal["seaweedfs", "moto"]
REGION = "us-east-1"
_PROBE_BUCKET = "sandbox-readiness-probe"
_ATTEMPTS = 3
_STOP_GRACE: dict[Kind, float] = {"seaweedfs": 0.5, "moto": 2.0}
_ALREADY_EXISTS = ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")


def component(kind: Kind) -> str:
    """The SandboxError component name for a server kind."""
    return f"s3 ({kind})"


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server and the credentials it accepts."""

    kind: Kind
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    log_path: Path
    base_dir: Path
    data_dir: Path | None
    startup_seconds: float
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)
    cleanup_paths: tuple[Path, ...] = field(default=(), repr=False, compare=False)
    """Files (unix sockets) the server leaves behind, removed on stop."""

    def client(
        self,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        config: Config | None = None,
    ) -> S3Client:
        """A boto3 S3 client for this server: path-style, SigV4, no retries, short timeouts."""
        base = Config(
            region_name=self.region,
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key if access_key is None else access_key,
            aws_secret_access_key=self.secret_key if secret_key is None else secret_key,
            region_name=self.region,
            config=base if config is None else base.merge(config),
        )

    def create_bucket(
        self, name: str | None = None, *, versioning: bool = False, object_lock: bool = False
    ) -> str:
        """Create a bucket (a fresh unique name by default); return its name."""
        bucket = name or f"t-{uuid.uuid4().hex[:16]}"
        s3 = self.client()
        if object_lock:
            s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        else:
            s3.create_bucket(Bucket=bucket)
        if versioning:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        return bucket

    def delete_bucket(self, name: str) -> bool:
        """Best effort: abort uploads, delete every version, delete the bucket.

        Returns False when something stayed (for example objects under a
        compliance-mode lock); the server's data dir goes when it stops.
        """
        s3 = self.client()
        try:
            for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
                for upload in page.get("Uploads", []):
                    s3.abort_multipart_upload(
                        Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
            for vpage in s3.get_paginator("list_object_versions").paginate(Bucket=name):
                for version in [*vpage.get("Versions", []), *vpage.get("DeleteMarkers", [])]:
                    with suppress(ClientError):
                        s3.delete_object(
                            Bucket=name,
                            Key=version["Key"],
                            VersionId=version["VersionId"],
                            BypassGovernanceRetention=True,
                        )
            s3.delete_bucket(Bucket=name)
        except (ClientError, BotoCoreError):
            return False
        return True

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server wrote to its log."""
        return _proc.log_tail(self.log_path, lines)


class BucketFactory:
    """Makes fresh buckets on any S3Server; :meth:`cleanup` deletes them all again."""

    def __init__(self) -> None:
        self._made: list[tuple[S3Server, str]] = []

    def __call__(
        self, server: S3Server, *, versioning: bool = False, object_lock: bool = False
    ) -> str:
        name = server.create_bucket(versioning=versioning, object_lock=object_lock)
        self._made.append((server, name))
        return name

    def cleanup(self) -> list[str]:
        """Delete every bucket made; return the names that could not be deleted."""
        made, self._made = self._made, []
        return [name for server, name in reversed(made) if not server.delete_bucket(name)]


def _executable(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise SandboxError(f"s3 ({name})", f"{name} not found next to {sys.executable} or on PATH")
    return found


def _probe(server: S3Server, *, write: bool) -> _proc.Probe:
    s3 = server.client(config=Config(connect_timeout=1, read_timeout=5))

    def probe() -> str | None:
        try:
            if not write:
                s3.list_buckets()
                return None
            try:
                s3.create_bucket(Bucket=_PROBE_BUCKET)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _ALREADY_EXISTS:
                    raise
            s3.put_object(Bucket=_PROBE_BUCKET, Key="probe", Body=b"ready")
        except (ClientError, BotoCoreError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    return probe


def _seaweedfs_argv(base: Path, data: Path, ports: list[int]) -> list[str]:
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    return [
        _executable("weed"), "server",
        f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}", f"-dir={data}",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=512", "-master.telemetry=false",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        "-volume.max=200", "-volume.preStopSeconds=0",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={base / 'filer.sock'}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={base / 's3.sock'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.config={base / 's3-identities.json'}",
    ]  # fmt: skip


class _Launch(NamedTuple):
    argv: list[str]
    port: int
    env: dict[str, str]
    data_dir: Path | None
    cleanup: tuple[Path, ...]


def _plan_seaweedfs(base: Path, access_key: str, secret_key: str) -> _Launch:
    data_dir = base / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    admin = {
        "name": "sandbox-admin",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    (base / "s3-identities.json").write_text(json.dumps({"identities": [admin]}, indent=2))
    ports = free_ports(8)
    # Unix sockets SeaweedFS adds beside its gRPC ports, named by port number.
    grpc = zip(("master", "volume", "filer", "s3"), ports[1::2], strict=True)
    cleanup = (
        base / "filer.sock",
        base / "s3.sock",
        *(Path(f"/tmp/seaweedfs-{role}-grpc-{port}.sock") for role, port in grpc),
    )
    # One volume per bucket (collection) instead of 7, so -volume.max lasts.
    env = {**_clean_env(), "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
    return _Launch(_seaweedfs_argv(base, data_dir, ports), ports[6], env, data_dir, cleanup)


def _plan_moto() -> _Launch:
    port = free_ports(1)[0]
    argv = [_executable("moto_server"), "-H", LOOPBACK, "-p", str(port)]
    return _Launch(argv, port, _clean_env(), None, ())


def _start_once(kind: Kind, base: Path, timeout: float) -> S3Server:
    access_key, secret_key = f"sandbox-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    log_path = base / f"{kind}.log"
    seaweedfs = kind == "seaweedfs"
    launch = _plan_seaweedfs(base, access_key, secret_key) if seaweedfs else _plan_moto()
    started = time.monotonic()
    proc = _proc.spawn(launch.argv, log_path=log_path, cwd=base, env=launch.env)
    server = S3Server(
        kind=kind,
        endpoint_url=f"http://{LOOPBACK}:{launch.port}",
        access_key=access_key,
        secret_key=secret_key,
        region=REGION,
        log_path=log_path,
        base_dir=base,
        data_dir=launch.data_dir,
        startup_seconds=0.0,
        process=proc,
        cleanup_paths=launch.cleanup,
    )
    try:
        # SeaweedFS is only usable once a first PUT succeeds (volume growth).
        probe = _probe(server, write=kind == "seaweedfs")
        _proc.wait_ready(proc, probe, component=component(kind), log_path=log_path, timeout=timeout)
        if kind == "seaweedfs":
            server.delete_bucket(_PROBE_BUCKET)
    except BaseException:
        stop_s3_server(server)
        raise
    return dataclasses.replace(server, startup_seconds=time.monotonic() - started)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def start_s3_server(kind: Kind, base_dir: Path, *, timeout: float | None = None) -> S3Server:
    """Start a SeaweedFS or moto server with state and log under ``base_dir``."""
    base = base_dir.resolve()
    base.mkdir(parents=True, exist_ok=True)
    wait = timeout if timeout is not None else (60.0 if kind == "seaweedfs" else 20.0)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return _start_once(kind, base, wait)
        except SandboxError as exc:
            if attempt == _ATTEMPTS or "address already in use" not in str(exc).lower():
                raise
    raise SandboxError(component(kind), f"no free ports after {_ATTEMPTS} attempts")


def stop_s3_server(server: S3Server, grace: float | None = None) -> None:
    """Kill the server's process group and delete its data dir (the log stays).

    SeaweedFS hangs in its graceful gRPC shutdown, and its data is scratch, so
    it gets SIGKILL after half a second by default.
    """
    _proc.terminate(server.process, grace if grace is not None else _STOP_GRACE[server.kind])
    if server.data_dir is not None:
        shutil.rmtree(server.data_dir, ignore_errors=True)
    for path in server.cleanup_paths:
        path.unlink(missing_ok=True)


@contextmanager
def running_s3_server(
    kind: Kind, base_dir: Path, *, timeout: float | None = None
) -> Iterator[S3Server]:
    """Start an S3 server for the ``with`` block; always stop it afterwards."""
    server = start_s3_server(kind, base_dir, timeout=timeout)
    try:
        yield server
    finally:
        stop_s3_server(server)
