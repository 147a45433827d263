"""A plan's verify job: which backups a firing re-reads (latest, or a rolling slice of all the
retained ones), the verify runs it records, and what a store outage does (judges nothing)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from datetime import UTC, datetime

import pytest
import yaml

from bbr_orchestrator.actions.run_claim import Requester, RunRequest, claim_now
from bbr_orchestrator.actions.verify_plan import verify_plan
from bbr_orchestrator.core.bbr_metadata import MetadataSummary
from bbr_orchestrator.core.layout import Manifest, ManifestObject, manifest_json, manifest_key
from bbr_orchestrator.core.models import (
    Artifact,
    Run,
    RunFilter,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.core.rolling import RollingSlice

from .fakes import FakeClock, MemoryCatalog
from .fetch_fakes import FakeReadStore

JOB = Requester(Trigger.SCHEDULE, "verify job of plan nightly", "daemon-1")
PREFIX = "backups"


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class Bed:
    """A fake catalog and store holding stored backups made the way the backup path stores
    them: tars and bbr metadata under one directory, a manifest listing them, artifacts
    recorded in the catalog."""

    def __init__(self) -> None:
        self.catalog = MemoryCatalog()
        self.clock = FakeClock()
        self.store = FakeReadStore()
        self.members: dict[str, dict[str, bytes]] = {}
        """Tar key -> its members, for tests that damage one."""

    def backup(
        self,
        target: str,
        plan: str | None = "nightly",
        tars: int = 2,
        state: RunState = RunState.SUCCEEDED,
        kind: RunKind = RunKind.BACKUP,
    ) -> Run:
        request = RunRequest(kind, target, TargetKind.DIRECTOR, plan)
        run = claim_now(self.catalog, self.clock, request, JOB)
        directory = f"10.0.0.6_{run.id}"
        files: dict[str, bytes] = {}
        checksums: list[dict[str, str]] = []
        for i in range(tars):
            members = {f"./job{i}/data": f"{run.id} {target} job{i}".encode() * 50}
            files[f"bosh-0-job{i}.tar"] = _tar(members)
            checksums.append({n: hashlib.sha256(d).hexdigest() for n, d in members.items()})
            self.members[f"{PREFIX}/{target}/{directory}/bosh-0-job{i}.tar"] = members
        files["metadata"] = yaml.safe_dump(
            {
                "instances": [
                    {
                        "name": "bosh",
                        "index": "0",
                        "artifacts": [
                            {"name": f"job{i}", "checksums": c} for i, c in enumerate(checksums)
                        ],
                    }
                ],
                "backup_activity": {"start_time": "2026/11/27 02:00:00 UTC"},
            }
        ).encode()
        base = f"{PREFIX}/{target}/{directory}"
        objects = tuple(
            ManifestObject(
                name, f"{base}/{name}", len(data), hashlib.sha256(data).hexdigest(),
                1 if name.endswith(".tar") else 0,
            )
            for name, data in sorted(files.items())
        )  # fmt: skip
        manifest = Manifest(
            run_id=run.id,
            target=target,
            target_kind=TargetKind.DIRECTOR,
            bbr_version="1.9.79",
            artifact_dir=directory,
            objects=objects,
            metadata=MetadataSummary(1, tars, 0, tuple(f"job{i}" for i in range(tars)), tars),
            started_at=datetime(2026, 11, 27, 2, tzinfo=UTC),
            finished_at=datetime(2026, 11, 27, 2, 5, tzinfo=UTC),
            orchestrator_version="test",
        )
        for obj in objects:
            self.store.put(obj.key, files[obj.name])
        key = manifest_key(PREFIX, target, directory)
        self.store.put(key, manifest_json(manifest))
        artifacts = [Artifact(run.id, o.key, o.size, o.sha256) for o in objects]
        raw = self.store.objects[key]
        artifacts.append(Artifact(run.id, key, len(raw), hashlib.sha256(raw).hexdigest()))
        if state is RunState.SUCCEEDED:
            self.catalog.add_artifacts(artifacts)
        return self.catalog.transition(
            run.id, [RunState.RUNNING], state, RunUpdate(finished_at=self.clock.now())
        )

    def tar_keys(self, backup: Run) -> list[str]:
        return [
            a.object_key
            for a in self.catalog.list_artifacts(backup.id)
            if a.object_key.endswith(".tar")
        ]

    def corrupt_member(self, key: str) -> str:
        """Flip one byte inside a member of the tar at ``key`` (same size); its member name."""
        (name, data), *_ = self.members[key].items()
        raw = bytearray(self.store.objects[key])
        raw[raw.index(data) + 3] ^= 0x01
        self.store.objects[key] = bytes(raw)
        return name.lstrip("./")

    def verify(
        self, mode: str, percent: int = 100, slice_index: int = 0, **kwargs: object
    ) -> list[Run]:
        return verify_plan(
            self.catalog,
            self.clock,
            self.store,  # type: ignore[arg-type]
            "nightly",
            ["director-a", "director-b", "never-backed-up"],
            mode,  # type: ignore[arg-type]
            percent,
            slice_index,
            JOB,
            **kwargs,  # type: ignore[arg-type]
        )

    def read_keys(self) -> list[str]:
        return [key for key, _ in self.store.reads if key.endswith(".tar")]


def test_latest_verifies_the_newest_backup_of_each_target_in_full() -> None:
    """mode latest: one verify run per target that has a backup, about its newest succeeded
    backup (older and failed ones untouched), which is marked restorable."""
    bed = Bed()
    old_a = bed.backup("director-a")
    new_a = bed.backup("director-a")
    bed.backup("director-a", state=RunState.FAILED)
    new_b = bed.backup("director-b", plan=None)  # an operator's backup is the newest too
    runs = bed.verify("latest")
    assert [(r.subject_run_id, r.state, r.outcome) for r in runs] == [
        (new_a.id, RunState.SUCCEEDED, "verified"),
        (new_b.id, RunState.SUCCEEDED, "verified"),
    ]
    assert all(r.kind is RunKind.VERIFY and r.trigger is Trigger.SCHEDULE for r in runs)
    assert bed.catalog.get_run(new_a.id).restorable is True
    assert bed.catalog.get_run(new_b.id).restorable is True
    assert bed.catalog.get_run(old_a.id).restorable is None
    assert sorted(bed.read_keys()) == sorted(bed.tar_keys(new_a) + bed.tar_keys(new_b))


def test_latest_catches_a_deleted_object_and_a_corrupted_member() -> None:
    """A deleted tar and a flipped member byte: the verify fails naming both, the backup is
    marked not restorable, the other target's backup stays verified."""
    bed = Bed()
    damaged = bed.backup("director-a", tars=3)
    intact = bed.backup("director-b")
    gone, flipped = bed.tar_keys(damaged)[:2]
    del bed.store.objects[gone]
    member = bed.corrupt_member(flipped)
    runs = {r.subject_run_id: r for r in bed.verify("latest")}
    failed = runs[damaged.id]
    assert (failed.state, failed.outcome) == (RunState.FAILED, "corrupt")
    assert failed.error_summary is not None
    assert gone in failed.error_summary and flipped in failed.error_summary
    assert member in failed.error_summary
    assert bed.catalog.get_run(damaged.id).restorable is False
    assert runs[intact.id].outcome == "verified"
    assert bed.catalog.get_run(intact.id).restorable is True


