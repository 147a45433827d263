"""Pruning a plan (``actions.prune``) against the in-memory catalog and a bucket fake: what goes,
in which order, what an interruption leaves, object lock, refused deletes, pins and readers."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from bbr_orchestrator.actions.prune import PruneReport, prune_plan
from bbr_orchestrator.actions.restore_backup import RestoreRefused, restore_plan
from bbr_orchestrator.config.schema import PlanConfig
from bbr_orchestrator.core.models import (
    Artifact,
    LogStream,
    NewRestorePoint,
    NewRun,
    RestorePointState,
    Run,
    RunFilter,
    RunKind,
    RunState,
    TargetKind,
    Trigger,
    new_run_id,
)
from bbr_orchestrator.core.retention import DeletionConflict, Policy
from bbr_orchestrator.errors import DeleteFailed
from bbr_orchestrator.ports import Catalog, ObjectStore, StoredObject
from bbr_orchestrator.service.points import prune_after_point
from tests.unit.fakes import FakeClock, MemoryCatalog
from tests.unit.test_bbr_operation import SPEC

PLAN = "nightly"
UTC_TZ = ZoneInfo("UTC")
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
SHA = "0" * 64
KEEP_TWO = Policy(keep_last=2, min_good=1, incomplete_keep_for=timedelta(days=1))


class Crash(BaseException):
    """The process dies (a kill, a power cut): nothing after it runs."""


@dataclass
class BucketFake:
    """The ObjectStore port over a dict, with object lock dates, refused keys and a crash on
    the n-th delete request; records every delete request."""

    objects: dict[str, bytes] = field(default_factory=dict)
    retain: dict[str, datetime] = field(default_factory=dict)
    refuse: dict[str, str] = field(default_factory=dict)
    crash_on: int | None = None
    deletes: list[list[str]] = field(default_factory=list)

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = bytes(data)

    def head(self, key: str) -> StoredObject | None:
        if key not in self.objects:
            return None
        return StoredObject(key, len(self.objects[key]), self.retain.get(key))

    def list(self, prefix: str) -> Iterator[StoredObject]:
        return iter(
            [
                StoredObject(k, len(v))
                for k, v in sorted(self.objects.items())
                if k.startswith(prefix)
            ]
        )

    def delete(self, keys: Sequence[str]) -> None:
        self.deletes.append(list(keys))
        if self.crash_on is not None and len(self.deletes) >= self.crash_on:
            self.crash_on = None
            raise Crash
        failures = {k: self.refuse[k] for k in keys if k in self.refuse}
        for key in keys:
            if key not in failures:
                self.objects.pop(key, None)
        if failures:
            raise DeleteFailed("bucket", failures)

    def start_upload(self, key: str) -> object:
        raise NotImplementedError

    def open_read(self, key: str, offset: int = 0) -> object:
        raise NotImplementedError

    def abort_incomplete_uploads(self, prefix: str) -> int:
        return 0


@dataclass
class Point:
    """A restore point written by ``add_point``: its id and each backup's keys, manifest last."""

    id: str
    keys: dict[str, list[str]]

    @property
    def runs(self) -> list[str]:
        return list(self.keys)


