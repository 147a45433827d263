"""The S3 adapter against real S3-compatible servers: SeaweedFS (strict) and moto (fast, lax)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from structlog.testing import capture_logs

from bbr_orchestrator.adapters.s3 import ClientLimits, RetryPolicy, S3ObjectStore, make_client
from bbr_orchestrator.config.schema import ObjectStoreConfig
from bbr_orchestrator.errors import (
    DeleteFailed,
    ObjectNotFound,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
    UploadAborted,
    UploadRejected,
)
from bbr_orchestrator.sandbox.s3server import (
    BucketFactory,
    S3Server,
    start_s3_server,
    stop_s3_server,
)

MiB = 1024 * 1024
FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2)
LIMITS = ClientLimits(connect_timeout=2.0, read_timeout=10.0, parallel_parts=4)


def config_for(
    server: S3Server, bucket: str, tmp_path: Path, endpoint: str | None = None, **extra: Any
) -> ObjectStoreConfig:
    """An ObjectStoreConfig whose credentials are secret files, as in production."""
    (tmp_path / "access").write_text(server.access_key)
    (tmp_path / "secret").write_text(extra.pop("secret_key", server.secret_key))
    data: dict[str, Any] = {
        "endpoint_url": endpoint or server.endpoint_url,
        "bucket": bucket,
        "prefix": "bbr",
        "region": server.region,
        "addressing_style": "path",
        "credentials": {
            "source": "secrets",
            "access_key_id": {"file": str(tmp_path / "access")},
            "secret_access_key": {"file": str(tmp_path / "secret")},
        },
        **extra,
    }
    return ObjectStoreConfig.model_validate(data)


def store_for(
    server: S3Server, bucket: str, tmp_path: Path, retry: RetryPolicy = FAST, **extra: Any
) -> S3ObjectStore:
    return S3ObjectStore.from_config(
        config_for(server, bucket, tmp_path, **extra), limits=LIMITS, retry=retry
    )


class Requests:
    """Records the headers of every request the client sends (botocore's event hooks)."""

    def __init__(self, store: S3ObjectStore) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        store.client.meta.events.register("before-send.s3.*", self._record)

    def _record(self, request: Any, event_name: str, **_kwargs: Any) -> None:
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        self.sent.append((event_name.rsplit(".", 1)[-1], headers))

    def of(self, operation: str) -> list[dict[str, str]]:
        return [h for op, h in self.sent if op == operation]


def read_all(store: S3ObjectStore, key: str, offset: int = 0) -> bytes:
    stream = store.open_read(key, offset)
    out = bytearray()
    buffer = memoryview(bytearray(256 * 1024))
    try:
        while n := stream.readinto(buffer):
            out += buffer[:n]
    finally:
        stream.close()
    return bytes(out)


def test_concurrent_multipart_round_trips_byte_exact(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """Parts sent out of order from 4 threads, with CRC32 headers, join into the exact bytes."""
    store = store_for(seaweedfs, bucket(seaweedfs), tmp_path)
    requests = Requests(store)
    data = os.urandom(3 * 5 * MiB + 12345)
    view = memoryview(data)
    chunks = [view[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    upload = store.start_upload(store.key("cf", "run-1", "blobstore.tar"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        for done in [
            pool.submit(upload.upload_part, n, c) for n, c in reversed(list(enumerate(chunks, 1)))
        ]:
            done.result()
    upload.complete()
    upload.abort()  # a no-op after complete
    assert store.head("bbr/cf/run-1/blobstore.tar") == store.head(upload.key)
    assert read_all(store, upload.key) == data
    part_headers = requests.of("UploadPart")
    assert len(part_headers) == 4
    assert all("x-amz-checksum-crc32" in h for h in part_headers)


def test_when_required_sends_content_md5_only(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """request_checksums: when_required uploads with Content-MD5 and no x-amz-checksum-* header."""
    store = store_for(seaweedfs, bucket(seaweedfs), tmp_path, request_checksums="when_required")
    requests = Requests(store)
    data = os.urandom(5 * MiB + 10)
    upload = store.start_upload("bbr/t/a.tar")
    upload.upload_part(1, data[: 5 * MiB])
    upload.upload_part(2, data[5 * MiB :])
    upload.complete()
    store.put("bbr/t/manifest.json", b"{}")
    assert read_all(store, "bbr/t/a.tar") == data
    store.delete(["bbr/t/manifest.json"])
    assert store.head("bbr/t/manifest.json") is None
    sent = requests.of("UploadPart") + requests.of("PutObject") + requests.of("DeleteObjects")
    assert len(sent) == 4
    assert all("content-md5" in h for h in sent)
    assert not any(k.startswith("x-amz-checksum") for h in sent for k in h)
    assert "x-amz-checksum-algorithm" not in requests.of("CreateMultipartUpload")[0]


def test_parts_below_minimum_are_rejected(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """A non-last part under 5 MiB makes complete() fail with UploadRejected naming the key."""
    store = store_for(seaweedfs, bucket(seaweedfs), tmp_path)
    upload = store.start_upload("bbr/t/small.tar")
    upload.upload_part(1, b"a" * 1000)
    upload.upload_part(2, b"b" * 10)
    with pytest.raises(
        UploadRejected, match=r"small\.tar: CompleteMultipartUpload: EntityTooSmall"
    ):
        upload.complete()
    upload.abort()


def test_missing_part_is_caught_before_complete(
    moto_s3: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """A gap in the part numbers is refused locally instead of storing a truncated object."""
    store = store_for(moto_s3, bucket(moto_s3), tmp_path)
    upload = store.start_upload("bbr/t/gap.tar")
    upload.upload_part(1, b"x" * (5 * MiB))
    upload.upload_part(3, b"y")
    with pytest.raises(UploadRejected, match=r"parts \[2\] missing"):
        upload.complete()
    upload.abort()
    assert store.head("bbr/t/gap.tar") is None


def test_abort_leaves_no_upload_open(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """abort() discards the upload (none listed), is idempotent, and blocks further parts."""
    name = bucket(seaweedfs)
    store = store_for(seaweedfs, name, tmp_path)
    upload = store.start_upload("bbr/t/x.tar")
    upload.upload_part(1, b"z" * 1000)
    upload.abort()
    upload.abort()
    assert seaweedfs.client().list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    with pytest.raises(UploadAborted):
        upload.upload_part(2, b"late")


def test_abort_incomplete_uploads_finds_orphans_under_prefix(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """Orphan uploads under the prefix are aborted; others and newer ones are left alone."""
    name = bucket(seaweedfs)
    raw = seaweedfs.client()
    for key in ("bbr/t1/run/a.tar", "bbr/t1/run/b.tar", "bbr/t1/run/c.tar", "bbr/t2/run/b.tar"):
        raw.create_multipart_upload(Bucket=name, Key=key)
    store = store_for(seaweedfs, name, tmp_path)
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    assert store.abort_incomplete_uploads("bbr/t1", initiated_before=long_ago) == 0
    requests = Requests(store)
    assert store.abort_incomplete_uploads("bbr/t1", page_size=2) == 3
    assert len(requests.of("ListMultipartUploads")) == 2
    left = [u["Key"] for u in raw.list_multipart_uploads(Bucket=name).get("Uploads", [])]
    assert left == ["bbr/t2/run/b.tar"]


def test_open_read_from_offset(seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path) -> None:
    """open_read(key, offset) streams exactly data[offset:]; the end is empty, past it an error."""
    store = store_for(seaweedfs, bucket(seaweedfs), tmp_path)
    data = os.urandom(MiB + 7)
    store.put("bbr/t/obj", data)
    assert read_all(store, "bbr/t/obj", 12345) == data[12345:]
    assert read_all(store, "bbr/t/obj", len(data)) == b""
    with pytest.raises(StorageError, match="beyond"):
        store.open_read("bbr/t/obj", len(data) + 1)
    with pytest.raises(ObjectNotFound, match="bbr/t/missing"):
        store.open_read("bbr/t/missing")


def test_head_list_paginate_and_stay_in_prefix(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """head gives size or None; list walks small pages; keys outside the prefix are refused."""
    store = store_for(seaweedfs, bucket(seaweedfs), tmp_path)
    keys = [f"bbr/t1/obj-{i:02d}" for i in range(7)]
    for i, key in enumerate(keys):
        store.put(key, b"x" * i)
    store.put("bbr/t1x/other", b"not under bbr/t1/")
    requests = Requests(store)
    listed = list(store.list("bbr/t1/", page_size=2))
    assert [(o.key, o.size) for o in listed] == [(k, i) for i, k in enumerate(keys)]
    assert len(requests.of("ListObjectsV2")) == 4
    assert [o.key for o in store.list("bbr", page_size=100)][-1] == "bbr/t1x/other"
    head = store.head(keys[3])
    assert head is not None and head.size == 3
    assert store.head("bbr/t1/nope") is None
    with pytest.raises(StorageError, match="outside the configured prefix"):
        store.head("elsewhere/x")


def test_batch_delete_in_chunks(seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path) -> None:
    """delete() removes every key in DeleteObjects batches; missing keys are not an error."""
    name = bucket(seaweedfs)
    cfg = config_for(seaweedfs, name, tmp_path)
    store = S3ObjectStore(make_client(cfg, LIMITS), name, "bbr", retry=FAST, delete_batch=2)
    keys = [f"bbr/t/k{i}" for i in range(5)]
    for key in keys:
        store.put(key, b"x")
    requests = Requests(store)
    store.delete([*keys, "bbr/t/never-existed"])
    assert list(store.list("bbr/t")) == []
    assert len(requests.of("DeleteObjects")) == 3


class _CannedBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._body


def test_delete_reports_per_key_errors(
    moto_s3: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """Keys the store refuses inside a DeleteObjects answer come back as one DeleteFailed."""
    name = bucket(moto_s3)
    store = store_for(moto_s3, name, tmp_path)
    refusal = (
        b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult>'
        b"<Error><Key>bbr/t/locked</Key><Code>AccessDenied</Code>"
        b"<Message>Access Denied because object protected by object lock.</Message></Error>"
        b"</DeleteResult>"
    )

    def answer(**_kwargs: Any) -> AWSResponse:  # the store's reply, via botocore's hook
        return AWSResponse("http://s3", 200, {}, _CannedBody(refusal))  # type: ignore[arg-type]

    store.client.meta.events.register("before-send.s3.DeleteObjects", answer)  # type: ignore[arg-type]
    with pytest.raises(DeleteFailed) as caught:
        store.delete(["bbr/t/locked", "bbr/t/free"])
    assert caught.value.failures == {
        "bbr/t/locked": "AccessDenied: Access Denied because object protected by object lock."
    }
    assert f"s3://{name}: 1 objects not deleted: bbr/t/locked" in str(caught.value)


def test_sse_headers_sent(moto_s3: S3Server, bucket: BucketFactory, tmp_path: Path) -> None:
    """SSE-S3 / SSE-KMS settings put their headers on CreateMultipartUpload and PutObject."""
    # moto, not SeaweedFS: SeaweedFS answers InternalError to SSE unless it has a KEK set up.
    name = bucket(moto_s3)
    s3 = store_for(moto_s3, name, tmp_path, server_side_encryption="AES256")
    kms = store_for(
        moto_s3, name, tmp_path, server_side_encryption="aws:kms", sse_kms_key_id="alias/bbr"
    )
    seen_s3, seen_kms = Requests(s3), Requests(kms)
    s3.put("bbr/t/m.json", b"{}")
    s3.start_upload("bbr/t/a.tar").abort()
    kms.start_upload("bbr/t/b.tar").abort()
    for headers in seen_s3.of("PutObject") + seen_s3.of("CreateMultipartUpload"):
        assert headers["x-amz-server-side-encryption"] == "AES256"
    created = seen_kms.of("CreateMultipartUpload")[0]
    assert created["x-amz-server-side-encryption"] == "aws:kms"
    assert created["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/bbr"


def test_wrong_secret_is_a_clear_auth_error(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """A wrong secret key fails once with StorageAccessDenied naming the bucket, no retry loop."""
    name = bucket(seaweedfs)
    wrong = "wrong-" + seaweedfs.secret_key
    store = store_for(seaweedfs, name, tmp_path, secret_key=wrong, retry=RetryPolicy(attempts=5))
    requests = Requests(store)
    started = time.monotonic()
    with pytest.raises(StorageAccessDenied) as caught:
        store.put("bbr/t/manifest.json", b"{}")
    assert time.monotonic() - started < 2
    assert len(requests.sent) == 1
    message = str(caught.value)
    assert f"s3://{name}/bbr/t/manifest.json" in message
    assert "SignatureDoesNotMatch" in message
    assert wrong not in message and seaweedfs.secret_key not in message


def test_profile_credentials_from_a_file(
    moto_s3: S3Server, bucket: BucketFactory, tmp_path: Path
) -> None:
    """A named profile is read from the given credentials file; a missing one is refused."""
    name = bucket(moto_s3)
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[backup]\naws_access_key_id = {moto_s3.access_key}\n"
        f"aws_secret_access_key = {moto_s3.secret_key}\n"
    )
    base = config_for(moto_s3, name, tmp_path)
    profile = {"source": "profile", "profile": "backup", "credentials_file": str(creds)}
    cfg = base.model_copy(update={"credentials": base.credentials.model_validate(profile)})
    store = S3ObjectStore(make_client(cfg, LIMITS), name, "bbr", retry=FAST)
    store.put("bbr/t/x", b"1")
    assert store.head("bbr/t/x") is not None
    missing = {**profile, "profile": "nope"}
    bad = base.model_copy(update={"credentials": base.credentials.model_validate(missing)})
    with pytest.raises(StorageAccessDenied, match="nope"):
        make_client(bad, LIMITS)


def test_server_killed_mid_upload_fails_in_bounded_time(tmp_path: Path) -> None:
    """Store killed: upload_part retries, then StorageUnavailable fast; abort() does not hang."""
    server = start_s3_server("seaweedfs", tmp_path / "weed")
    try:
        store = store_for(server, server.create_bucket(), tmp_path)
        upload = store.start_upload("bbr/t/big.tar")
        upload.upload_part(1, os.urandom(5 * MiB))
    finally:
        stop_s3_server(server)
    started = time.monotonic()
    with capture_logs() as logs, pytest.raises(StorageUnavailable) as caught:
        upload.upload_part(2, os.urandom(5 * MiB))
    assert time.monotonic() - started < 10
    assert caught.value.attempts == 3
    retried = [e for e in logs if e["event"] == "s3_part_retried"]
    assert [(e["part"], e["attempt"]) for e in retried] == [(2, 1), (2, 2)]
    assert all(e["key"] == "bbr/t/big.tar" for e in retried)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        upload.abort()
    assert time.monotonic() - started < 10


class CuttingProxy:
    """A TCP proxy to an S3 server that cuts the connection carrying the first big response
    after ``cut_after`` bytes: a real mid-stream connection drop."""

    def __init__(self, upstream: str, cut_after: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self._upstream = (host, int(port))
        self._cut_after = cut_after
        self._armed = threading.Event()
        self._armed.set()
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                sent += len(data)
                if downstream and sent >= self._cut_after and self._armed.is_set():
                    self._armed.clear()
                    self.cuts += 1
                    break
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def cutting_proxy(seaweedfs: S3Server) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(seaweedfs.endpoint_url, cut_after=2 * MiB)
    yield proxy
    proxy.close()


def test_read_resumes_after_a_real_connection_drop(
    seaweedfs: S3Server, bucket: BucketFactory, tmp_path: Path, cutting_proxy: CuttingProxy
) -> None:
    """A GET whose connection is cut mid-body resumes with a ranged GET: the bytes are exact."""
    name = bucket(seaweedfs)
    data = os.urandom(6 * MiB)
    store_for(seaweedfs, name, tmp_path).put("bbr/t/restore.tar", data)
    via_proxy = store_for(seaweedfs, name, tmp_path, endpoint=cutting_proxy.endpoint)
    with capture_logs() as logs:
        assert read_all(via_proxy, "bbr/t/restore.tar", offset=100) == data[100:]
    assert cutting_proxy.cuts == 1
    resumed = [e for e in logs if e["event"] == "s3_read_resumed"]
    assert len(resumed) == 1
    assert 100 < resumed[0]["offset"] < len(data)
