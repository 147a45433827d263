"""Stream one artifact file from the jumpbox to the object store, verified while it streams.

Bytes go from the SSH channel into a small pool of reusable part buffers (shared by the
files of an artifact), and each filled part goes to three stages at once: the file's SHA-256
and the tar's member hashes (compared with bbr's ``metadata``), each in a thread of its own
that takes the parts in order, and the multipart upload, a few parts in flight. hashlib
releases the GIL, so the reading thread only reads. A buffer returns to the pool when all
three are done with it. Memory is bounded by the pool: ``(parts_in_flight + 1) x part
size``, whatever the file size. A dropped SSH connection is
resumed from the exact byte offset with a new connection (``TransferInterrupted``;
a missing or changed file is not retried); completed parts are never re-sent.
Any failure aborts the multipart upload, so no orphan parts are left.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from bbr_orchestrator.actions.session import Session
from bbr_orchestrator.core.bbr_metadata import verify_members
from bbr_orchestrator.core.layout import ManifestObject, part_size
from bbr_orchestrator.core.tar_stream import TarHasher
from bbr_orchestrator.errors import OrchestratorError, TransferInterrupted, TruncatedFile
from bbr_orchestrator.ports import MultipartUpload, ObjectStore, ReadStream

log = structlog.get_logger(__name__)

Progress = Callable[[int], None]
"""Called with the number of bytes just read (for progress bars and progress events)."""


@dataclass(frozen=True)
class StreamSettings:
    """Tuning of the pipeline; the defaults bound memory at (4 + 1) x 16 MiB = 80 MiB."""

    parts_in_flight: int = 4
    min_part_size: int = 16 * 1024 * 1024
    read_attempts: int = 4
    """How many times one file's read may be (re)started after an SSH failure."""
    retry_backoff: float = 1.0


DEFAULT_STREAM = StreamSettings()


class PartBuffers:
    """The reusable part buffers, shared by the files of one artifact.

    Allocated once per part size, not per file: touching fresh memory costs page faults, and
    freed 16 MiB blocks tend to stay in the allocator's per-thread arenas.
    """

    def __init__(self, settings: StreamSettings = DEFAULT_STREAM) -> None:
        self._count = settings.parts_in_flight + 1
        self._size = 0
        self._free: queue.Queue[bytearray] = queue.Queue()

    def of_size(self, size: int) -> queue.Queue[bytearray]:
        """The pool, every buffer ``size`` bytes (a different size than before drops the old)."""
        if size != self._size:
            self._free = queue.Queue()
            for _ in range(self._count):
                self._free.put(bytearray(size))
            self._size = size
        return self._free


class _ResumingReader:
    """Reads a remote file from an offset; on an SSH failure reconnects and resumes there."""

    def __init__(self, session: Session[Any], path: str, settings: StreamSettings) -> None:
        self._session = session
        self._path = path
        self._settings = settings
        self._offset = 0
        self._failures = 0
        self._stream: ReadStream = session.current.open_read(path, 0)

    def fill(self, buffer: memoryview, want: int) -> int:
        """Fill ``buffer[:want]`` completely, unless the file ends first."""
        got = 0
        while got < want:
            try:
                n = self._stream.readinto(buffer[got:want])
            except TransferInterrupted as exc:
                self._resume(exc)
                continue
            if n == 0:
                break
            got += n
            self._offset += n
        return got

    def _resume(self, exc: TransferInterrupted) -> None:
        self._failures += 1
        if self._failures >= self._settings.read_attempts:
            raise exc
        log.warning(
            "ssh_read_resumed",
            path=self._path,
            offset=self._offset,
            error=str(exc),
            attempt=self._failures,
        )
        time.sleep(self._settings.retry_backoff * self._failures)
        self._close_quietly()
        self._stream = self._session.reconnect().open_read(self._path, self._offset)

    def _close_quietly(self) -> None:
        with contextlib.suppress(OrchestratorError):
            self._stream.close()

    def close(self) -> None:
        self._stream.close()


