"""``ObjectStore`` on an S3-compatible bucket.

Keys are FULL object keys (``{prefix}/{target}/...``, as ``core.layout`` builds them); every
key and listing prefix must lie under the configured prefix, so a bug elsewhere can never
list, overwrite or delete objects outside it. :meth:`S3ObjectStore.key` builds keys.

With object lock configured (:class:`~bbr_orchestrator.adapters.s3.lock.Retention`), every
object is written with a retention and a delete removes every version (see ``lock.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.adapters.s3.client import ClientLimits, make_client
from bbr_orchestrator.adapters.s3.integrity import ChecksumMode, byte_view, integrity_params
from bbr_orchestrator.adapters.s3.lock import (
    BucketLock,
    Retention,
    VersionDeleter,
    bucket_lock,
    retain_until,
)
from bbr_orchestrator.adapters.s3.read import ResumingReader, S3RangeOpener
from bbr_orchestrator.adapters.s3.retry import RetryPolicy, Sleep, call_with_retries
from bbr_orchestrator.adapters.s3.upload import S3MultipartUpload
from bbr_orchestrator.config.schema import (
    ObjectStoreConfig,
    RequestChecksums,
    ServerSideEncryption,
)
from bbr_orchestrator.errors import DeleteFailed, ObjectNotFound, StorageError, UploadAborted
from bbr_orchestrator.log import get_logger
from bbr_orchestrator.ports import Clock, ReadStream, StoredObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DELETE_BATCH = 1000
_LOCK_HINT = (
    " (object lock is configured: the bucket must be versioned and have object lock enabled, "
    "and this host's clock must be right: a retain-until date in the past is refused)"
)
log = get_logger(__name__)


class S3ObjectStore:
    """The bucket under ``prefix``; thread-safe (one boto3 client shared by all threads)."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        sse: ServerSideEncryption = ServerSideEncryption.NONE,
        sse_kms_key_id: str | None = None,
        checksum: ChecksumMode = ChecksumMode.CRC32,
        retry: RetryPolicy | None = None,
        delete_batch: int = DELETE_BATCH,
        sleep: Sleep = time.sleep,
        retention: Retention | None = None,
    ) -> None:
        if not 1 <= delete_batch <= DELETE_BATCH:
            raise ValueError(f"delete_batch must be in 1..{DELETE_BATCH}")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._checksum = checksum
        self._retry = retry or RetryPolicy()
        self._delete_batch = delete_batch
        self._sleep = sleep
        self.retention = retention
        self._versions = (
            VersionDeleter(client, bucket, self._call, delete_batch) if retention else None
        )
        self._sse: dict[str, str] = {}
        if sse is not ServerSideEncryption.NONE:
            self._sse["ServerSideEncryption"] = sse.value
            if sse is ServerSideEncryption.KMS and sse_kms_key_id:
                self._sse["SSEKMSKeyId"] = sse_kms_key_id

    @classmethod
    def from_config(
        cls,
        config: ObjectStoreConfig,
        *,
        limits: ClientLimits | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> S3ObjectStore:
        """Client and store for ``config`` (``when_required`` checksums -> Content-MD5 only;
        retain-until dates of an object lock from ``clock``, the system clock by default)."""
        lock = config.object_lock
        retention = (
            Retention(lock.mode, lock.retain_for, (clock or SystemClock()).now) if lock else None
        )
        return cls(
            make_client(config, limits),
            config.bucket,
            config.prefix,
            sse=config.server_side_encryption,
            sse_kms_key_id=config.sse_kms_key_id,
            checksum=ChecksumMode.MD5
            if config.request_checksums is RequestChecksums.WHEN_REQUIRED
            else ChecksumMode.CRC32,
            retry=retry,
            retention=retention,
        )

    def key(self, *parts: str) -> str:
        """The full key of ``parts`` under the prefix: ``key("cf", "run", "x.tar")``."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def _inside(self, key: str, *, listing: bool = False) -> str:
        if not key and not listing:
            raise StorageError(self.bucket, key, "empty object key")
        if self.prefix and not (key == self.prefix or key.startswith(self.prefix + "/")):
            raise StorageError(self.bucket, key, f"outside the configured prefix {self.prefix!r}")
        if listing and key == self.prefix and key:
            return key + "/"  # "bbr" must not match "bbr-other/..."
        return key

    def _call(self, operation: str, key: str, request: Any) -> Any:
        return call_with_retries(
            request,
            policy=self._retry,
            bucket=self.bucket,
            key=key,
            operation=operation,
            sleep=self._sleep,
        )

    def _write(self, operation: str, key: str, request: Any) -> Any:
        """A request creating an object: a refusal of its lock headers gets a hint."""
        try:
            return self._call(operation, key, request)
        except StorageError as exc:
            if self.retention is None or type(exc) is not StorageError:
                raise
            if not any(code in exc.reason for code in ("InvalidRequest", "InvalidArgument")):
                raise
            raise StorageError(self.bucket, key, exc.reason + _LOCK_HINT) from exc

    def _lock_params(self) -> dict[str, Any]:
        return self.retention.params() if self.retention is not None else {}

    def start_upload(self, key: str) -> S3MultipartUpload:
        """Open a multipart upload (with the retention, when object lock is configured)."""
        self._inside(key)
        extra: dict[str, Any] = {**self._sse, **self._lock_params()}
        if self._checksum is ChecksumMode.CRC32:
            extra["ChecksumAlgorithm"] = "CRC32"
        response = self._write(
            "CreateMultipartUpload",
            key,
            lambda: self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra),
        )
        log.debug("s3_upload_started", bucket=self.bucket, key=key)
        return S3MultipartUpload(
            self.client,
            self.bucket,
            key,
            response["UploadId"],
            checksum=self._checksum,
            retry=self._retry,
            sleep=self._sleep,
        )

    def put(self, key: str, data: bytes) -> None:
        """Write a small object in one request, with its checksum, SSE and retention headers
        (the checksum is what S3 requires of a write with a retention)."""
        self._inside(key)
        params: dict[str, Any] = {
            **self._sse,
            **integrity_params(byte_view(data), self._checksum),
            **self._lock_params(),
        }
        self._write(
            "PutObject",
            key,
            lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **params),
        )

    def open_read(self, key: str, offset: int = 0) -> ReadStream:
        """Stream the object from ``offset``; dropped connections resume (see ResumingReader)."""
        self._inside(key)
        opener = S3RangeOpener(self.client, self.bucket, key)
        reader = ResumingReader(
            opener, offset, bucket=self.bucket, key=key, retry=self._retry, sleep=self._sleep
        )
        return reader.start()

    def head(self, key: str) -> StoredObject | None:
        """Size and retain-until date of the object (None when there is none, or only a
        delete marker)."""
        self._inside(key)
        try:
            response = self._call(
                "HeadObject", key, lambda: self.client.head_object(Bucket=self.bucket, Key=key)
            )
        except ObjectNotFound:
            return None
        return StoredObject(
            key=key, size=int(response["ContentLength"]), retain_until=retain_until(response)
        )

    def list(self, prefix: str, *, page_size: int = 1000) -> Iterator[StoredObject]:
        """Objects whose key starts with ``prefix`` (end it with ``/`` for a folder), in key order,
        fetched ``page_size`` keys per request."""
        where = self._inside(prefix, listing=True)
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": where, "MaxKeys": page_size}
            if token:
                params["ContinuationToken"] = token
            page = self._call(
                "ListObjectsV2", where, lambda p=params: self.client.list_objects_v2(**p)
            )
            for item in page.get("Contents", []):
                yield StoredObject(key=item["Key"], size=int(item["Size"]))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def delete(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` in batches of up to 1000, in order; missing keys are fine.

        Raises ``DeleteFailed`` with every key the store refused (after trying all batches).
        With object lock configured every version of each key is deleted, and a key the
        store keeps because of its lock fails with "retained until <date> (<mode> mode)".
        """
        for key in keys:
            self._inside(key)
        if self._versions is not None:
            refused = self._versions.delete(keys)
            if refused:
                raise DeleteFailed(self.bucket, refused)
            return
        failures: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), self._delete_batch):
            batch = unique[start : start + self._delete_batch]
            objects: list[Any] = [{"Key": k} for k in batch]
            response = self._call(
                "DeleteObjects",
                batch[0],
                lambda o=objects: self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": o, "Quiet": True}
                ),
            )
            for error in response.get("Errors", []):
                failures[error.get("Key", "?")] = f"{error.get('Code')}: {error.get('Message')}"
        if failures:
            raise DeleteFailed(self.bucket, failures)

    def bucket_lock(self) -> BucketLock:
        """The bucket's object lock and versioning state (for ``check``)."""
        return bucket_lock(self.client, self.bucket, self._call)

    def abort_incomplete_uploads(
        self, prefix: str, *, initiated_before: datetime | None = None, page_size: int = 1000
    ) -> int:
        """Abort multipart uploads open under ``prefix`` (only those started before
        ``initiated_before``, if given, so live uploads of another run survive)."""
        where = self._inside(prefix, listing=True)
        aborted = 0
        markers: dict[str, str] = {}
        while True:
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": where,
                "MaxUploads": page_size,
                **markers,
            }
            page = self._call(
                "ListMultipartUploads",
                where,
                lambda p=params: self.client.list_multipart_uploads(**p),
            )
            for upload in page.get("Uploads", []):
                if initiated_before is not None and upload["Initiated"] >= initiated_before:
                    continue
                key, upload_id = upload["Key"], upload["UploadId"]
                try:
                    self._call(
                        "AbortMultipartUpload",
                        key,
                        lambda k=key, u=upload_id: self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=k, UploadId=u
                        ),
                    )
                except UploadAborted:
                    continue
                aborted += 1
                log.info(
                    "s3_orphan_upload_aborted", bucket=self.bucket, key=key, upload_id=upload_id
                )
            if not page.get("IsTruncated"):
                return aborted
            markers = {
                "KeyMarker": page.get("NextKeyMarker", ""),
                "UploadIdMarker": page.get("NextUploadIdMarker", ""),
            }