def add_point(
    catalog: Catalog,
    store: ObjectStore,
    at: datetime,
    *,
    targets: Sequence[str] = ("bosh-director", "cf"),
    failed: Sequence[str] = (),
    plan: str | None = PLAN,
    prefix: str = "backups",
) -> Point:
    """A plan firing at ``at`` whose backups stored three data objects and a manifest each; a
    backup of a target in ``failed`` failed after uploading two objects (only one logged)."""
    state = RestorePointState.FAILED if failed else RestorePointState.COMPLETE
    point = catalog.create_restore_point(
        NewRestorePoint(
            id=new_run_id(at, secrets.token_hex(4)),
            plan=plan or "-",
            trigger=Trigger.SCHEDULE,
            triggered_by="schedule",
            created_at=at,
            scheduled_for=at,
            state=state,
        )
    )
    keys: dict[str, list[str]] = {}
    for step, target in enumerate(targets, 1):
        kind, tkind = (
            (RunKind.OPSMAN_EXPORT, TargetKind.OPSMAN)
            if target == "opsman"
            else (RunKind.BACKUP, TargetKind.DEPLOYMENT)
        )
        created = at + timedelta(seconds=step)
        run_id = new_run_id(created, secrets.token_hex(4))
        ok = target not in failed
        catalog.create_run(
            NewRun(
                id=run_id,
                kind=kind,
                target=target,
                target_kind=tkind,
                trigger=Trigger.SCHEDULE,
                triggered_by="schedule",
                created_at=created,
                plan=plan,
                state=RunState.SUCCEEDED if ok else RunState.FAILED,
                restore_point_id=point.id,
                step=step,
            )
        )
        base = f"{prefix}/{target}/{target}_{created:%Y%m%dT%H%M%SZ}"
        data = [f"{base}/{name}" for name in ("a.tar", "b.tar", "metadata")]
        if ok:
            stored = [*data, f"{base}/manifest.json"]
            catalog.add_artifacts(Artifact(run_id, k, 10, SHA) for k in stored)
        else:
            stored = data[:2]
            line = f"stored {data[0]} (10 bytes, sha256 {SHA})"
            catalog.append_log(run_id, [(created, LogStream.EVENT, line)])
        for key in stored:
            store.put(key, b"x" * 10)
        keys[run_id] = stored
    return Point(point.id, keys)


def nightly(catalog: Catalog, store: ObjectStore, days: int, **kwargs: object) -> list[Point]:
    return [add_point(catalog, store, T0 + timedelta(days=i), **kwargs) for i in range(days)]  # type: ignore[arg-type]


def prune(
    catalog: Catalog,
    store: ObjectStore | None,
    now: datetime,
    policy: Policy = KEEP_TWO,
    *,
    dry_run: bool = False,
) -> PruneReport:
    return prune_plan(catalog, store, FakeClock(now), PLAN, policy, UTC_TZ, dry_run=dry_run)


_LOGGED = re.compile(r"^stored (\S+) ")


def bucket_problems(catalog: Catalog, objects: set[str]) -> list[str]:
    """What must never be: a manifest in the bucket without every object its backup stored,
    or an object no catalog row (artifact, or a logged upload) of a live backup names."""
    problems: list[str] = []
    named: set[str] = set()
    for run in catalog.list_runs(RunFilter(limit=10_000)):
        recorded = [a.object_key for a in catalog.list_artifacts(run.id)]
        logged = [m.group(1) for x in catalog.read_log(run.id) if (m := _LOGGED.match(x.text))]
        if run.deleted_at is None:
            named |= {*recorded, *logged}
        manifests = [k for k in recorded if k.endswith("/manifest.json") and k in objects]
        missing = [k for k in recorded if k not in objects]
        if manifests and missing:
            problems.append(f"manifest {manifests[0]} without {missing}")
    problems += [f"{key} named by no live backup" for key in sorted(objects - named)]
    return problems


def test_prune_deletes_the_points_the_policy_drops_and_nothing_else() -> None:
    """keep-last 2 of 5 nightly points: the 3 oldest lose every object, their backups and
    points are marked deleted with the reason; the 2 newest are untouched."""
    catalog, store = MemoryCatalog(), BucketFake()
    points = nightly(catalog, store, 5)
    keep = {k for p in points[3:] for keys in p.keys.values() for k in keys}

    report = prune(catalog, store, T0 + timedelta(days=5))

    assert set(store.objects) == keep
    assert [r.verdict for r in report.points] == ["keep", "keep", "deleted", "deleted", "deleted"]
    assert (report.kept, report.deleted, report.failed) == (2, 3, ())
    for point in points[:3]:
        assert catalog.get_restore_point(point.id).deleted_at is not None
        for run_id in point.runs:
            run = catalog.get_run(run_id)
            assert run.deleted_at is not None
            assert run.delete_reason == (
                "retention of plan nightly: outside keep-last 2; not needed for min 1 good"
            )
    assert all(catalog.get_run(r).deleted_at is None for p in points[3:] for r in p.runs)
    assert bucket_problems(catalog, set(store.objects)) == []
    assert prune(catalog, store, T0 + timedelta(days=5)).deleted == 0, "a second prune: nothing"


