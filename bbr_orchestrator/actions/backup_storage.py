"""After a backup (or an installation export): store its artifact in the object store, record
the objects, free the jumpbox.

The run moves to succeeded only after the manifest exists (it is written last). When storing
fails, the artifact stays in the run directory on the jumpbox, so nothing is lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from bbr_orchestrator.actions import workdirs
from bbr_orchestrator.actions.progress import ProgressDisplay, TransferProgress
from bbr_orchestrator.actions.run_log import RunLogWriter
from bbr_orchestrator.actions.session import Session
from bbr_orchestrator.actions.store_artifact import (
    ArtifactSource,
    StoredFiles,
    store_artifact,
    upload_files,
)
from bbr_orchestrator.actions.upload import DEFAULT_STREAM, Progress, StreamSettings
from bbr_orchestrator.core.layout import Manifest, ManifestObject, manifest_json, manifest_key
from bbr_orchestrator.core.models import Artifact, Run, TargetKind
from bbr_orchestrator.ports import Catalog, Clock, Jumpbox, ObjectStore


@dataclass(frozen=True)
class Storage:
    """Where backups go and how they stream there."""

    store: ObjectStore
    prefix: str
    orchestrator_version: str
    settings: StreamSettings = DEFAULT_STREAM
    progress: Progress | None = None
    """Called with every batch of bytes read (tests use it to act mid-transfer)."""
    display: ProgressDisplay | None = None
    """A progress bar for a person at a terminal."""
    encryption_key_id: str | None = None
    """The key ``store`` encrypts data objects with (recorded in the manifest); None: none."""


def bbr_version(shell: Jumpbox, bbr: str, writer: RunLogWriter) -> str | None:
    """``bbr version`` on the jumpbox (``bbr version 1.9.79`` -> ``1.9.79``), for the manifest."""
    lines: list[str] = []
    if shell.run((bbr, "version"), on_line=lambda _s, line: lines.append(line), timeout=60) != 0:
        writer.event(f"`{bbr} version` failed: {' / '.join(lines)[:200]}")
        return None
    words = " ".join(lines).split()
    return words[-1] if words else None


def store_backup(
    catalog: Catalog,
    session: Session[Jumpbox],
    clock: Clock,
    storage: Storage,
    run: Run,
    target_kind: TargetKind,
    workdir: str,
    version: str | None,
    writer: RunLogWriter,
    *,
    bbr_outcome: str | None = None,
) -> int:
    """Upload, verify and record the bbr artifact in ``workdir``; returns the bytes stored.
    ``bbr_outcome`` (bbr's decoded exit) goes into the manifest, so a catalog rebuilt from the
    bucket knows an unlock-failed backup from a clean one."""
    source = replace(_source(storage, run, target_kind, workdir, version), bbr_outcome=bbr_outcome)

    def upload(hooks: _Hooks) -> Manifest:
        return store_artifact(
            session,
            storage.store,
            clock,
            source,
            settings=storage.settings,
            progress=hooks.progress,
            on_object=hooks.on_object,
            on_total=hooks.on_total,
        )

    return _store_and_record(catalog, session, storage, run, workdir, writer, upload)


def store_files(
    catalog: Catalog,
    session: Session[Jumpbox],
    clock: Clock,
    storage: Storage,
    run: Run,
    target_kind: TargetKind,
    workdir: str,
    artifact: StoredFiles,
    writer: RunLogWriter,
) -> int:
    """Upload, verify (SHA-256 on the jumpbox) and record files that are not a bbr artifact
    (an Ops Manager installation export); the manifest goes last, ``workdir`` is removed once
    everything is stored. Returns the bytes stored."""
    source = _source(storage, run, target_kind, workdir, None)

    def upload(hooks: _Hooks) -> Manifest:
        return upload_files(
            session,
            storage.store,
            clock,
            source,
            artifact,
            settings=storage.settings,
            progress=hooks.progress,
            on_object=hooks.on_object,
            on_total=hooks.on_total,
        )

    return _store_and_record(catalog, session, storage, run, workdir, writer, upload)


@dataclass(frozen=True)
class _Hooks:
    progress: Progress
    on_object: Callable[[ManifestObject], None]
    on_total: Callable[[int], None]


def _source(
    storage: Storage, run: Run, target_kind: TargetKind, workdir: str, version: str | None
) -> ArtifactSource:
    return ArtifactSource(
        run_id=run.id,
        target=run.target,
        target_kind=target_kind,
        workdir=workdir,
        prefix=storage.prefix,
        bbr_version=version,
        orchestrator_version=storage.orchestrator_version,
        started_at=run.started_at or run.created_at,
        plan=run.plan,
        restore_point_id=run.restore_point_id,
        step=run.step,
        trigger=run.trigger.value,
        triggered_by=run.triggered_by,
        encryption_key_id=storage.encryption_key_id,
    )


def _store_and_record(
    catalog: Catalog,
    session: Session[Jumpbox],
    storage: Storage,
    run: Run,
    workdir: str,
    writer: RunLogWriter,
    upload: Callable[[_Hooks], Manifest],
) -> int:
    """Run ``upload`` with progress reporting, record its objects and manifest in the catalog,
    and remove ``workdir`` from the jumpbox."""

    def recorded(stored: ManifestObject) -> None:
        writer.event(f"stored {stored.key} ({stored.size} bytes, sha256 {stored.sha256})")

    events = TransferProgress(writer.logger, storage.display)

    def progress(n: int) -> None:
        events(n)
        if storage.progress is not None:
            storage.progress(n)

    manifest = upload(_Hooks(progress, recorded, events.start))
    marker = manifest_json(manifest)
    marker_key = manifest_key(storage.prefix, run.target, manifest.artifact_dir)
    catalog.add_artifacts(
        [
            *(
                Artifact(run.id, o.key, o.size, o.sha256, o.member_checksums)
                for o in manifest.objects
            ),
            Artifact(run.id, marker_key, len(marker), hashlib.sha256(marker).hexdigest()),
        ]
    )
    total = sum(o.size for o in manifest.objects)
    writer.event(
        f"manifest written: {len(manifest.objects)} objects, {total} bytes, "
        f"{sum(o.member_checksums for o in manifest.objects)} tar members verified"
    )
    workdirs.remove(session.current, [workdir], writer, "the artifact is stored")
    return total
