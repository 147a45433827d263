"""Prune a plan's stored backups as its retention policy says (``core.retention`` decides).

The unit is a restore point; what goes is every backup it stored (bbr backups and Ops
Manager exports alike). Each backup is deleted in this order, so that an interruption at any
step leaves something a re-run finishes and nothing a restore could mistake for a backup:

1. its objects are gathered: the artifacts the catalog recorded, the keys its log says were
   stored (a failed upload records no artifact), and anything else under those artifact
   directories (an orphan the log missed);
2. object lock: when any object is retained until a later date, the whole backup is left as it
   is ("retained until <date>, not deleted yet") and tried again by a later prune;
3. ``begin_deletion`` records why, compare-and-set: refused if an operator pinned it in the
   meantime. From here on nothing restores, verifies or pins it, and a re-run finishes it
   whatever the policy says by then;
4. ``manifest.json`` (the commit marker) is deleted first, then the data objects: at no moment
   does a manifest stand for a backup whose data is partly gone; data left by an interruption
   or a refused delete (``DeleteFailed``: the keys are reported) is still listed by the
   catalog's rows, so the next prune deletes it;
5. ``mark_deleted``; once every backup of the point is, the point is marked deleted too.

The catalog rows of a deleted backup stay (history, and the record of what was stored).
Operator backups outside any plan are not touched by a plan's retention. ``dry_run`` reads
the catalog only: no object is looked at, nothing changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

import structlog

from bbr_orchestrator.actions.verify_plan import STORED_KINDS
from bbr_orchestrator.core.layout import MANIFEST_NAME
from bbr_orchestrator.core.models import (
    ACTIVE_STATES,
    RestorePoint,
    RestorePointState,
    Run,
    RunFilter,
    RunState,
)
from bbr_orchestrator.core.retention import (
    Decision,
    DeletionConflict,
    PointInfo,
    Policy,
    plan_prune,
)
from bbr_orchestrator.errors import DeleteFailed, OrchestratorError
from bbr_orchestrator.ports import Catalog, Clock, ObjectStore

log = structlog.get_logger(__name__)

#: Most restore points (and backups of each kind) of one plan read for a prune.
MAX_HISTORY = 100_000
REASON_CHARS = 1000
_KEYS_SHOWN = 5
#: The event ``backup_storage`` logs for every object stored.
_STORED = re.compile(r"^stored (\S+) \(\d+ bytes, sha256 [0-9a-f]{64}\)$")


@dataclass(frozen=True)
class PointResult:
    """What became of one restore point."""

    point: PointInfo
    delete: bool
    """What retention decided (``done`` says whether it happened)."""
    reasons: tuple[str, ...]
    backups: tuple[str, ...]
    """Ids of the point's backups (bbr backups, Ops Manager exports) not deleted before."""
    done: bool = False
    problems: tuple[str, ...] = ()
    """Why a deletion did not (fully) happen; it is tried again by the next prune."""

    @property
    def verdict(self) -> str:
        """``keep``, ``delete`` (dry run), ``deleted`` or ``not deleted``."""
        if not self.delete:
            return "keep"
        if self.done:
            return "deleted"
        return "not deleted" if self.problems else "delete"


@dataclass(frozen=True)
class PruneReport:
    """One plan's prune: every restore point not deleted before, newest first."""

    plan: str
    policy: Policy
    dry_run: bool
    points: tuple[PointResult, ...] = field(default=())

    @property
    def kept(self) -> int:
        return sum(1 for p in self.points if not p.delete)

    @property
    def deleted(self) -> int:
        return sum(1 for p in self.points if p.done)

    @property
    def failed(self) -> tuple[PointResult, ...]:
        """Points to delete that were not (fully) deleted."""
        return tuple(p for p in self.points if p.problems)


@dataclass(frozen=True)
class _Point:
    point: RestorePoint
    backups: tuple[Run, ...]
    """Its stored backups not yet deleted."""
    info: PointInfo
    resume: str | None
    """The reason of a deletion that began and did not finish (None: none began)."""


