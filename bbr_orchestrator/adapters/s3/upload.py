"""One multipart upload: parts from several worker threads, per-part retries, ordered completion."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from bbr_orchestrator.adapters.s3.integrity import (
    ChecksumMode,
    byte_view,
    integrity_params,
    request_body,
)
from bbr_orchestrator.adapters.s3.retry import RetryPolicy, Sleep, call_with_retries
from bbr_orchestrator.errors import StorageError, UploadAborted, UploadRejected
from bbr_orchestrator.log import get_logger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MAX_PARTS = 10_000
log = get_logger(__name__)


class _State(Enum):
    OPEN = "open"
    COMPLETED = "completed"
    ABORTED = "aborted"


@dataclass(frozen=True)
class _Part:
    number: int
    etag: str
    size: int
    crc32: str | None


class S3MultipartUpload:
    """A ``MultipartUpload`` on S3; ``upload_part`` may be called from many threads at once."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        upload_id: str,
        *,
        checksum: ChecksumMode = ChecksumMode.CRC32,
        retry: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.key = key
        self.bucket = bucket
        self.upload_id = upload_id
        self._client = client
        self._checksum = checksum
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._parts: dict[int, _Part] = {}
        self._state = _State.OPEN

    def _call(self, operation: str, request: Any, **fields: Any) -> Any:
        return call_with_retries(
            request,
            policy=self._retry,
            bucket=self.bucket,
            key=self.key,
            operation=operation,
            sleep=self._sleep,
            upload_id=self.upload_id,
            **fields,
        )

    def _require_open(self) -> None:
        if self._state is not _State.OPEN:
            raise UploadAborted(self.bucket, self.key, f"the upload is already {self._state.value}")

    def upload_part(self, number: int, data: memoryview | bytes) -> None:
        """Store part ``number`` (1..10000) with its checksum; transient failures are retried."""
        if not 1 <= number <= MAX_PARTS:
            raise UploadRejected(self.bucket, self.key, f"part number {number} not in 1..10000")
        with self._lock:
            self._require_open()
        view = byte_view(data)
        integrity = integrity_params(view, self._checksum)
        body = request_body(view)

        def send() -> Any:
            return self._client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
                ContentLength=len(view),
                **integrity,  # type: ignore[arg-type]
            )

        response = call_with_retries(
            send,
            policy=self._retry,
            bucket=self.bucket,
            key=self.key,
            operation="UploadPart",
            event="s3_part_retried",
            sleep=self._sleep,
            part=number,
        )
        part = _Part(number, response["ETag"], len(view), integrity.get("ChecksumCRC32"))
        with self._lock:
            self._require_open()
            self._parts[number] = part

    def complete(self) -> None:
        """Join the parts (1..N, none missing) in order into the object."""
        with self._lock:
            self._require_open()
            parts = [self._parts[n] for n in sorted(self._parts)]
        last = parts[-1].number if parts else 1
        missing = sorted(set(range(1, last + 1)) - {p.number for p in parts})
        if missing:
            raise UploadRejected(self.bucket, self.key, f"cannot complete: parts {missing} missing")
        listed: list[CompletedPartTypeDef] = []
        for p in parts:
            entry: CompletedPartTypeDef = {"PartNumber": p.number, "ETag": p.etag}
            if p.crc32 is not None:
                entry["ChecksumCRC32"] = p.crc32
            listed.append(entry)
        try:
            self._call(
                "CompleteMultipartUpload",
                lambda: self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": listed},
                ),
            )
        except UploadAborted:
            # A retried complete whose first try did land finds the upload gone: accept the
            # object if it is there with exactly the bytes we sent.
            if not self._landed(sum(p.size for p in parts)):
                raise
        with self._lock:
            self._state = _State.COMPLETED
        log.debug("s3_upload_completed", bucket=self.bucket, key=self.key, parts=len(parts))

    def _landed(self, size: int) -> bool:
        try:
            head = self._call(
                "HeadObject", lambda: self._client.head_object(Bucket=self.bucket, Key=self.key)
            )
        except StorageError:
            return False
        return int(head["ContentLength"]) == size

    def abort(self) -> None:
        """Discard every stored part. Idempotent; a no-op after ``complete``."""
        with self._lock:
            if self._state is not _State.OPEN:
                return
        with contextlib.suppress(UploadAborted):  # already gone: what we wanted
            self._call(
                "AbortMultipartUpload",
                lambda: self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                ),
            )
        with self._lock:
            self._state = _State.ABORTED
            self._parts.clear()
        log.info("s3_upload_aborted", bucket=self.bucket, key=self.key, upload_id=self.upload_id)