def test_the_manifest_goes_first_then_the_data_and_an_ops_manager_export_with_its_point() -> None:
    """Each backup of a deleted point: one request for its manifest, then one for its data;
    the Ops Manager export of the point goes the same way."""
    catalog, store = MemoryCatalog(), BucketFake()
    old = add_point(catalog, store, T0 - timedelta(days=1), targets=("opsman", "cf"))
    nightly(catalog, store, 2, targets=("opsman", "cf"))

    prune(catalog, store, T0 + timedelta(days=3), Policy(keep_last=2, min_good=1))

    expected = []
    for keys in old.keys.values():
        expected += [[keys[-1]], keys[:-1]]
    assert sorted(store.deletes) == sorted(expected)
    assert store.deletes[0][0].endswith("/manifest.json")
    assert all(catalog.get_run(r).deleted_at for r in old.runs)


def test_a_dry_run_changes_nothing_and_needs_no_store() -> None:
    """--dry-run lists what would go, with reasons, and touches neither store nor catalog."""
    catalog = MemoryCatalog()
    points = nightly(catalog, BucketFake(), 4)
    before = dict(catalog.runs)

    report = prune(catalog, None, T0 + timedelta(days=4), dry_run=True)

    assert [r.verdict for r in report.points] == ["keep", "keep", "delete", "delete"]
    assert report.points[0].reasons == ("the newest good restore point", "keep-last 2")
    assert report.points[3].backups == tuple(sorted(points[0].runs))
    assert catalog.runs == before
    with pytest.raises(ValueError, match="object store"):
        prune(catalog, None, T0)


def test_an_interrupted_prune_is_finished_by_the_next_whatever_the_policy_says_then() -> None:
    """Killed after the manifest's delete and before the data's: no manifest stands without
    its data, the backup is neither restorable nor pinnable, and the next prune (even one
    whose policy would keep it now) deletes the rest and marks it."""
    catalog, store = MemoryCatalog(), BucketFake()
    points = nightly(catalog, store, 3, targets=("cf",))
    (victim,) = points[0].runs
    store.crash_on = 2

    with pytest.raises(Crash):
        prune(catalog, store, T0 + timedelta(days=3), Policy(keep_last=2, min_good=1))

    data = points[0].keys[victim][:-1]
    assert set(data) <= set(store.objects)
    assert points[0].keys[victim][-1] not in store.objects
    interrupted = catalog.get_run(victim)
    assert interrupted.delete_reason is not None and interrupted.deleted_at is None
    assert bucket_problems(catalog, set(store.objects)) == []
    with pytest.raises(DeletionConflict, match="retention is deleting it"):
        catalog.pin_run(victim, "alice", "keep it", T0)
    with pytest.raises(RestoreRefused, match="is being deleted by retention"):
        restore_plan(catalog, SPEC, interrupted)

    report = prune(catalog, store, T0 + timedelta(days=3), Policy(keep_last=10))

    assert not set(data) & set(store.objects)
    assert catalog.get_run(victim).deleted_at is not None
    assert catalog.get_restore_point(points[0].id).deleted_at is not None
    assert report.points[-1].reasons[0].startswith("finishing an interrupted deletion: ")
    assert report.points[-1].verdict == "deleted"
    assert bucket_problems(catalog, set(store.objects)) == []


@pytest.mark.parametrize("crash_on", range(1, 9))
def test_a_crash_at_any_delete_leaves_a_consistent_bucket_that_a_rerun_cleans(
    crash_on: int,
) -> None:
    """Whichever delete request the process dies on (two points of two backups), the bucket
    never holds a manifest without its data nor an object without a live catalog row, and a
    re-run ends with exactly the kept points' objects."""
    catalog, store = MemoryCatalog(), BucketFake()
    points = nightly(catalog, store, 4)
    keep = {k for p in points[2:] for keys in p.keys.values() for k in keys}
    store.crash_on = crash_on

    with pytest.raises(Crash):
        prune(catalog, store, T0 + timedelta(days=4))
    assert bucket_problems(catalog, set(store.objects)) == []

    report = prune(catalog, store, T0 + timedelta(days=4))

    assert set(store.objects) == keep
    assert report.failed == ()
    assert bucket_problems(catalog, set(store.objects)) == []
    assert all(catalog.get_restore_point(p.id).deleted_at for p in points[:2])


