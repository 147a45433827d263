"""Verify a stored backup from the object store alone (no platform, no jumpbox).

Every selected object is re-read through one reusable buffer (memory does not grow with
object size) and re-hashed: its presence, size and SHA-256 against the manifest, and for each
tar every member against bbr's ``metadata``. Unlike a fetch, which stops at the first fault,
a verification reports every problem it finds, each naming the object key (and member), so an
operator sees the whole damage at once. A store that cannot be read (an outage, access denied)
raises ``StorageError``: that says nothing about the backup and marks nothing unrestorable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from bbr_orchestrator.actions.stored_backup import (
    METADATA,
    check_digest,
    check_layout,
    read_small,
    tar_checksums,
)
from bbr_orchestrator.core.bbr_metadata import verify_members
from bbr_orchestrator.core.layout import Manifest, ManifestObject, parse_manifest
from bbr_orchestrator.core.tar_stream import TarHasher
from bbr_orchestrator.errors import ArtifactCorrupt, MetadataInvalid
from bbr_orchestrator.ports import ObjectStore

log = structlog.get_logger(__name__)

MiB = 1024 * 1024
SMALL_LIMIT = 64 * MiB

Select = Callable[[ManifestObject], bool]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a stored backup."""

    key: str
    member: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.key} member {self.member}" if self.member else self.key
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class VerifyReport:
    """What a verification read and what it found."""

    manifest_key: str
    objects_checked: int
    bytes_checked: int
    members_checked: int
    skipped: int
    """Objects not selected this time (rolling verification)."""
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_backup(
    store: ObjectStore,
    manifest_key: str,
    *,
    select: Select | None = None,
    buffer_size: int = 8 * MiB,
) -> VerifyReport:
    """Re-check the backup committed by ``manifest_key``; ``select`` limits which data objects
    are re-read (the manifest and bbr's metadata are always checked)."""
    problems: list[Problem] = []
    found = store.head(manifest_key)
    if found is None:
        absent = Problem(manifest_key, None, "no manifest: the backup is incomplete")
        return VerifyReport(manifest_key, 0, 0, 0, 0, (absent,))
    try:
        manifest = parse_manifest(
            read_small(store, manifest_key, found.size, SMALL_LIMIT), manifest_key
        )
        objects = {o.name: o for o in manifest.objects}
        if METADATA in objects:
            check_layout(manifest, manifest_key, objects)
    except (ArtifactCorrupt, MetadataInvalid) as exc:
        return VerifyReport(manifest_key, 0, 0, 0, 0, (_problem(manifest_key, exc),))
    expected = _expected_members(store, manifest_key, objects, problems)
    checker = _Checker(store, memoryview(bytearray(buffer_size)))
    skipped = 0
    for obj in manifest.objects:
        if obj.name == METADATA:
            continue
        if select is not None and not select(obj):
            skipped += 1
            continue
        bad = checker.check(obj, expected.get(obj.name) if expected is not None else None)
        if bad is not None:
            problems.append(bad)
    report = VerifyReport(
        manifest_key, checker.objects, checker.bytes, checker.members, skipped, tuple(problems)
    )
    _log(report, manifest)
    return report


def _expected_members(
    store: ObjectStore,
    manifest_key: str,
    objects: Mapping[str, ManifestObject],
    problems: list[Problem],
) -> dict[str, dict[str, str]] | None:
    """bbr's member checksums per tar (None for a non-bbr backup such as an Ops Manager
    export, or when the metadata itself is damaged: its problem is recorded)."""
    metadata = objects.get(METADATA)
    if metadata is None:
        return None
    if store.head(metadata.key) is None:
        problems.append(Problem(metadata.key, None, "listed in the manifest, missing"))
        return None
    try:
        raw = read_small(store, metadata.key, metadata.size, SMALL_LIMIT)
        check_digest(metadata, len(raw), hashlib.sha256(raw).hexdigest())
        return tar_checksums(raw, metadata.key, manifest_key, objects)
    except (ArtifactCorrupt, MetadataInvalid) as exc:
        problems.append(_problem(metadata.key, exc))
        return None


class _Checker:
    """Reads objects through one buffer, hashing (and walking tars) on the way."""

    def __init__(self, store: ObjectStore, view: memoryview) -> None:
        self.store, self.view = store, view
        self.objects = self.bytes = self.members = 0

    def check(self, obj: ManifestObject, members: Mapping[str, str] | None) -> Problem | None:
        stored = self.store.head(obj.key)
        if stored is None:
            return Problem(obj.key, None, "listed in the manifest, missing from the store")
        if stored.size != obj.size:
            reason = f"the store holds {stored.size} bytes, the manifest records {obj.size}"
            return Problem(obj.key, None, reason)
        self.objects += 1
        digest, tar = hashlib.sha256(), TarHasher(obj.key) if members is not None else None
        stream, total = self.store.open_read(obj.key, 0), 0
        try:
            while n := stream.readinto(self.view):
                total += n
                digest.update(self.view[:n])
                if tar is not None:
                    tar.feed(self.view[:n])
            self.bytes += total
            if tar is not None and members is not None:
                found = tar.close()
                self.members += len(found)
                verify_members(obj.key, found, members)
            check_digest(obj, total, digest.hexdigest())
        except ArtifactCorrupt as exc:  # TarStreamError included
            return _problem(obj.key, exc)
        finally:
            stream.close()
        return None


def _problem(key: str, exc: ArtifactCorrupt | MetadataInvalid) -> Problem:
    if isinstance(exc, ArtifactCorrupt):
        return Problem(exc.file or key, exc.member, exc.reason)
    return Problem(key, None, str(exc))


def _log(report: VerifyReport, manifest: Manifest) -> None:
    fields = {
        "manifest_key": report.manifest_key,
        "objects": report.objects_checked,
        "bytes": report.bytes_checked,
        "members": report.members_checked,
        "skipped": report.skipped,
        "run_id": manifest.run_id,
    }
    if report.ok:
        log.info("backup_verified", **fields)
    else:
        log.warning(
            "backup_verification_failed", problems=[str(p) for p in report.problems], **fields
        )