def test_rolling_slices_cover_every_object_of_every_retained_backup_once() -> None:
    """mode rolling at 34% (3 slices): each firing records a verify run per retained backup,
    succeeds as slice-verified without a verdict, and three consecutive firings together read
    every tar of every backup exactly once."""
    bed = Bed()
    backups = [bed.backup("director-a", tars=6) for _ in range(2)] + [
        bed.backup("director-b", tars=6)
    ]
    all_tars = sorted(k for b in backups for k in bed.tar_keys(b))
    read: list[str] = []
    for firing in (7, 8, 9):
        bed.store.reads.clear()
        runs = bed.verify("rolling", percent=34, slice_index=firing)
        assert [r.subject_run_id for r in runs] == [b.id for b in backups]
        assert {(r.state, r.outcome) for r in runs} <= {
            (RunState.SUCCEEDED, "slice-verified"),
            (RunState.SUCCEEDED, "verified"),
        }
        chosen = sorted(bed.read_keys())
        assert chosen == [k for k in all_tars if RollingSlice(34, firing).selects(k)]
        read += chosen
    assert sorted(read) == all_tars


def test_a_rolling_run_leaves_the_verdict_unless_it_read_everything() -> None:
    """A clean slice gives no verdict (restorable stays unset); at 100% the single slice reads
    everything and marks the backup restorable."""
    bed = Bed()
    backup = bed.backup("director-a", tars=4)
    keys = [k.object_key for k in bed.catalog.list_artifacts(backup.id)]
    data = [k for k in keys if not k.endswith("/manifest.json")]
    # A slice that leaves something out (the keys hold a random run id: both halves may not).
    index = next(i for i in (0, 1) if not all(RollingSlice(50, i).selects(k) for k in data))
    (partial,) = bed.verify("rolling", percent=50, slice_index=index)
    assert partial.outcome == "slice-verified"
    assert bed.catalog.get_run(backup.id).restorable is None
    (full,) = bed.verify("rolling", percent=100, slice_index=5)
    assert full.outcome == "verified"
    assert bed.catalog.get_run(backup.id).restorable is True


