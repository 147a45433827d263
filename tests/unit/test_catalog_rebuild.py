"""Rebuilding the catalog's backup runs, artifact rows and restore points from the manifests in
the bucket: what is recreated, what is left alone, what is reported."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bbr_orchestrator.actions.catalog_rebuild import (
    REBUILT_BY,
    RebuildReport,
    point_verdict,
    rebuild_catalog,
)
from bbr_orchestrator.cli.catalog_cmd import report_lines
from bbr_orchestrator.core.bbr_metadata import MetadataSummary
from bbr_orchestrator.core.layout import (
    Manifest,
    ManifestObject,
    manifest_json,
    manifest_key,
    object_key,
)
from bbr_orchestrator.core.models import (
    Artifact,
    NewRestorePoint,
    NewRun,
    RestorePointState,
    RunKind,
    RunState,
    TargetKind,
    Trigger,
)

from .fakes import FakeClock, MemoryCatalog
from .fetch_fakes import FakeReadStore

PREFIX = "bbr"
T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
SUMMARY = MetadataSummary(1, 1, 0, ("fake-db",), 2)
PLANS = {"nightly": ("director-a", "cf")}


def backup(
    store: FakeReadStore,
    run_id: str,
    target: str = "director-a",
    *,
    kind: TargetKind = TargetKind.DIRECTOR,
    minutes: int = 0,
    files: dict[str, bytes] | None = None,
    **optional: object,
) -> Manifest:
    """Store a committed backup (objects, then its manifest) and return its manifest."""
    artifact_dir = f"{target}_{run_id}"
    files = files or {"bosh-0-fake-db.tar": b"tar bytes " + run_id.encode(), "metadata": b"m"}
    objects = tuple(
        ManifestObject(
            name,
            object_key(PREFIX, target, artifact_dir, name),
            len(data),
            hashlib.sha256(data).hexdigest(),
            2 if name.endswith(".tar") else 0,
        )
        for name, data in sorted(files.items())
    )
    for obj, data in zip(objects, (files[o.name] for o in objects), strict=True):
        store.put(obj.key, data)
    started = T0 + timedelta(minutes=minutes)
    manifest = Manifest(
        run_id=run_id,
        target=target,
        target_kind=kind,
        bbr_version="1.9.79",
        artifact_dir=artifact_dir,
        objects=objects,
        metadata=SUMMARY,
        started_at=started,
        finished_at=started + timedelta(seconds=90),
        orchestrator_version="0.1.0",
        **optional,  # type: ignore[arg-type]
    )
    store.put(manifest_key(PREFIX, target, artifact_dir), manifest_json(manifest))
    return manifest


def step(point: str, number: int, trigger: str = "schedule") -> dict[str, Any]:
    """The optional manifest fields of step ``number`` of restore point ``point``."""
    return {
        "plan": "nightly",
        "restore_point_id": point,
        "step": number,
        "trigger": trigger,
        "triggered_by": "plan nightly",
    }


def rebuild(catalog: MemoryCatalog, store: FakeReadStore, **kw: object) -> RebuildReport:
    return rebuild_catalog(catalog, store, PREFIX, FakeClock(), plan_targets=PLANS, **kw)  # type: ignore[arg-type]


def test_a_backup_comes_back_as_the_upload_recorded_it() -> None:
    """Run fields from the manifest (succeeded, times, bytes of the data objects, plan, point,
    step, trigger), one artifact row per object plus the manifest's own row, and a log line."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    m = backup(store, "20261127T020000Z-0000000a", **step("20261127T015959Z-0000000f", 1))
    report = rebuild(catalog, store)
    run = catalog.get_run(m.run_id)
    assert (run.kind, run.target, run.target_kind) == (
        RunKind.BACKUP,
        "director-a",
        TargetKind.DIRECTOR,
    )
    assert (run.state, run.outcome, run.exit_code) == (RunState.SUCCEEDED, "succeeded", None)
    assert (run.created_at, run.started_at, run.finished_at) == (
        m.started_at,
        m.started_at,
        m.finished_at,
    )
    assert (run.plan, run.restore_point_id, run.step) == ("nightly", m.restore_point_id, 1)
    assert (run.trigger, run.triggered_by) == (Trigger.SCHEDULE, "plan nightly")
    assert run.bytes_total == sum(o.size for o in m.objects)
    key = manifest_key(PREFIX, m.target, m.artifact_dir)
    raw = store.objects[key]
    assert catalog.list_artifacts(run.id) == sorted(
        [
            *(Artifact(run.id, o.key, o.size, o.sha256, o.member_checksums) for o in m.objects),
            Artifact(run.id, key, len(raw), hashlib.sha256(raw).hexdigest(), 0),
        ],
        key=lambda a: a.object_key,
    )
    assert [line.text for line in catalog.read_log(run.id)] == [f"rebuilt from {key}"]
    assert report.manifests == (key,) and report.present == () and report.problems == ()
    assert [r.run.id for r in report.rebuilt] == [run.id]


