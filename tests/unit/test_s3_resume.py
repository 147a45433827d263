"""ResumingReader (the restore download's resume logic) against an in-process fake of our
own RangeOpener / RangeBody interface, plus the retry loop's classification of failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from bbr_orchestrator.adapters.s3.read import Opened, ResumingReader
from bbr_orchestrator.adapters.s3.retry import RetryPolicy, call_with_retries
from bbr_orchestrator.errors import (
    ObjectCorrupt,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
)

DATA = bytes(range(256)) * 40  # 10240 bytes
FAST = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)


@dataclass
class FakeBody:
    """Serves ``data[start:]``; after ``drop_after`` bytes it fails like a broken connection
    (``StorageUnavailable``) or, with ``short``, ends early as a cut response would."""

    data: bytes
    start: int
    drop_after: int | None = None
    short: bool = False
    served: int = 0
    closed: bool = False

    def read(self, size: int) -> bytes:
        if self.drop_after is not None and self.served >= self.drop_after:
            if self.short:
                return b""
            raise StorageUnavailable("b", "k", "connection reset", 1)
        limit = size if self.drop_after is None else min(size, self.drop_after - self.served)
        chunk = self.data[self.start + self.served : self.start + self.served + limit]
        self.served += len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeObject:
    """An object whose responses follow a script: one entry per GET (``None``: no drop)."""

    data: bytes
    drops: list[int | None] = field(default_factory=list)
    open_failures: list[StorageError] = field(default_factory=list)
    short: bool = False
    opened_at: list[int] = field(default_factory=list)
    bodies: list[FakeBody] = field(default_factory=list)

    def __call__(self, offset: int) -> Opened:
        self.opened_at.append(offset)
        if self.open_failures:
            raise self.open_failures.pop(0)
        drop = self.drops.pop(0) if self.drops else None
        body = FakeBody(self.data, offset, drop, self.short)
        self.bodies.append(body)
        return Opened(body, len(self.data))


def read_all(reader: ResumingReader, chunk: int = 1000) -> bytes:
    out = bytearray()
    buffer = bytearray(chunk)
    while n := reader.readinto(memoryview(buffer)):
        out += buffer[:n]
    return bytes(out)


def reader_for(fake: FakeObject, offset: int = 0, policy: RetryPolicy = FAST) -> ResumingReader:
    return ResumingReader(fake, offset, bucket="b", key="k", retry=policy, sleep=lambda _s: None)


def test_drop_mid_stream_resumes_at_current_offset() -> None:
    """A connection lost mid-object is reopened from the byte where it broke; data is exact."""
    fake = FakeObject(DATA, drops=[3000])
    reader = reader_for(fake).start()
    assert read_all(reader) == DATA
    assert fake.opened_at == [0, 3000]
    assert fake.bodies[0].closed


def test_resume_respects_the_starting_offset() -> None:
    """Reading from an offset and resuming after a drop yields exactly data[offset:]."""
    fake = FakeObject(DATA, drops=[500, 700])
    assert read_all(reader_for(fake, offset=4000).start()) == DATA[4000:]
    assert fake.opened_at == [4000, 4500, 5200]


def test_response_ending_early_counts_as_a_drop() -> None:
    """A response that ends before the object does (a cut connection) is resumed, not EOF."""
    fake = FakeObject(DATA, drops=[1234], short=True)
    assert read_all(reader_for(fake).start()) == DATA
    assert fake.opened_at == [0, 1234]


def test_failures_without_progress_are_bounded() -> None:
    """Consecutive failures with no bytes in between give StorageUnavailable after N attempts."""
    fake = FakeObject(DATA, drops=[100, 0, 0, 0])
    reader = reader_for(fake).start()
    buffer = memoryview(bytearray(100))
    assert reader.readinto(buffer) == 100
    with pytest.raises(StorageUnavailable) as caught:
        reader.readinto(buffer)
    assert caught.value.attempts == 3
    assert "byte 100" in str(caught.value)


def test_progress_resets_the_failure_count() -> None:
    """Many drops each preceded by progress are survived: only consecutive failures count."""
    fake = FakeObject(DATA, drops=[1000] * 12)
    assert read_all(reader_for(fake).start(), chunk=4096) == DATA
    assert len(fake.opened_at) == 11


def test_transient_open_failure_is_retried() -> None:
    """The first GET failing transiently (store restarting) is retried before giving up."""
    fake = FakeObject(DATA, open_failures=[StorageUnavailable("b", "k", "503", 1)])
    assert read_all(reader_for(fake).start()) == DATA
    assert fake.opened_at == [0, 0]


def test_permanent_failure_on_resume_is_not_retried() -> None:
    """If the object changed (If-Match failed) on resume, ObjectCorrupt is raised at once."""
    fake = FakeObject(DATA, drops=[10])
    reader = reader_for(fake).start()
    buffer = memoryview(bytearray(64))
    assert reader.readinto(buffer) == 10
    fake.open_failures.append(ObjectCorrupt("b", "k", "replaced while reading"))
    with pytest.raises(ObjectCorrupt):
        reader.readinto(buffer)
    assert fake.opened_at == [0, 10]


def test_reading_after_close_fails_clearly() -> None:
    """A closed stream refuses reads instead of reopening the object behind the caller's back."""
    reader = reader_for(FakeObject(DATA)).start()
    reader.close()
    with pytest.raises(StorageError, match="closed"):
        reader.readinto(memoryview(bytearray(8)))


def client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "UploadPart")


def test_retry_loop_retries_transient_then_succeeds() -> None:
    """SlowDown and connection errors are retried with growing waits; success ends the loop."""
    failures: list[Exception] = [
        client_error("SlowDown", 503),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ]
    waits: list[float] = []

    def request() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    policy = RetryPolicy(attempts=3, base_delay=1.0, max_delay=10.0)
    result = call_with_retries(
        request, policy=policy, bucket="b", key="k", operation="UploadPart", sleep=waits.append
    )
    assert result == "ok"
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0


def test_retry_loop_does_not_retry_auth_errors() -> None:
    """A refused signature is raised at once as StorageAccessDenied naming bucket and key."""
    calls: list[int] = []

    def request() -> None:
        calls.append(1)
        raise client_error("SignatureDoesNotMatch", 403)

    with pytest.raises(StorageAccessDenied, match=r"s3://b/k: UploadPart: SignatureDoesNotMatch"):
        call_with_retries(
            request, policy=FAST, bucket="b", key="k", operation="UploadPart", sleep=lambda _s: None
        )
    assert calls == [1]


def test_retry_loop_gives_up_after_the_policy() -> None:
    """An endlessly failing store yields StorageUnavailable carrying the attempt count."""
    calls: list[int] = []

    def request() -> None:
        calls.append(1)
        raise client_error("InternalError", 500)

    with pytest.raises(StorageUnavailable, match="gave up after 3 attempts") as caught:
        call_with_retries(
            request, policy=FAST, bucket="b", key="k", operation="UploadPart", sleep=lambda _s: None
        )
    assert caught.value.attempts == 3
    assert len(calls) == 3
