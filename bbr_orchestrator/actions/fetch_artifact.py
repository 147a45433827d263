"""Fetch a stored backup onto the jumpbox, verified before bbr ever sees the directory.

``manifest.json`` lists every object with its size and SHA-256; bbr's ``metadata`` (checked
against the manifest, read first) gives the SHA-256 of every tar member. Each object streams
from the store to a 0600 file on the jumpbox through one reusable buffer (memory does not grow
with object size) and is hashed on the way: its size, SHA-256 and every tar member must match.
On any failure the whole artifact directory is removed and the error names the object key
(and member). A write that breaks (``TransferInterrupted``) is redone from byte 0 on a new
connection, a bounded number of times; the store's read stream resumes dropped GETs itself.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import structlog

from bbr_orchestrator.actions.stored_backup import (
    METADATA,
    check_digest,
    check_layout,
    read_small,
    tar_checksums,
)
from bbr_orchestrator.actions.upload import Progress
from bbr_orchestrator.core.bbr_metadata import verify_members
from bbr_orchestrator.core.layout import Manifest, ManifestObject, parse_manifest
from bbr_orchestrator.core.tar_stream import TarHasher
from bbr_orchestrator.errors import (
    ArtifactCorrupt,
    BackupIncomplete,
    OrchestratorError,
    RemoteFileError,
    TransferInterrupted,
)
from bbr_orchestrator.ports import FileTransfer, Jumpbox, ObjectStore, ReadStream, WriteStream

log = structlog.get_logger(__name__)

MiB = 1024 * 1024
_TIMEOUT = 60


@dataclass(frozen=True)
class FetchSettings:
    """Tuning of the download; memory is one ``buffer_size`` buffer plus the metadata."""

    buffer_size: int = 8 * MiB
    write_attempts: int = 3
    """How many times one file may be written (from byte 0) after an SSH write broke."""
    retry_backoff: float = 1.0
    small_limit: int = 64 * MiB
    """Largest manifest / metadata read into memory."""


DEFAULT_FETCH = FetchSettings()


@dataclass(frozen=True)
class FetchedArtifact:
    """A verified artifact directory on the jumpbox, ready for ``bbr restore --artifact-path``."""

    name: str
    path: str
    manifest: Manifest


@runtime_checkable
class _Abortable(Protocol):
    def abort(self) -> None: ...


@runtime_checkable
class _Closable(Protocol):
    def close(self) -> None: ...


def fetch_artifact(
    jumpbox: Jumpbox,
    connect: Callable[[], FileTransfer],
    store: ObjectStore,
    *,
    manifest_key: str,
    workdir: str,
    settings: FetchSettings = DEFAULT_FETCH,
    progress: Progress | None = None,
) -> FetchedArtifact:
    """Download the backup committed by ``manifest_key`` into ``{workdir}/{artifact_dir}``.

    Raises ``BackupIncomplete`` (no manifest, a listed object missing), ``ArtifactCorrupt``
    (naming the object key and, for a tar, the member), ``SshError`` or ``StorageError``.
    Nothing is left on the jumpbox when it raises after creating the directory.
    """
    found = store.head(manifest_key)
    if found is None:
        raise BackupIncomplete(manifest_key, "no manifest")
    manifest = parse_manifest(
        read_small(store, manifest_key, found.size, settings.small_limit), manifest_key
    )
    objects = {o.name: o for o in manifest.objects}
    check_layout(manifest, manifest_key, objects)
    for obj in manifest.objects:
        stored = store.head(obj.key)
        if stored is None:
            raise BackupIncomplete(obj.key, "listed in the manifest, missing from the store")
        if stored.size != obj.size:
            reason = f"the store holds {stored.size} bytes, the manifest records {obj.size}"
            raise ArtifactCorrupt(obj.key, None, reason)
    metadata = objects[METADATA]
    raw = read_small(store, metadata.key, metadata.size, settings.small_limit)
    check_digest(metadata, len(raw), hashlib.sha256(raw).hexdigest())
    expected = tar_checksums(raw, metadata.key, manifest_key, objects)
    path = f"{workdir.rstrip('/')}/{manifest.artifact_dir}"
    _make_dir(jumpbox, path)
    copier = _Copier(jumpbox, connect, settings, progress)
    try:
        copier.copy(metadata, functools.partial(io.BytesIO, raw), f"{path}/{METADATA}", None)
        for obj in manifest.objects:
            if obj.name != METADATA:
                source = functools.partial(store.open_read, obj.key, 0)
                copier.copy(obj, source, f"{path}/{obj.name}", expected.get(obj.name))
    except BaseException as exc:
        _remove_dir(jumpbox, path, exc)
        raise
    finally:
        copier.release()
    total = sum(o.size for o in manifest.objects)
    log.info("artifact_fetched", path=path, objects=len(objects), size_bytes=total)
    return FetchedArtifact(manifest.artifact_dir, path, manifest)


def _run(jumpbox: Jumpbox, argv: tuple[str, ...]) -> str | None:
    """Run a short command on the jumpbox; None when it succeeded, else what went wrong."""
    lines: list[str] = []
    status = jumpbox.run(argv, on_line=lambda _s, line: lines.append(line), timeout=_TIMEOUT)
    return None if status == 0 else f"`{argv[0]}` exit status {status}: {' / '.join(lines)}"


def _make_dir(jumpbox: Jumpbox, path: str) -> None:
    """Create the artifact directory (0700); it must be empty (bbr sees only what we verify)."""
    problem = _run(jumpbox, ("mkdir", "-p", "-m", "0700", path))
    if problem is None and (present := jumpbox.list_files(path)):
        problem = f"already holds {len(present)} files"
    if problem is not None:
        raise RemoteFileError(jumpbox.host, path, problem)


def _remove_dir(jumpbox: Jumpbox, path: str, cause: BaseException) -> None:
    """Remove the half-fetched directory; a failure to do so is noted on ``cause``."""
    try:
        problem = _run(jumpbox, ("rm", "-rf", path))
    except OrchestratorError as exc:
        problem = str(exc)
    if problem is None:
        log.warning("artifact_fetch_removed", path=path, error=str(cause))
    else:
        log.error("artifact_fetch_cleanup_failed", path=path, error=problem)
        cause.add_note(f"the unverified directory {path} could not be removed: {problem}")


Source = Callable[[], ReadStream]
Checksums = Mapping[str, str] | None
"""A tar's member checksums from bbr's metadata; None for a file that is not a tar."""


@dataclass
class _Copier:
    """Copies objects to jumpbox files through one reusable buffer, verifying on the way."""

    owner: FileTransfer
    connect: Callable[[], FileTransfer]
    settings: FetchSettings
    progress: Progress | None

    def __post_init__(self) -> None:
        self.files = self.owner
        self._view = memoryview(bytearray(self.settings.buffer_size))

    def copy(self, obj: ManifestObject, source: Source, path: str, members: Checksums) -> None:
        """Write ``path`` from byte 0, again after each broken write, up to the attempts."""
        for attempt in range(1, self.settings.write_attempts + 1):
            try:
                return self._copy_once(obj, source, path, members)
            except TransferInterrupted as exc:
                if attempt == self.settings.write_attempts:
                    raise
                log.warning("ssh_write_restarted", path=path, attempt=attempt, error=str(exc))
                time.sleep(self.settings.retry_backoff * attempt)
                self.release()
                self.files = self.connect()

    def release(self) -> None:
        """Close the connection we opened after a broken write (never the caller's jumpbox)."""
        if self.files is not self.owner and isinstance(self.files, _Closable):
            with contextlib.suppress(OrchestratorError, OSError):
                self.files.close()

    def _copy_once(
        self, obj: ManifestObject, source: Source, path: str, members: Checksums
    ) -> None:
        stream, digest = source(), hashlib.sha256()
        tar = TarHasher(obj.key) if members is not None else None
        try:
            writer, total = self.files.open_write(path, 0o600), 0
            try:
                while n := stream.readinto(self._view):
                    total += n
                    if total > obj.size:
                        reason = f"longer than the {obj.size} bytes recorded"
                        raise ArtifactCorrupt(obj.key, None, reason)
                    digest.update(self._view[:n])
                    if tar is not None:
                        tar.feed(self._view[:n])
                    writer.write(self._view[:n])
                    if self.progress is not None:
                        self.progress(n)
                if tar is not None and members is not None and total == obj.size:
                    verify_members(obj.key, tar.close(), members)
                check_digest(obj, total, digest.hexdigest())
            except BaseException:
                _abort(writer)
                raise
            writer.close()
        finally:
            with contextlib.suppress(OrchestratorError):
                stream.close()


def _abort(writer: WriteStream) -> None:
    """Stop a writer without finishing it (the directory is removed next)."""
    with contextlib.suppress(OrchestratorError):
        if isinstance(writer, _Abortable):
            writer.abort()
        else:
            writer.close()