def prune_plan(
    catalog: Catalog,
    store: ObjectStore | None,
    clock: Clock,
    plan: str,
    policy: Policy,
    tz: tzinfo,
    *,
    dry_run: bool = False,
) -> PruneReport:
    """Apply ``policy`` to ``plan``'s restore points (GFS periods in ``tz``) and return what
    was kept and deleted, and why. Errors of one backup are reported on its point; the others
    go on. ``store`` may be None for a dry run only (it is never touched by one)."""
    if store is None and not dry_run:
        raise ValueError("prune_plan needs the object store unless it is a dry run")
    now = clock.now()
    history = _history(catalog, plan)
    fresh = [p for p in history if p.resume is None]
    decided = plan_prune([p.info for p in fresh], policy, now, tz)
    by_id = {p.info.id: p for p in history}
    decisions = [(d, False) for d in decided.keep] + [(d, True) for d in decided.delete]
    decisions += [
        (Decision(p.info, (f"finishing an interrupted deletion: {p.resume}",)), True)
        for p in history
        if p.resume is not None
    ]
    in_use = {} if dry_run else _in_use(catalog)
    results: dict[str, PointResult] = {}
    for decision, delete in sorted(decisions, key=lambda d: (d[0].point.at, d[0].point.id)):
        item = by_id[decision.point.id]
        result = PointResult(
            decision.point, delete, decision.reasons, tuple(r.id for r in item.backups)
        )
        if delete and store is not None and not dry_run:
            result = _delete_point(catalog, store, clock, plan, item, result, in_use)
        results[item.info.id] = result
    ordered = sorted(results.values(), key=lambda r: (r.point.at, r.point.id), reverse=True)
    report = PruneReport(plan, policy, dry_run, tuple(ordered))
    log.info(
        "prune_finished",
        plan=plan,
        dry_run=dry_run,
        kept=report.kept,
        deleted=report.deleted,
        to_delete=sum(1 for p in report.points if p.delete),
        failed=len(report.failed),
    )
    return report


def _history(catalog: Catalog, plan: str) -> list[_Point]:
    """The plan's restore points not deleted yet, with their stored backups."""
    points = [
        p for p in catalog.list_restore_points(plan=plan, limit=MAX_HISTORY) if p.deleted_at is None
    ]
    runs: dict[str, list[Run]] = {}
    for kind in STORED_KINDS:
        for run in catalog.list_runs(RunFilter(plan=plan, kind=kind, limit=MAX_HISTORY)):
            if run.restore_point_id is not None:
                runs.setdefault(run.restore_point_id, []).append(run)
    return [_describe(point, runs.get(point.id, [])) for point in points]


def _describe(point: RestorePoint, runs: Sequence[Run]) -> _Point:
    damaged = any(r.restorable is False for r in runs)
    good = (
        point.state is RestorePointState.COMPLETE
        and bool(runs)
        and all(
            r.state is RunState.SUCCEEDED and r.restorable is not False and not r.deletion_started
            for r in runs
        )
    )
    state: str = point.state.value
    if point.state is RestorePointState.COMPLETE and not good:
        state = "damaged" if damaged else "incomplete"
    info = PointInfo(
        id=point.id,
        at=point.scheduled_for or point.created_at,
        good=good,
        pinned=any(r.pinned for r in runs),
        active=point.state.active or any(r.state.active for r in runs),
        state=state,
    )
    begun = sorted(r.delete_reason or "" for r in runs if r.deletion_started)
    left = tuple(sorted((r for r in runs if r.deleted_at is None), key=lambda r: r.id))
    return _Point(point, left, info, begun[0] if begun else None)


def _in_use(catalog: Catalog) -> dict[str, Run]:
    """Backups an active run (a restore, verify or drill) is reading now, by backup id."""
    active = catalog.list_runs(RunFilter(states=ACTIVE_STATES, limit=MAX_HISTORY))
    return {r.subject_run_id: r for r in active if r.subject_run_id is not None}