def test_an_opsman_export_comes_back_as_an_opsman_export_run() -> None:
    """A manifest of an Ops Manager target is an opsman-export run (no bbr metadata needed)."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    m = backup(
        store,
        "20261127T020000Z-0000000b",
        "opsman",
        kind=TargetKind.OPSMAN,
        files={"installation.zip": b"PK zip"},
    )
    rebuild(catalog, store)
    run = catalog.get_run(m.run_id)
    assert (run.kind, run.target_kind, run.bytes_total) == (
        RunKind.OPSMAN_EXPORT,
        TargetKind.OPSMAN,
        len(b"PK zip"),
    )
    assert len(catalog.list_artifacts(run.id)) == 2


def test_an_older_manifest_without_origin_fields_is_marked_as_rebuilt() -> None:
    """No plan, point, step or trigger in the manifest: no plan, trigger operator,
    triggered_by catalog-rebuild."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    m = backup(store, "20261127T020000Z-0000000c")
    rebuild(catalog, store)
    run = catalog.get_run(m.run_id)
    assert (run.plan, run.restore_point_id, run.step) == (None, None, None)
    assert (run.trigger, run.triggered_by) == (Trigger.OPERATOR, REBUILT_BY)


def test_a_restore_point_with_every_planned_target_stored_comes_back_complete() -> None:
    """The point is recreated once, complete, spanning its backups' times, with its runs."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    point = "20261127T015959Z-00000001"
    a = backup(store, "20261127T020000Z-00000011", **step(point, 1))
    b = backup(store, "20261127T020500Z-00000012", "cf", minutes=5, **step(point, 3))
    report = rebuild(catalog, store)
    rp = catalog.get_restore_point(point)
    assert (rp.plan, rp.state, rp.trigger, rp.triggered_by) == (
        "nightly",
        RestorePointState.COMPLETE,
        Trigger.SCHEDULE,
        REBUILT_BY,
    )
    assert (rp.created_at, rp.started_at, rp.finished_at) == (
        a.started_at,
        a.started_at,
        b.finished_at,
    )
    assert rp.summary is not None and "2 backups stored (cf, director-a; steps 1, 3)" in rp.summary
    assert [p.point.id for p in report.points] == [point]
    assert {catalog.get_run(m.run_id).restore_point_id for m in (a, b)} == {point}


def test_a_point_lacking_a_target_earlier_points_hold_comes_back_partial() -> None:
    """A later point without a backup of a target the plan's earlier points hold (its step
    failed, or the manifest is gone) comes back partial, naming the target; the earlier point
    with both comes back complete."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    first, later = "20261126T015959Z-00000002", "20261127T015959Z-00000002"
    backup(store, "20261126T020000Z-00000021", **step(first, 1))
    backup(store, "20261126T020500Z-00000022", "cf", minutes=5, **step(first, 3))
    backup(store, "20261127T020000Z-00000023", minutes=60 * 24, **step(later, 1))
    rebuild(catalog, store)
    assert catalog.get_restore_point(first).state is RestorePointState.COMPLETE
    rp = catalog.get_restore_point(later)
    assert rp.state is RestorePointState.PARTIAL
    assert rp.summary is not None and "no backup of cf, though earlier" in rp.summary


