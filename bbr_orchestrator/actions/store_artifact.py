"""Store a finished artifact: every file streamed and verified, the manifest written last.

bbr's ``metadata`` is read first (it is small): its per-member checksums are what every tar
is verified against while it streams. Files bbr's metadata does not cover (``metadata``
itself, ``manifest.yml``) are compared with a SHA-256 taken on the jumpbox. Only when every
object is stored does ``manifest.json`` go up: a backup without its manifest is incomplete.
:func:`upload_files` is that generic part, for artifacts that are not bbr's (an Ops Manager
installation export).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from bbr_orchestrator.actions.session import Session
from bbr_orchestrator.actions.upload import (
    DEFAULT_STREAM,
    PartBuffers,
    Progress,
    StreamSettings,
    stream_file,
)
from bbr_orchestrator.core.bbr_metadata import (
    BbrMetadata,
    MetadataSummary,
    expected_tar_checksums,
    parse_metadata,
    summarise,
)
from bbr_orchestrator.core.layout import (
    Manifest,
    ManifestObject,
    manifest_json,
    manifest_key,
    object_key,
)
from bbr_orchestrator.core.models import TargetKind
from bbr_orchestrator.errors import ArtifactCorrupt
from bbr_orchestrator.ports import Clock, FileTransfer, ObjectStore

METADATA = "metadata"
_METADATA_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class ArtifactSource:
    """Where the artifact is and what it belongs to."""

    run_id: str
    target: str
    target_kind: TargetKind
    workdir: str
    prefix: str
    bbr_version: str | None
    orchestrator_version: str
    started_at: datetime
    plan: str | None = None
    restore_point_id: str | None = None
    step: int | None = None
    trigger: str | None = None
    triggered_by: str | None = None
    encryption_key_id: str | None = None
    bbr_outcome: str | None = None


def find_artifact_dir(files: FileTransfer, workdir: str) -> str:
    """The one artifact directory bbr created in the run directory."""
    dirs = files.list_dirs(workdir)
    if len(dirs) != 1:
        found = ", ".join(dirs) or "none"
        raise ArtifactCorrupt(workdir, None, f"expected one artifact directory, found {found}")
    return dirs[0]


def read_metadata(files: FileTransfer, path: str) -> BbrMetadata:
    stream = files.open_read(path)
    text, chunk = bytearray(), bytearray(64 * 1024)
    try:
        while (n := stream.readinto(memoryview(chunk))) > 0:
            text += chunk[:n]
            if len(text) > _METADATA_LIMIT:
                raise ArtifactCorrupt(path, None, "metadata is larger than 64 MiB")
    finally:
        stream.close()
    return load_metadata(bytes(text), path)


def load_metadata(raw: bytes, source: str) -> BbrMetadata:
    """Parse the bytes of bbr's ``metadata`` file; bad YAML or shape is ``ArtifactCorrupt``."""
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ArtifactCorrupt(source, None, f"metadata is not valid YAML: {exc}") from exc
    return parse_metadata(data, source)


def store_artifact(
    session: Session[Any],
    store: ObjectStore,
    clock: Clock,
    source: ArtifactSource,
    *,
    settings: StreamSettings = DEFAULT_STREAM,
    progress: Progress | None = None,
    on_object: Callable[[ManifestObject], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Manifest:
    """Upload the bbr artifact in ``source.workdir``; returns the manifest (already stored)."""
    artifact_dir = find_artifact_dir(session.current, source.workdir)
    directory = f"{source.workdir}/{artifact_dir}"
    listing = dict(session.current.list_files(directory))
    if METADATA not in listing:
        raise ArtifactCorrupt(directory, None, "bbr's metadata file is missing")
    metadata = read_metadata(session.current, f"{directory}/{METADATA}")
    expected = expected_tar_checksums(metadata)
    missing = sorted(set(expected) - set(listing))
    if missing:
        raise ArtifactCorrupt(directory, missing[0], "listed in metadata but not in the artifact")
    for name in sorted(listing):
        if name.endswith(".tar") and name not in expected:
            raise ArtifactCorrupt(f"{directory}/{name}", None, "a tar that metadata does not list")
    return upload_files(
        session,
        store,
        clock,
        source,
        StoredFiles(artifact_dir, directory, tuple(sorted(listing.items())), summarise(metadata)),
        tar_checksums=expected,
        settings=settings,
        progress=progress,
        on_object=on_object,
        on_total=on_total,
    )


@dataclass(frozen=True)
class StoredFiles:
    """The files of one artifact to store: ``{prefix}/{target}/{artifact_dir}/{name}`` each,
    read from ``directory`` on the jumpbox; ``summary`` goes into the manifest."""

    artifact_dir: str
    directory: str
    files: tuple[tuple[str, int], ...]
    """``(name, size)`` in upload order."""
    summary: MetadataSummary


def upload_files(
    session: Session[Any],
    store: ObjectStore,
    clock: Clock,
    source: ArtifactSource,
    artifact: StoredFiles,
    *,
    tar_checksums: Mapping[str, Mapping[str, str]] | None = None,
    settings: StreamSettings = DEFAULT_STREAM,
    progress: Progress | None = None,
    on_object: Callable[[ManifestObject], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Manifest:
    """Stream every file to the object store, then write ``manifest.json`` (last).

    A file with member checksums in ``tar_checksums`` is verified member by member while it
    streams; any other file is compared with a SHA-256 taken on the jumpbox after it streamed,
    so a file that changed or was cut short while being read fails (``ArtifactCorrupt``).
    """
    checksums = tar_checksums or {}
    if on_total is not None:
        on_total(sum(size for _, size in artifact.files))
    objects: list[ManifestObject] = []
    buffers = PartBuffers(settings)
    for name, size in artifact.files:
        path = f"{artifact.directory}/{name}"
        stored = stream_file(
            session,
            store,
            path=path,
            name=name,
            size=size,
            key=object_key(source.prefix, source.target, artifact.artifact_dir, name),
            tar_checksums=checksums.get(name),
            settings=settings,
            progress=progress,
            buffers=buffers,
        )
        if name not in checksums:
            remote = session.current.sha256(path)
            if remote != stored.sha256:
                raise ArtifactCorrupt(
                    path,
                    None,
                    f"SHA-256 on the jumpbox {remote} differs from the bytes read {stored.sha256}",
                )
        objects.append(stored)
        if on_object is not None:
            on_object(stored)
    manifest = Manifest(
        run_id=source.run_id,
        target=source.target,
        target_kind=source.target_kind,
        bbr_version=source.bbr_version,
        artifact_dir=artifact.artifact_dir,
        objects=tuple(objects),
        metadata=artifact.summary,
        started_at=source.started_at,
        finished_at=clock.now(),
        orchestrator_version=source.orchestrator_version,
        plan=source.plan,
        restore_point_id=source.restore_point_id,
        step=source.step,
        trigger=source.trigger,
        triggered_by=source.triggered_by,
        encryption_key_id=source.encryption_key_id,
        bbr_outcome=source.bbr_outcome,
    )
    key = manifest_key(source.prefix, source.target, artifact.artifact_dir)
    store.put(key, manifest_json(manifest))
    return manifest