def stream_file(
    session: Session[Any],
    store: ObjectStore,
    *,
    path: str,
    name: str,
    size: int,
    key: str,
    tar_checksums: Mapping[str, str] | None,
    settings: StreamSettings = DEFAULT_STREAM,
    progress: Progress | None = None,
    buffers: PartBuffers | None = None,
) -> ManifestObject:
    """Upload one file; verify its tar members against ``tar_checksums`` (None: not a tar).

    ``buffers``: part buffers to reuse (shared by the files of one artifact); else new ones.

    Raises ``ArtifactCorrupt`` (naming file and member), ``TruncatedFile``, ``SshError`` or a
    ``StorageError``; the multipart upload is aborted on every failure.
    """
    part = part_size(size, minimum=settings.min_part_size)
    digest = hashlib.sha256()
    tar = TarHasher(name) if tar_checksums is not None else None
    reader = _ResumingReader(session, path, settings)
    try:
        if size < settings.min_part_size:
            data = _read_small(reader, path, size)
            digest.update(data)
            if tar is not None:
                tar.feed(data)
            members = _verified(tar, name, tar_checksums)
            store.put(key, data)
            if progress:
                progress(size)
        else:
            pool = (buffers or PartBuffers(settings)).of_size(part)
            members = _multipart(
                pool,
                reader,
                store,
                key,
                path,
                size,
                part,
                digest,
                tar,
                name,
                tar_checksums,
                settings,
                progress,
            )
    finally:
        reader.close()
    return ManifestObject(
        name=name, key=key, size=size, sha256=digest.hexdigest(), member_checksums=members
    )


def _read_small(reader: _ResumingReader, path: str, size: int) -> bytes:
    buffer = bytearray(size + 1)  # one spare byte: a file longer than listed is caught too
    got = reader.fill(memoryview(buffer), size + 1)
    if got != size:
        raise TruncatedFile(path, size, got)
    return bytes(buffer[:size])


def _verified(tar: TarHasher | None, name: str, checksums: Mapping[str, str] | None) -> int:
    if tar is None or checksums is None:
        return 0
    members = tar.close()
    verify_members(name, members, dict(checksums))
    return len(members)


class _Hashing:
    """The file's SHA-256 and the tar's members, each in its own thread, parts in order.

    hashlib releases the GIL, so both run beside the thread that reads the SSH channel (which
    would otherwise spend two thirds of its time hashing) and beside the uploads.
    """

    def __init__(self, digest: hashlib._Hash, tar: TarHasher | None) -> None:
        self._steps: list[tuple[ThreadPoolExecutor, Callable[[memoryview], object]]] = [
            (ThreadPoolExecutor(1, thread_name_prefix="sha256"), digest.update)
        ]
        if tar is not None:
            self._steps.append((ThreadPoolExecutor(1, thread_name_prefix="tar"), tar.feed))

    def submit(self, chunk: memoryview) -> list[Future[object]]:
        return [pool.submit(step, chunk) for pool, step in self._steps]

    def shutdown(self) -> None:
        for pool, _step in self._steps:
            pool.shutdown(wait=True, cancel_futures=True)


def _multipart(
    buffers: queue.Queue[bytearray],
    reader: _ResumingReader,
    store: ObjectStore,
    key: str,
    path: str,
    size: int,
    part: int,
    digest: hashlib._Hash,
    tar: TarHasher | None,
    name: str,
    tar_checksums: Mapping[str, str] | None,
    settings: StreamSettings,
    progress: Progress | None,
) -> int:
    upload = store.start_upload(key)
    failed = threading.Event()
    pending: list[Future[Any]] = []
    hashing = _Hashing(digest, tar)
    try:
        with ThreadPoolExecutor(settings.parts_in_flight, thread_name_prefix="s3-part") as pool:
            offset, number = 0, 1
            while offset < size and not failed.is_set():
                buffer = buffers.get()
                view = memoryview(buffer)
                want = min(part, size - offset)
                got = reader.fill(view, want)
                if got != want:
                    raise TruncatedFile(path, size, offset + got)
                chunk = view[:got]
                stages: list[Future[Any]] = [
                    pool.submit(_send, upload, number, chunk),
                    *hashing.submit(chunk),
                ]
                _recycle_after(stages, buffers, buffer, failed)
                pending.extend(stages)
                offset += got
                number += 1
                if progress:
                    progress(got)
            for future in pending:
                future.result()
        if reader.fill(memoryview(bytearray(1)), 1):
            raise TruncatedFile(path, size, size + 1)
        members = _verified(tar, name, tar_checksums)
        upload.complete()
        return members
    except BaseException:
        failed.set()
        _abort(upload)
        raise
    finally:
        hashing.shutdown()


def _send(upload: MultipartUpload, number: int, chunk: memoryview) -> None:
    upload.upload_part(number, chunk)


def _recycle_after(
    stages: list[Future[Any]],
    buffers: queue.Queue[bytearray],
    buffer: bytearray,
    failed: threading.Event,
) -> None:
    """Return ``buffer`` to the pool once every stage using it (upload, hashes) is done."""
    remaining = [len(stages)]
    lock = threading.Lock()

    def done(future: Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            failed.set()
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            buffers.put(buffer)

    for stage in stages:
        stage.add_done_callback(done)


def _abort(upload: MultipartUpload) -> None:
    try:
        upload.abort()
    except OrchestratorError as exc:
        log.error("multipart_abort_failed", key=upload.key, error=str(exc))