def test_a_target_added_to_the_plan_later_leaves_earlier_points_complete() -> None:
    """A configured target the bucket holds no backup of up to a point is not expected of it
    (retention would delete a point wrongly called partial): the first point is complete."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    point = "20261127T015959Z-00000005"
    backup(store, "20261127T020000Z-00000025", **step(point, 1))  # the plan also names cf
    backup(store, "20261128T020000Z-00000026", "cf", minutes=60 * 24, **step("x-2", 2))
    rebuild(catalog, store)
    assert catalog.get_restore_point(point).state is RestorePointState.COMPLETE


def test_a_target_the_configured_plan_dropped_is_not_expected_any_more() -> None:
    """Targets earlier points hold but the plan (as configured) no longer backs up do not make
    later points partial; without the plan's config, they do."""
    old = backup_manifest("director-a", "old", 0)
    cf_then = backup_manifest("cf", "old", 1)
    new = backup_manifest("director-a", "new", 2)
    store, catalog = FakeReadStore(), MemoryCatalog()
    for m in (old, cf_then, new):
        store.put(manifest_key(PREFIX, m.target, m.artifact_dir), manifest_json(m))
    plans = {"nightly": ["director-a"]}
    rebuild_catalog(catalog, store, PREFIX, FakeClock(), plan_targets=plans)  # type: ignore[arg-type]
    assert catalog.get_restore_point("new").state is RestorePointState.COMPLETE
    store2, catalog2 = FakeReadStore(dict(store.objects)), MemoryCatalog()
    rebuild_catalog(catalog2, store2, PREFIX, FakeClock())  # type: ignore[arg-type]
    assert catalog2.get_restore_point("new").state is RestorePointState.PARTIAL


def backup_manifest(target: str, point: str, day: int) -> Manifest:
    """A manifest with no objects: step of ``point`` on ``day`` (nothing else is looked at)."""
    started = T0 + timedelta(days=day)
    return Manifest(f"r-{target}-{point}", target, TargetKind.DIRECTOR, None, f"{target}_{day}",
                    (), SUMMARY, started, started, "v", **step(point, 1))  # fmt: skip


def test_point_verdict_names_what_is_stored_and_what_is_missing() -> None:
    """The summary lists the stored targets and steps; a missing expected target is named."""
    m = backup_manifest("x", "p", 0)
    assert point_verdict([m], {"x"}) == (
        RestorePointState.COMPLETE,
        "rebuilt from the bucket: 1 backup stored (x; steps 1)",
    )
    state, summary = point_verdict([m], {"x", "y"})
    assert state is RestorePointState.PARTIAL
    assert summary.endswith("no backup of y, though earlier restore points of the plan have one")


def test_an_existing_restore_point_is_left_alone_and_the_run_joins_it() -> None:
    """A point the catalog still has is not recreated or changed; the rebuilt run names it."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    point = catalog.create_restore_point(
        NewRestorePoint(
            "20261127T015959Z-00000003", "nightly", Trigger.OPERATOR, "alice", T0,
            state=RestorePointState.FAILED, summary="as it was",
        )
    )  # fmt: skip
    m = backup(store, "20261127T020000Z-00000031", **step(point.id, 1))
    report = rebuild(catalog, store)
    assert catalog.get_restore_point(point.id) == point and report.points == ()
    assert catalog.get_run(m.run_id).restore_point_id == point.id


def test_a_point_without_a_plan_cannot_be_recreated_so_the_run_stands_alone() -> None:
    """A manifest naming a missing restore point but no plan: the run is rebuilt without the
    point and the manifest is reported."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    m = backup(store, "20261127T020000Z-00000041", restore_point_id="20261127T0-00000004", step=1)
    report = rebuild(catalog, store)
    run = catalog.get_run(m.run_id)
    assert (run.restore_point_id, run.step) == (None, None)
    assert [p.reason for p in report.problems] == [
        "names restore point 20261127T0-00000004, which is not in the catalog and no manifest "
        "of it names a plan; rebuilt without the restore point"
    ]


