"""A download that survives dropped connections: each drop resumes with a ranged GET.

:class:`ResumingReader` holds the resume logic over a small interface of our own
(:class:`RangeOpener` / :class:`RangeBody`), so it can be tested with an in-process fake;
:class:`S3RangeOpener` is the GetObject implementation of that interface.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from bbr_orchestrator.adapters.s3.failures import S3_FAILURES, error_code, translate
from bbr_orchestrator.adapters.s3.retry import RetryPolicy, Sleep
from bbr_orchestrator.errors import ObjectCorrupt, StorageError, StorageUnavailable
from bbr_orchestrator.log import get_logger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = get_logger(__name__)


class RangeBody(Protocol):
    """The bytes of one GET response. ``read`` raises ``StorageError`` (transient:
    ``StorageUnavailable``) and returns ``b""`` at the end of the response."""

    def read(self, size: int) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Opened:
    """A response body starting at the requested offset; ``end`` is the object's size."""

    body: RangeBody
    end: int


class RangeOpener(Protocol):
    """Starts a GET of the object from ``offset`` (raises ``StorageError`` on failure)."""

    def __call__(self, offset: int) -> Opened: ...


class _Dropped(Exception):
    """Internal: the response ended before the object did."""


class ResumingReader:
    """A ``ReadStream`` that reopens at the current offset after a transient failure.

    Each ``readinto`` tolerates up to ``retry.attempts - 1`` consecutive failures (no bytes
    between them) before raising ``StorageUnavailable``; any progress resets the count, so a
    long download can survive many separate blips but never spins on a dead store.
    """

    def __init__(
        self,
        opener: RangeOpener,
        offset: int,
        *,
        bucket: str,
        key: str,
        retry: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        if offset < 0:
            raise StorageError(bucket, key, f"read offset {offset} is negative")
        self._open = opener
        self._offset = offset
        self._end: int | None = None
        self._body: RangeBody | None = None
        self._bucket, self._key = bucket, key
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._closed = False

    @property
    def offset(self) -> int:
        """Where the next byte comes from."""
        return self._offset

    def start(self) -> ResumingReader:
        """Open the first response now (so a missing object fails here, not on first read)."""
        self._with_retries(lambda _body: 0)
        return self

    def readinto(self, buffer: memoryview) -> int:
        if self._closed:
            raise StorageError(self._bucket, self._key, "read from a closed stream")
        if len(buffer) == 0:
            return 0

        def read_some(body: RangeBody) -> int:
            chunk = body.read(len(buffer))
            if not chunk:
                if self._end is not None and self._offset < self._end:
                    raise _Dropped(f"response ended at byte {self._offset} of {self._end}")
                return 0
            buffer[: len(chunk)] = chunk
            self._offset += len(chunk)
            return len(chunk)

        return self._with_retries(read_some)

    def _with_retries(self, step: Callable[[RangeBody], int]) -> int:
        failures = 0
        while True:
            try:
                if self._body is None:
                    if self._end is not None and self._offset >= self._end:
                        return 0
                    opened = self._open(self._offset)
                    self._body, self._end = opened.body, opened.end
                return step(self._body)
            except (StorageUnavailable, _Dropped) as exc:
                self._drop_body()
                failures += 1
                reason = exc.cause if isinstance(exc, StorageUnavailable) else str(exc)
                if failures >= self._retry.attempts:
                    raise StorageUnavailable(
                        self._bucket, self._key, f"read at byte {self._offset}: {reason}", failures
                    ) from exc
                wait = self._retry.delay(failures)
                log.warning(
                    "s3_read_resumed",
                    bucket=self._bucket,
                    key=self._key,
                    offset=self._offset,
                    attempt=failures,
                    max_attempts=self._retry.attempts,
                    retry_in_seconds=round(wait, 3),
                    error=reason,
                )
                self._sleep(wait)

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(StorageError):  # the connection is broken already
                body.close()

    def close(self) -> None:
        self._closed = True
        self._drop_body()


class _S3Body:
    def __init__(self, stream: Any, bucket: str, key: str) -> None:
        self._stream = stream
        self._bucket, self._key = bucket, key

    def read(self, size: int) -> bytes:
        try:
            data: bytes = self._stream.read(size)
        except S3_FAILURES as exc:
            raise translate(exc, bucket=self._bucket, key=self._key, operation="GetObject") from exc
        return data

    def close(self) -> None:
        try:
            self._stream.close()
        except S3_FAILURES as exc:
            raise translate(exc, bucket=self._bucket, key=self._key, operation="GetObject") from exc


class _Empty:
    def read(self, size: int) -> bytes:
        return b""

    def close(self) -> None:
        pass


class S3RangeOpener:
    """GetObject from an offset; resumed requests carry ``If-Match`` with the first ETag, so a
    replaced object fails with ``ObjectCorrupt`` instead of splicing two versions together."""

    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        self._client = client
        self._bucket, self._key = bucket, key
        self._etag: str | None = None

    def __call__(self, offset: int) -> Opened:
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key}
        if offset:
            params["Range"] = f"bytes={offset}-"
        if self._etag is not None:
            params["IfMatch"] = self._etag
        try:
            response = self._client.get_object(**params)
        except S3_FAILURES as exc:
            return self._failed(exc, offset)
        self._etag = response["ETag"]
        return Opened(
            _S3Body(response["Body"], self._bucket, self._key),
            offset + int(response["ContentLength"]),
        )

    def _failed(self, exc: Exception, offset: int) -> Opened:
        code = error_code(exc) if isinstance(exc, ClientError) else ""
        if code == "PreconditionFailed":
            raise ObjectCorrupt(
                self._bucket, self._key, f"the object was replaced while reading (was {self._etag})"
            ) from exc
        if code == "InvalidRange":
            size = self._size()
            if size == offset:  # reading from the very end: nothing left, not an error
                return Opened(_Empty(), offset)
            raise StorageError(
                self._bucket, self._key, f"offset {offset} is beyond the object's {size} bytes"
            ) from exc
        raise translate(exc, bucket=self._bucket, key=self._key, operation="GetObject") from exc

    def _size(self) -> int:
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=self._key)
        except S3_FAILURES as exc:
            raise translate(
                exc, bucket=self._bucket, key=self._key, operation="HeadObject"
            ) from exc
        return int(head["ContentLength"])