def test_an_object_under_object_lock_keeps_its_whole_backup_until_the_date() -> None:
    """One data object retained until a later date: nothing of that backup is deleted nor
    marked, the point is reported "retained until <date>, not deleted yet"; after the date
    the next prune deletes it."""
    catalog, store = MemoryCatalog(), BucketFake()
    points = nightly(catalog, store, 3, targets=("cf",))
    (locked_run,) = points[0].runs
    locked = points[0].keys[locked_run]
    until = T0 + timedelta(days=10)
    store.retain[locked[1]] = until

    report = prune(catalog, store, T0 + timedelta(days=3))

    assert set(locked) <= set(store.objects)
    assert catalog.get_run(locked_run).delete_reason is None
    (failed,) = report.failed
    assert failed.verdict == "not deleted"
    assert failed.problems == (
        f"backup {locked_run}: retained until 2026-11-11 02:00:00Z, not deleted yet",
    )
    assert [r.verdict for r in report.points] == ["keep", "keep", "not deleted"]

    later = prune(catalog, store, until + timedelta(seconds=5))

    assert not set(locked) & set(store.objects)
    assert later.failed == ()


def test_a_refused_delete_stops_that_backup_reports_the_keys_and_a_rerun_continues() -> None:
    """The store refuses one data key: the backup stays recorded (not marked deleted, its
    catalog rows intact), the key and reason are reported; once accepted, a re-run ends it."""
    catalog, store = MemoryCatalog(), BucketFake()
    points = nightly(catalog, store, 3, targets=("cf",))
    (run_id,) = points[0].runs
    stuck = points[0].keys[run_id][0]
    store.refuse[stuck] = "AccessDenied: legal hold"

    report = prune(catalog, store, T0 + timedelta(days=3))

    (failed,) = report.failed
    assert f"{stuck}: AccessDenied: legal hold" in failed.problems[0]
    assert set(store.objects) & set(points[0].keys[run_id]) == {stuck}
    assert catalog.get_run(run_id).deleted_at is None
    assert len(catalog.list_artifacts(run_id)) == 4
    assert catalog.get_restore_point(points[0].id).deleted_at is None

    del store.refuse[stuck]
    assert prune(catalog, store, T0 + timedelta(days=3)).failed == ()
    assert stuck not in store.objects
    assert catalog.get_run(run_id).deleted_at is not None


def test_a_refused_manifest_delete_keeps_the_backup_whole() -> None:
    """When the manifest itself cannot be deleted nothing else of the backup is."""
    catalog, store = MemoryCatalog(), BucketFake()
    points = nightly(catalog, store, 3, targets=("cf",))
    (run_id,) = points[0].runs
    store.refuse[points[0].keys[run_id][-1]] = "AccessDenied"

    report = prune(catalog, store, T0 + timedelta(days=3))

    assert len(report.failed) == 1
    assert set(points[0].keys[run_id]) <= set(store.objects)


def test_a_failed_point_goes_with_its_partial_upload_after_its_own_delay() -> None:
    """A failed point older than the newest good one keeps its partial upload for
    incomplete_keep_for, then loses it: the logged object and the unlogged one beside it."""
    catalog, store = MemoryCatalog(), BucketFake()
    failed = add_point(catalog, store, T0, targets=("cf",), failed=("cf",))
    nightly_good = [add_point(catalog, store, T0 + timedelta(days=d)) for d in (1, 2)]
    (run_id,) = failed.runs
    assert len(failed.keys[run_id]) == 2

    policy = Policy(keep_last=5, incomplete_keep_for=timedelta(days=1))
    early = prune(catalog, store, T0 + timedelta(hours=12), policy)
    assert early.points[-1].reasons == ("failed, kept for 1d (until 2026-11-02 02:00Z)",)
    assert set(failed.keys[run_id]) <= set(store.objects)

    report = prune(catalog, store, T0 + timedelta(days=3), policy)

    assert report.points[-1].reasons == ("failed, older than 1d",)
    assert report.points[-1].verdict == "deleted"
    assert not set(failed.keys[run_id]) & set(store.objects)
    assert all(catalog.get_run(r).deleted_at is None for p in nightly_good for r in p.runs)