def test_runs_already_in_the_catalog_are_left_alone_and_a_second_rebuild_adds_nothing() -> None:
    """A run the catalog holds keeps its own record; rebuilding twice adds no row or line."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    kept = backup(store, "20261127T020000Z-00000051")
    backup(store, "20261127T020500Z-00000052", "cf", kind=TargetKind.DEPLOYMENT, minutes=5)
    original = catalog.create_run(
        NewRun(kept.run_id, RunKind.BACKUP, "director-a", TargetKind.DIRECTOR, Trigger.OPERATOR,
               "alice", T0, state=RunState.FAILED)
    )  # fmt: skip
    first = rebuild(catalog, store)
    assert first.present == (kept.run_id,) and len(first.rebuilt) == 1
    assert catalog.get_run(kept.run_id) == original and catalog.list_artifacts(kept.run_id) == []
    rows, logs = list(catalog.artifacts), {k: list(v) for k, v in catalog.logs.items()}
    second = rebuild(catalog, store)
    assert second.rebuilt == () and len(second.present) == 2 and second.problems == ()
    assert catalog.artifacts == rows and catalog.logs == logs


def test_a_dry_run_reports_what_it_would_rebuild_and_writes_nothing() -> None:
    """--dry-run: the same runs and points in the report, no row in the catalog."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    backup(store, "20261127T020000Z-00000061", **step("20261127T015959Z-00000006", 1))
    report = rebuild(catalog, store, dry_run=True)
    assert report.dry_run and len(report.rebuilt) == 1 and len(report.points) == 1
    assert catalog.runs == {} and catalog.restore_points == {} and catalog.artifacts == []


def test_unusable_manifests_are_reported_by_key_and_skipped() -> None:
    """Garbage, a manifest naming another directory, one listing a missing or differently
    sized object, one whose read fails, two claiming one run id: each reported, the rest
    rebuilt."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    good = backup(store, "20261127T020000Z-00000071")
    store.put(f"{PREFIX}/cf/garbage/manifest.json", b"{not json")
    moved = backup(store, "20261127T020000Z-00000072", "cf")
    store.put(f"{PREFIX}/cf/elsewhere/manifest.json", manifest_json(moved))
    missing = backup(store, "20261127T020000Z-00000073", "d1")
    del store.objects[missing.objects[0].key]
    resized = backup(store, "20261127T020000Z-00000074", "d2")
    store.put(resized.objects[1].key, b"metadata grew")
    unread = backup(store, "20261127T020000Z-00000075", "d3")
    unread_key = manifest_key(PREFIX, "d3", unread.artifact_dir)
    store.fail_read_at[unread_key] = 0
    twin = replace(good, target="d4", artifact_dir="d4_twin", objects=())
    store.put(manifest_key(PREFIX, "d4", "d4_twin"), manifest_json(twin))
    report = rebuild(catalog, store)
    reasons = {p.key.split("/")[1] + "/" + p.key.split("/")[2]: p.reason for p in report.problems}
    assert reasons["cf/garbage"].startswith("unreadable manifest, skipped")
    assert reasons["cf/elsewhere"].startswith("names target 'cf' and directory")
    assert "which is missing from the bucket" in reasons[f"d1/{missing.artifact_dir}"]
    assert "holds 13 bytes, the manifest records 1" in reasons[f"d2/{resized.artifact_dir}"]
    assert "injected 503" in reasons[f"d3/{unread.artifact_dir}"]
    twice = f"run {good.run_id} is committed by 2 manifests"
    assert reasons["d4/d4_twin"].startswith(twice)
    assert reasons[f"director-a/{good.artifact_dir}"].startswith(twice)
    assert len(report.manifests) == 8 and len(report.problems) == 7
    assert [r.run.id for r in report.rebuilt] == [moved.run_id]


def test_uploads_without_a_manifest_are_orphans_and_get_no_rows() -> None:
    """Objects of a directory without manifest.json (and objects a manifest does not list) are
    reported as orphans with their keys; keys outside the layout are ignored."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    store.put(f"{PREFIX}/cf/cf_20261127T020000Z/bosh-0-db.tar", b"half")
    store.put(f"{PREFIX}/cf/cf_20261127T020000Z/metadata", b"m")
    m = backup(store, "20261127T020000Z-00000081")
    stray = f"{PREFIX}/director-a/{m.artifact_dir}/stray.tar"
    store.put(stray, b"x")
    store.put(f"{PREFIX}/.bbr-orchestrator-check/probe", b"p")
    report = rebuild(catalog, store)
    assert [(o.directory, o.keys) for o in report.orphans] == [
        (
            f"{PREFIX}/cf/cf_20261127T020000Z/",
            (
                f"{PREFIX}/cf/cf_20261127T020000Z/bosh-0-db.tar",
                f"{PREFIX}/cf/cf_20261127T020000Z/metadata",
            ),
        ),
        (f"{PREFIX}/director-a/{m.artifact_dir}/", (stray,)),
    ]
    assert report.problems == () and list(catalog.runs) == [m.run_id]