def _delete_point(
    catalog: Catalog,
    store: ObjectStore,
    clock: Clock,
    plan: str,
    item: _Point,
    result: PointResult,
    in_use: dict[str, Run],
) -> PointResult:
    """Delete every backup of the point (see the module docstring), then mark the point."""
    reason = f"retention of plan {plan}: {'; '.join(result.reasons)}"[:REASON_CHARS]
    problems: list[str] = []
    left = 0
    for backup in item.backups:
        reader = in_use.get(backup.id)
        if reader is not None:
            problems.append(
                f"backup {backup.id} is being read by run {reader.id} ({reader.kind.value}); "
                "not deleted yet"
            )
            left += 1
            continue
        if backup.pinned and not backup.deletion_started:
            problems.append(
                f"backup {backup.id} was pinned after the deletion of its restore point "
                "began: it is kept, and so is the point"
            )
            left += 1
            continue
        try:
            problem = _delete_backup(catalog, store, clock, backup, reason)
        except OrchestratorError as exc:
            problem = f"backup {backup.id}: {exc}"
        if problem is not None:
            problems.append(problem)
            left += 1
    if not left:
        try:
            catalog.mark_restore_point_deleted(item.point.id, reason, clock.now())
        except OrchestratorError as exc:
            problems.append(f"restore point {item.point.id}: {exc}")
    done = not left and not problems
    bound = log.bind(plan=plan, restore_point_id=item.point.id)
    if done:
        bound.info("restore_point_pruned", backups=len(item.backups), reason=reason)
    else:
        bound.warning("restore_point_not_pruned", problems=problems)
    return PointResult(
        result.point, True, result.reasons, result.backups, done=done, problems=tuple(problems)
    )


def _delete_backup(
    catalog: Catalog, store: ObjectStore, clock: Clock, backup: Run, reason: str
) -> str | None:
    """Delete one backup's objects, manifest first; None when it is gone, else the problem."""
    keys = stored_keys(catalog, store, backup)
    retained = _retained_until(store, keys, clock.now())
    if retained is not None:
        return f"backup {backup.id}: retained until {_utc(retained)}, not deleted yet"
    try:
        catalog.begin_deletion(backup.id, reason)
    except DeletionConflict as exc:
        return f"backup {backup.id}: {exc.reason}"
    manifests = [k for k in keys if k.rpartition("/")[2] == MANIFEST_NAME]
    data = [k for k in keys if k.rpartition("/")[2] != MANIFEST_NAME]
    for batch in (manifests, data):
        if not batch:
            continue
        try:
            store.delete(batch)
        except DeleteFailed as exc:
            shown = "; ".join(f"{k}: {why}" for k, why in list(exc.failures.items())[:_KEYS_SHOWN])
            more = len(exc.failures) - _KEYS_SHOWN
            extra = f"; and {more} more" if more > 0 else ""
            return (
                f"backup {backup.id}: {len(exc.failures)} object(s) not deleted "
                f"({shown}{extra}); the next prune tries again"
            )
        log.info("objects_deleted", run_id=backup.id, objects=len(batch))
    catalog.mark_deleted(backup.id, clock.now())
    return None


def stored_keys(catalog: Catalog, store: ObjectStore, backup: Run) -> list[str]:
    """Every object key the backup stored, as far as the catalog and the store can tell."""
    keys = {a.object_key for a in catalog.list_artifacts(backup.id)}
    if backup.state is not RunState.SUCCEEDED or not keys:
        keys |= set(_logged_keys(line.text for line in catalog.read_log(backup.id)))
    for directory in sorted({k.rpartition("/")[0] + "/" for k in keys if "/" in k}):
        keys |= {obj.key for obj in store.list(directory)}
    return sorted(keys)


def _logged_keys(lines: Iterable[str]) -> Iterable[str]:
    for text in lines:
        match = _STORED.match(text)
        if match:
            yield match.group(1)


def _retained_until(store: ObjectStore, keys: Sequence[str], now: datetime) -> datetime | None:
    """The latest object-lock date still ahead among the objects (None: none is retained)."""
    latest: datetime | None = None
    for key in keys:
        found = store.head(key)
        until = None if found is None else found.retain_until
        if until is not None and until > now and (latest is None or until > latest):
            latest = until
    return latest


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
