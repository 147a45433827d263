"""Rebuild the catalog's backup runs and their artifact rows from the manifests in the bucket.

Every ``{prefix}/{target}/{artifact_dir}/manifest.json`` commits one backup (it is written
last). Each whose run id the catalog lacks is recreated as the upload recorded it: kind
``backup`` (``opsman-export`` for an Ops Manager target), state and outcome ``succeeded``,
``created_at``/``started_at`` the manifest's ``started_at``, ``finished_at`` its
``finished_at``, ``bytes_total`` the data objects' sizes (the manifest excluded), one artifact
row per object plus the row of ``manifest.json`` itself (size and SHA-256 as stored). Plan,
restore point, step, trigger and triggered_by come from the manifest when it has them (written
since those fields exist); otherwise: no plan, ``operator``, ``catalog-rebuild``. The run log
gets one line, ``rebuilt from <manifest key>``.

A restore point the catalog lacks is recreated (``triggered_by`` ``catalog-rebuild``) from its
earliest backup's start to its latest backup's finish. The bucket holds only the steps that
stored something, so its state is inferred: ``partial`` when it lacks a backup of a target that
the plan's points up to it hold (and the plan, when configured, still backs up), else
``complete``. Retention deletes points that are not complete, so a target added to the plan
later does not make the earlier points partial; the price: a failed step of a target the
bucket never held a backup of (before that point) goes unseen, and a point stored although one
of its steps failed after storing (``unlock-failed``) comes back complete.

Not in the bucket, so not rebuilt: the run log, ``exit_code`` (left empty), the daemon and
heartbeat, verification results, a step's queue time (``created_at`` is its start), the exact
finish (the manifest's ``finished_at`` is when it was written, moments before the run ended),
a restore point's ``scheduled_for`` and who fired it, runs that stored nothing (failures,
checks, restores, verifies, drills). A backup stored although bbr's unlock failed (recorded
``unlock-failed``) comes back ``succeeded``: the manifest does not hold bbr's exit status.

Runs the catalog holds are left alone: a second rebuild adds nothing. A manifest that cannot be
read or parsed, does not match its key, lists objects missing from the bucket, or shares its
run id with another is reported by key and skipped. Objects in a directory without a manifest
(an unfinished or failed upload, or one in progress) are reported as orphans and get no rows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from bbr_orchestrator.actions.stored_backup import read_small
from bbr_orchestrator.core.layout import MANIFEST_NAME, Manifest, parse_manifest
from bbr_orchestrator.core.models import (
    Artifact,
    LogStream,
    NewRestorePoint,
    NewRun,
    RestorePointState,
    RestorePointUpdate,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.errors import (
    ArtifactCorrupt,
    RestorePointNotFound,
    RunConflict,
    RunNotFound,
    StorageError,
)
from bbr_orchestrator.ports import Catalog, Clock, ObjectStore, StoredObject

log = structlog.get_logger(__name__)

REBUILT_BY = "catalog-rebuild"
"""``triggered_by`` of what the rebuild had to invent (a run whose manifest names nobody, and
every recreated restore point)."""
MANIFEST_LIMIT = 16 * 1024 * 1024
_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")
_NAME_LIMIT = 255


@dataclass(frozen=True)
class Problem:
    """A manifest (or object) the rebuild could not use, by key."""

    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.key}: {self.reason}"


@dataclass(frozen=True)
class Orphan:
    """Objects of an artifact directory that no manifest commits."""

    directory: str
    keys: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class RebuiltRun:
    """A run recreated (or, in a dry run, that would be) from one manifest."""

    run: NewRun
    update: RunUpdate
    manifest_key: str
    artifacts: tuple[Artifact, ...]


@dataclass(frozen=True)
class RebuiltPoint:
    """A restore point recreated (or that would be)."""

    point: NewRestorePoint
    update: RestorePointUpdate


@dataclass(frozen=True)
class RebuildReport:
    """What the rebuild found in the bucket and what it recorded."""

    dry_run: bool
    manifests: tuple[str, ...]
    rebuilt: tuple[RebuiltRun, ...]
    present: tuple[str, ...]
    """Run ids the catalog already held (left alone)."""
    points: tuple[RebuiltPoint, ...]
    problems: tuple[Problem, ...]
    orphans: tuple[Orphan, ...]


@dataclass(frozen=True)
class _Found:
    """A readable, consistent manifest and its bytes as stored."""

    key: str
    raw: bytes
    manifest: Manifest


@dataclass
class _Scan:
    manifests: list[str] = field(default_factory=list)
    found: list[_Found] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)


def rebuild_catalog(
    catalog: Catalog,
    store: ObjectStore,
    prefix: str,
    clock: Clock,
    *,
    dry_run: bool = False,
    plan_targets: Mapping[str, Collection[str]] | None = None,
) -> RebuildReport:
    """Recreate the backup runs (and restore points) the catalog lacks from the manifests
    under ``prefix``; with ``dry_run`` nothing is written. ``plan_targets`` (each configured
    plan's targets) keeps a target a plan no longer backs up from making points partial.

    A listing the store refuses raises ``StorageError``; a catalog error raises as usual."""
    scan = _scan(store, prefix)
    points = _Points(catalog, scan.found, plan_targets, dry_run)
    rebuilt: list[RebuiltRun] = []
    present: list[str] = []
    problems = list(scan.problems)
    for found in sorted(scan.found, key=lambda f: (f.manifest.started_at, f.manifest.run_id)):
        manifest = found.manifest
        if _present(catalog, manifest.run_id):
            present.append(manifest.run_id)
            continue
        linked = manifest.restore_point_id is None or points.ensure(manifest.restore_point_id)
        if not linked:
            reason = (
                f"names restore point {manifest.restore_point_id}, which is not in the catalog "
                "and no manifest of it names a plan; rebuilt without the restore point"
            )
            problems.append(Problem(found.key, reason))
        entry = _run_of(found, linked)
        if dry_run or _record(catalog, clock, entry):
            rebuilt.append(entry)
            log.info("catalog_run_rebuilt", run_id=manifest.run_id, manifest=found.key,
                     restore_point_id=entry.run.restore_point_id, dry_run=dry_run)  # fmt: skip
        else:
            present.append(manifest.run_id)
    report = RebuildReport(
        dry_run=dry_run,
        manifests=tuple(scan.manifests),
        rebuilt=tuple(rebuilt),
        present=tuple(present),
        points=tuple(points.recreated),
        problems=tuple(problems),
        orphans=tuple(scan.orphans),
    )
    log.info("catalog_rebuild_finished", manifests=len(report.manifests),
             rebuilt=len(report.rebuilt), present=len(present), problems=len(problems),
             orphans=len(scan.orphans), dry_run=dry_run)  # fmt: skip
    return report


# -- reading the bucket -----------------------------------------------------------------------


def _scan(store: ObjectStore, prefix: str) -> _Scan:
    """Every artifact directory under ``prefix``: its manifest read and checked, or its
    objects reported as orphans. Keys outside the ``{target}/{dir}/{file}`` layout are not
    backups (a health-check probe) and are ignored."""
    base = prefix.strip("/") + "/" if prefix.strip("/") else ""
    dirs: dict[str, dict[str, StoredObject]] = {}
    for stored in store.list(base):
        parts = stored.key[len(base) :].split("/")
        if stored.key.startswith(base) and len(parts) == 3 and all(parts):
            dirs.setdefault(f"{base}{parts[0]}/{parts[1]}/", {})[parts[2]] = stored
    scan = _Scan()
    for directory, files in sorted(dirs.items()):
        marker = files.get(MANIFEST_NAME)
        if marker is None:
            keys = tuple(sorted(o.key for o in files.values()))
            scan.orphans.append(Orphan(directory, keys, "no manifest: an unfinished upload"))
            continue
        scan.manifests.append(marker.key)
        found = _read(store, marker, files, scan.problems)
        if found is None:
            continue
        scan.found.append(found)
        listed = {o.name for o in found.manifest.objects} | {MANIFEST_NAME}
        extra = tuple(sorted(o.key for name, o in files.items() if name not in listed))
        if extra:
            scan.orphans.append(Orphan(directory, extra, f"not listed in {marker.key}"))
    claims: dict[str, list[str]] = {}
    for found in scan.found:
        claims.setdefault(found.manifest.run_id, []).append(found.key)
    for run_id, claimed in claims.items():
        if len(claimed) > 1:  # which one is the backup? Nothing tells: none is taken
            reason = f"run {run_id} is committed by {len(claimed)} manifests ({', '.join(claimed)})"
            scan.problems.extend(Problem(key, f"{reason}; skipped") for key in claimed)
    scan.found = [f for f in scan.found if len(claims[f.manifest.run_id]) == 1]
    return scan


def _read(
    store: ObjectStore,
    marker: StoredObject,
    files: Mapping[str, StoredObject],
    problems: list[Problem],
) -> _Found | None:
    """The manifest, read and checked against its key and the listing; None (and a problem)
    when it cannot be used."""
    try:
        raw = read_small(store, marker.key, marker.size, MANIFEST_LIMIT)
        manifest = parse_manifest(raw, marker.key)
    except (StorageError, ArtifactCorrupt) as exc:
        problems.append(Problem(marker.key, f"unreadable manifest, skipped: {exc}"))
        return None
    reason = _inconsistency(manifest, marker.key, files)
    if reason is not None:
        problems.append(Problem(marker.key, f"{reason}; skipped"))
        return None
    return _Found(marker.key, raw, manifest)


def _inconsistency(manifest: Manifest, key: str, files: Mapping[str, StoredObject]) -> str | None:
    """Why the manifest cannot stand for the backup at ``key`` (None: it can)."""
    directory = key.removesuffix(MANIFEST_NAME)
    target, artifact_dir = directory.rstrip("/").split("/")[-2:]
    if (manifest.target, manifest.artifact_dir) != (target, artifact_dir):
        return (
            f"names target {manifest.target!r} and directory {manifest.artifact_dir!r}, "
            "not those of its key"
        )
    for name, value in (("run id", manifest.run_id), ("restore point", manifest.restore_point_id)):
        if value is not None and not _ID.fullmatch(value):
            return f"{name} {value!r} is not an id (letters, digits, '-'; at most 64)"
    for value in (manifest.target, manifest.plan, manifest.triggered_by):
        if value is not None and len(value) > _NAME_LIMIT:
            return f"a name longer than {_NAME_LIMIT} characters: {value[:40]!r}..."
    for obj in manifest.objects:
        if obj.name == MANIFEST_NAME or obj.key != directory + obj.name:
            return f"object {obj.name!r} has a foreign key {obj.key!r}"
        stored = files.get(obj.name)
        if stored is None:
            return f"lists {obj.key}, which is missing from the bucket"
        if manifest.encryption_key_id is None and stored.size != obj.size:
            return f"{obj.key} holds {stored.size} bytes, the manifest records {obj.size}"
    return None


# -- writing the catalog ----------------------------------------------------------------------


def _present(catalog: Catalog, run_id: str) -> bool:
    try:
        return catalog.get_run(run_id).id == run_id
    except RunNotFound:
        return False


class _Points:
    """The restore points the manifests name: found in the catalog, or recreated once (before
    their first rebuilt run), or, when no manifest of one names its plan, not recreatable."""

    def __init__(
        self,
        catalog: Catalog,
        found: Sequence[_Found],
        plan_targets: Mapping[str, Collection[str]] | None,
        dry_run: bool,
    ) -> None:
        self._catalog, self._plan_targets, self._dry_run = catalog, plan_targets, dry_run
        self._manifests: dict[str, list[Manifest]] = {}
        for f in found:
            if f.manifest.restore_point_id is not None:
                self._manifests.setdefault(f.manifest.restore_point_id, []).append(f.manifest)
        self._usable: dict[str, bool] = {}
        self.recreated: list[RebuiltPoint] = []

    def _expected(self, plan: str, until: datetime) -> set[str]:
        """The targets a point of ``plan`` started by ``until`` should hold: those the plan's
        points up to then hold a backup of (a target added later is not expected of earlier
        points), less those the plan, when configured, no longer backs up."""
        seen = {
            m.target
            for group in self._manifests.values()
            for m in group
            if m.plan == plan and m.started_at <= until
        }
        configured = None if self._plan_targets is None else self._plan_targets.get(plan)
        return seen if configured is None else seen & set(configured)

    def ensure(self, point_id: str) -> bool:
        """Whether a run may name ``point_id``: it is in the catalog, or now recreated."""
        if point_id not in self._usable:
            self._usable[point_id] = self._ensure(point_id)
        return self._usable[point_id]

    def _ensure(self, point_id: str) -> bool:
        try:
            self._catalog.get_restore_point(point_id)
            return True
        except RestorePointNotFound:
            pass
        manifests = sorted(self._manifests[point_id], key=lambda m: (m.started_at, m.run_id))
        plan = next((m.plan for m in manifests if m.plan is not None), None)
        if plan is None:
            return False
        state, summary = point_verdict(manifests, self._expected(plan, manifests[-1].started_at))
        first = manifests[0]
        point = NewRestorePoint(point_id, plan, _trigger(first.trigger), REBUILT_BY,
                                first.started_at, state=state, summary=summary)  # fmt: skip
        finished = max(m.finished_at for m in manifests)
        entry = RebuiltPoint(point, RestorePointUpdate(first.started_at, finished))
        if not self._dry_run:
            try:
                self._catalog.create_restore_point(entry.point)
            except RunConflict:
                return True  # created meanwhile (by another rebuild): left as it is
            self._catalog.transition_restore_point(point_id, [state], state, entry.update)
        self.recreated.append(entry)
        log.info("catalog_restore_point_rebuilt", restore_point_id=point_id, plan=plan,
                 state=state.value, dry_run=self._dry_run)  # fmt: skip
        return True


def point_verdict(
    manifests: Sequence[Manifest], expected: Collection[str]
) -> tuple[RestorePointState, str]:
    """``complete`` when the point holds a backup of every ``expected`` target, else
    ``partial`` naming the targets it lacks; the summary says what it holds."""
    stored = sorted({m.target for m in manifests})
    steps = ", ".join(str(s) for s in sorted({m.step for m in manifests if m.step is not None}))
    noun = "backup" if len(stored) == 1 else "backups"
    head = f"rebuilt from the bucket: {len(stored)} {noun} stored ({', '.join(stored)}"
    head += f"; steps {steps})" if steps else ")"
    missing = sorted(set(expected) - set(stored))
    if missing:
        why = "though earlier restore points of the plan have one"
        return RestorePointState.PARTIAL, f"{head}; no backup of {', '.join(missing)}, {why}"
    failed = sorted(m.target for m in manifests if _state(m) is RunState.FAILED)
    if failed:
        return RestorePointState.PARTIAL, f"{head}; bbr failed for {', '.join(failed)}"
    return RestorePointState.COMPLETE, head


def _trigger(value: str | None) -> Trigger:
    return Trigger(value) if value in {t.value for t in Trigger} else Trigger.OPERATOR


def _run_of(found: _Found, linked: bool) -> RebuiltRun:
    """The run, its finished fields and its artifact rows, as the original upload recorded
    them (:func:`bbr_orchestrator.actions.backup_storage._store_and_record`)."""
    m = found.manifest
    kind = RunKind.OPSMAN_EXPORT if m.target_kind is TargetKind.OPSMAN else RunKind.BACKUP
    run = NewRun(
        id=m.run_id,
        kind=kind,
        target=m.target,
        target_kind=m.target_kind,
        trigger=_trigger(m.trigger),
        triggered_by=m.triggered_by or REBUILT_BY,
        created_at=m.started_at,
        plan=m.plan,
        state=_state(m),
        restore_point_id=m.restore_point_id,
        step=m.step,
    )
    if not linked:
        run = replace(run, restore_point_id=None, step=None)
    update = RunUpdate(
        started_at=m.started_at,
        finished_at=m.finished_at,
        outcome=m.bbr_outcome or "succeeded",
        bytes_total=sum(o.size for o in m.objects),
    )
    artifacts = (
        *(Artifact(m.run_id, o.key, o.size, o.sha256, o.member_checksums) for o in m.objects),
        Artifact(m.run_id, found.key, len(found.raw), hashlib.sha256(found.raw).hexdigest()),
    )
    return RebuiltRun(run, update, found.key, artifacts)


def _state(manifest: Manifest) -> RunState:
    """Succeeded, unless bbr's outcome recorded in the manifest says the run failed although
    its artifact is complete (``unlock-failed``: the platform may have stayed locked)."""
    if manifest.bbr_outcome in (None, "succeeded"):
        return RunState.SUCCEEDED
    return RunState.FAILED


def _record(catalog: Catalog, clock: Clock, entry: RebuiltRun) -> bool:
    """Insert the run already final (a ``succeeded`` run holds no target and no reaper takes
    it for a stale one), then its fields, rows and log line; False when it appeared meanwhile."""
    try:
        catalog.create_run(entry.run)
    except RunConflict:
        return False
    state = entry.run.state
    catalog.transition(entry.run.id, [state], state, entry.update)
    catalog.add_artifacts(entry.artifacts)
    catalog.append_log(
        entry.run.id, [(clock.now(), LogStream.EVENT, f"rebuilt from {entry.manifest_key}")]
    )
    return True