def test_an_empty_or_nested_prefix_finds_the_same_layout() -> None:
    """Backups under a nested prefix are found from it; with an empty prefix from the root."""
    for prefix in ("", "a/b"):
        store, catalog = FakeReadStore(), MemoryCatalog()
        key = f"{prefix}/t/d/manifest.json".lstrip("/")
        obj = ManifestObject("f", key.replace("manifest.json", "f"), 1, "0" * 64, 0)
        store.put(obj.key, b"x")
        m = Manifest("20261127T020000Z-00000091", "t", TargetKind.DIRECTOR, None, "d", (obj,),
                     SUMMARY, T0, T0, "v")  # fmt: skip
        store.put(key, manifest_json(m))
        report = rebuild_catalog(catalog, store, f"/{prefix}/", FakeClock())  # type: ignore[arg-type]
        assert report.manifests == (key,) and list(catalog.runs) == [m.run_id], prefix


def test_the_command_prints_counts_runs_points_problems_and_orphans() -> None:
    """`catalog rebuild` output: a line per count, then each run, point, problem and orphan
    (orphan keys cut after five)."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    m = backup(store, "20261127T020000Z-000000a1", **step("20261127T015959Z-0000000a", 1))
    store.put(f"{PREFIX}/cf/bad/manifest.json", b"[]")
    for n in range(7):
        store.put(f"{PREFIX}/cf/cf_half/part-{n}.tar", b"x")
    lines = report_lines(rebuild(catalog, store, dry_run=True), "s3://bucket/bbr")
    assert lines[:3] == [
        "catalog rebuild from s3://bucket/bbr (dry run: nothing written)",
        "manifests found: 2",
        "runs would be rebuilt: 1",
    ]
    assert lines[3].startswith(
        f"  {m.run_id} backup director-a restore point 20261127T015959Z-0000000a step 1: "
        "3 objects, "
    )
    assert "already in the catalog: 0" in lines and "restore points would be rebuilt: 1" in lines
    assert "problems: 1" in lines and any(x.startswith(f"  {PREFIX}/cf/bad/") for x in lines)
    assert lines[-7:] == [
        f"  {PREFIX}/cf/cf_half/ (7 objects: no manifest: an unfinished upload)",
        *(f"    {PREFIX}/cf/cf_half/part-{n}.tar" for n in range(5)),
        "    ... and 2 more",
    ]


def test_an_unlock_failed_backup_comes_back_failed_and_its_point_partial() -> None:
    """A manifest whose bbr outcome is unlock-failed rebuilds a failed run with that outcome
    (its artifact rows kept), and its restore point partial, naming the target."""
    store, catalog = FakeReadStore(), MemoryCatalog()
    point = "20261127T015959Z-0000000f"
    backup(store, "20261127T020000Z-0000000a", **step(point, 1), bbr_outcome="unlock-failed")
    backup(store, "20261127T020000Z-0000000b", "cf", kind=TargetKind.DEPLOYMENT, minutes=5,
           **step(point, 2))  # fmt: skip
    rebuild(catalog, store)
    run = catalog.get_run("20261127T020000Z-0000000a")
    assert (run.state, run.outcome) == (RunState.FAILED, "unlock-failed")
    assert len(catalog.list_artifacts(run.id)) == 3
    rebuilt = catalog.get_restore_point(point)
    assert rebuilt.state is RestorePointState.PARTIAL
    assert "bbr failed for director-a" in (rebuilt.summary or "")