def test_the_slice_that_holds_a_damaged_object_marks_its_backup_not_restorable() -> None:
    """Only the slice containing the flipped tar finds it; that marks the backup not restorable
    and a later clean slice does not undo it."""
    bed = Bed()
    backup = bed.backup("director-a", tars=6)
    key = bed.tar_keys(backup)[0]
    bed.corrupt_member(key)
    bad = next(i for i in range(4) if RollingSlice(25, i).selects(key))
    clean = next(i for i in range(4) if not RollingSlice(25, i).selects(key))
    (run,) = bed.verify("rolling", percent=25, slice_index=clean)
    assert run.state is RunState.SUCCEEDED
    assert bed.catalog.get_run(backup.id).restorable is None
    (run,) = bed.verify("rolling", percent=25, slice_index=bad)
    assert (run.state, run.outcome) == (RunState.FAILED, "corrupt")
    assert run.error_summary is not None and key in run.error_summary
    assert bed.catalog.get_run(backup.id).restorable is False
    bed.verify("rolling", percent=25, slice_index=clean)
    assert bed.catalog.get_run(backup.id).restorable is False


def test_rolling_checks_only_the_plans_retained_succeeded_backups() -> None:
    """Another plan's backup, an operator's, a failed one and one whose manifest is no longer
    recorded (pruned) are not part of the plan's rolling verify; an Ops Manager export is."""
    bed = Bed()
    mine = bed.backup("director-a")
    export = bed.backup("director-b", kind=RunKind.OPSMAN_EXPORT)
    bed.backup("director-a", plan="weekly")
    bed.backup("director-a", plan=None)
    bed.backup("director-b", state=RunState.FAILED)
    pruned = bed.backup("director-b")
    bed.catalog.artifacts = [a for a in bed.catalog.artifacts if a.run_id != pruned.id]
    runs = bed.verify("rolling", percent=100)
    assert [r.subject_run_id for r in runs] == [mine.id, export.id]


def test_a_store_outage_fails_the_verifies_as_error_and_judges_no_backup() -> None:
    """The store fails while reading the first backup: that verify ends failed 'error', the
    others are recorded failed 'error' without another read, and no backup gets a verdict."""
    bed = Bed()
    first = bed.backup("director-a")
    second = bed.backup("director-a")
    third = bed.backup("director-b")
    for key in bed.tar_keys(first):
        bed.store.fail_read_at[key] = 0
    runs = bed.verify("rolling", percent=100)
    assert [(r.subject_run_id, r.state, r.outcome) for r in runs] == [
        (first.id, RunState.FAILED, "error"),
        (second.id, RunState.FAILED, "error"),
        (third.id, RunState.FAILED, "error"),
    ]
    assert all("injected 503" in (r.error_summary or "") for r in runs)
    assert not [k for k in bed.read_keys() if k not in bed.tar_keys(first)]
    for backup in (first, second, third):
        assert bed.catalog.get_run(backup.id).restorable is None
    notes = [line.text for line in bed.catalog.read_log(runs[1].id)]
    assert any(n.startswith("not verified: the object store failed") for n in notes), notes


def test_a_cancelled_job_stops_before_the_next_backup() -> None:
    """Set the cancel token and the job records no further verify run."""
    bed = Bed()
    bed.backup("director-a")
    cancel = threading.Event()
    cancel.set()
    assert bed.verify("latest", cancel=cancel) == []
    assert bed.catalog.list_runs(RunFilter(kind=RunKind.VERIFY)) == []


def test_an_unknown_mode_is_refused() -> None:
    """Only latest and rolling exist."""
    with pytest.raises(ValueError, match="unknown verify mode"):
        Bed().verify("sometimes")


def test_backups_retention_deleted_are_never_verified_again() -> None:
    """A backup retention deleted (or is deleting) is passed over: `latest` takes the newest
    one still stored, `rolling` leaves it out, though its artifact rows stay."""
    bed = Bed()
    kept = bed.backup("director-a")
    deleted = bed.backup("director-a")
    deleting = bed.backup("director-b")
    bed.catalog.begin_deletion(deleted.id, "outside keep-last 1")
    bed.catalog.mark_deleted(deleted.id, bed.clock.now())
    bed.catalog.begin_deletion(deleting.id, "outside keep-last 1")

    assert [r.subject_run_id for r in bed.verify("latest")] == [kept.id]
    assert [r.subject_run_id for r in bed.verify("rolling", percent=100)] == [kept.id]
