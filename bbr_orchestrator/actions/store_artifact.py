"""Store a finished bbr artifact: every file streamed and verified, the manifest written last.

bbr's ``metadata`` is read first (it is small): its per-member checksums are what every tar
is verified against while it streams. Files bbr's metadata does not cover (``metadata``
itself, ``manifest.yml``) are compared with a SHA-256 taken on the jumpbox. Only when every
object is stored does ``manifest.json`` go up: a backup without its manifest is incomplete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from bbr_orchestrator.actions.session import Session
from bbr_orchestrator.actions.upload import DEFAULT_STREAM, Progress, StreamSettings, stream_file
from bbr_orchestrator.core.bbr_metadata import (
    BbrMetadata,
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
    """Upload the artifact in ``source.workdir``; returns the manifest (already stored)."""
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
    if on_total is not None:
        on_total(sum(listing.values()))
    objects: list[ManifestObject] = []
    for name in sorted(listing):
        if name.endswith(".tar") and name not in expected:
            raise ArtifactCorrupt(f"{directory}/{name}", None, "a tar that metadata does not list")
        stored = stream_file(
            session,
            store,
            path=f"{directory}/{name}",
            name=name,
            size=listing[name],
            key=object_key(source.prefix, source.target, artifact_dir, name),
            tar_checksums=expected.get(name),
            settings=settings,
            progress=progress,
        )
        if name not in expected:
            remote = session.current.sha256(f"{directory}/{name}")
            if remote != stored.sha256:
                raise ArtifactCorrupt(
                    f"{directory}/{name}",
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
        artifact_dir=artifact_dir,
        objects=tuple(objects),
        metadata=summarise(metadata),
        started_at=source.started_at,
        finished_at=clock.now(),
        orchestrator_version=source.orchestrator_version,
    )
    store.put(manifest_key(source.prefix, source.target, artifact_dir), manifest_json(manifest))
    return manifest