def test_a_pinned_backup_keeps_its_point_and_a_pin_racing_the_prune_wins() -> None:
    """A pinned backup's point survives; a pin that lands between the plan and the deletion
    refuses the deletion (reported), and nothing of that backup is deleted."""

    class PinsFirst(MemoryCatalog):
        def begin_deletion(self, run_id: str, reason: str) -> Run:
            if run_id == racing:
                self.pin_run(run_id, "bob", "just now", T0)
            return super().begin_deletion(run_id, reason)

    catalog, store = PinsFirst(), BucketFake()
    points = nightly(catalog, store, 5, targets=("cf",))
    (pinned,) = points[0].runs
    (racing,) = points[1].runs
    catalog.pin_run(pinned, "alice", "audit", T0)

    report = prune(catalog, store, T0 + timedelta(days=5))

    assert report.points[-1].reasons == ("pinned",)
    assert set(points[0].keys[pinned]) | set(points[1].keys[racing]) <= set(store.objects)
    (failed,) = report.failed
    assert failed.problems == (f"backup {racing}: cannot delete: pinned by bob",)
    assert catalog.get_run(racing).delete_reason is None
    assert not set(points[2].keys[points[2].runs[0]]) & set(store.objects)


def test_a_backup_being_restored_is_not_deleted_yet() -> None:
    """A backup an active restore reads is left for a later prune (reported)."""
    catalog, store = MemoryCatalog(), BucketFake()
    points = nightly(catalog, store, 3, targets=("cf",))
    (busy,) = points[0].runs
    catalog.create_run(
        NewRun(
            id=new_run_id(T0 + timedelta(days=3), "0000abcd"),
            kind=RunKind.RESTORE,
            target="cf",
            target_kind=TargetKind.DEPLOYMENT,
            trigger=Trigger.OPERATOR,
            triggered_by="alice",
            created_at=T0 + timedelta(days=3),
            state=RunState.RUNNING,
            subject_run_id=busy,
        )
    )

    report = prune(catalog, store, T0 + timedelta(days=3))

    assert "is being read by run" in report.failed[0].problems[0]
    assert set(points[0].keys[busy]) <= set(store.objects)


def test_backups_outside_the_plan_are_not_touched() -> None:
    """An old operator backup (no plan) and another plan's points stay whatever the policy."""
    catalog, store = MemoryCatalog(), BucketFake()
    other = add_point(catalog, store, T0 - timedelta(days=30), plan="weekly")
    loose = add_point(catalog, store, T0 - timedelta(days=40), plan=None)
    nightly(catalog, store, 3)

    prune(catalog, store, T0 + timedelta(days=3), Policy(keep_last=1))

    for point in (other, loose):
        assert {k for keys in point.keys.values() for k in keys} <= set(store.objects)


def _plan(retention: dict[str, object]) -> PlanConfig:
    return PlanConfig.model_validate(
        {
            "name": PLAN,
            "targets": ["cf"],
            "schedule": "0 2 * * *",
            "timezone": "America/New_York",
            "retention": retention,
        }
    )


def test_the_daemon_prunes_a_plan_by_its_configured_retention_after_a_point() -> None:
    """After a restore point the daemon applies the plan's retention (keep_last,
    min_verified, incomplete_keep_for as configured) and `prune_finished` is logged with the
    counts."""
    catalog, store = MemoryCatalog(), BucketFake()
    points = nightly(catalog, store, 4, targets=("cf",))
    plan = _plan({"keep_last": 3, "min_verified": 1, "incomplete_keep_for": "1d"})

    with capture_logs() as logs:
        report = prune_after_point(catalog, FakeClock(T0 + timedelta(days=4)), plan, lambda: store)

    assert report is not None and report.policy == Policy(
        keep_last=3, min_good=1, incomplete_keep_for=timedelta(days=1)
    )
    assert [r.verdict for r in report.points] == ["keep", "keep", "keep", "deleted"]
    assert catalog.get_restore_point(points[0].id).deleted_at is not None
    (finished,) = [e for e in logs if e["event"] == "prune_finished"]
    assert (finished["plan"], finished["kept"], finished["deleted"]) == (PLAN, 3, 1)


def test_a_prune_that_breaks_is_logged_and_never_raises() -> None:
    """A store that cannot even be built: `prune_failed` is logged, nothing raised."""

    def broken() -> ObjectStore:
        raise OSError("no credentials")

    with capture_logs() as logs:
        result = prune_after_point(MemoryCatalog(), FakeClock(T0), _plan({}), broken)

    assert result is None
    assert [e["error"] for e in logs if e["event"] == "prune_failed"] == ["no credentials"]
