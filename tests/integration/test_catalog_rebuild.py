"""The catalog rebuilt from the bucket: backups stored through the real path (sshd + bbr and om
simulators + S3 server + SQLite), then recreated into a fresh catalog and compared."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.bbr_operation import TargetRun, run_operation
from bbr_orchestrator.actions.catalog_rebuild import REBUILT_BY, rebuild_catalog
from bbr_orchestrator.actions.opsman_export import OpsmanRun, run_opsman_export
from bbr_orchestrator.actions.restore_point import (
    PointContext,
    Step,
    queue_steps,
    run_restore_point,
)
from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog, upgrade
from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.adapters.s3 import S3ObjectStore
from bbr_orchestrator.adapters.s3.retry import RetryPolicy
from bbr_orchestrator.config import validate_data
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import (
    NewRestorePoint,
    RestorePointState,
    Run,
    RunFilter,
    RunKind,
    RunState,
    TargetKind,
    Trigger,
    new_run_id,
)
from bbr_orchestrator.core.om_argv import OmConnection, export_installation_argv, om_environment
from bbr_orchestrator.ports import CancelToken, ShellFactory
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.integration.bbr_targets import OPERATOR, deployment, director
from tests.integration.test_check import check_config_data

EXE = str(Path(sys.executable).parent / "bbr-orchestrator")
PLAN = "nightly"
GARBAGE = "bbr/cf-gone/cf-gone_20261127T020000Z/manifest.json"
ORPHAN = "bbr/director-10.8.7.9/10.8.7.9_20261127T020000Z/bosh-0-fake-db.tar"


class OpenGate:
    """Capacity that never makes a step wait."""

    def acquire(self, jumpbox: str, stop: object, label: str) -> bool:
        return True

    def release(self, jumpbox: str, label: str) -> None:
        return None


def storage(server: S3Server, bucket: str) -> Storage:
    retry = RetryPolicy(attempts=2, base_delay=0.1, max_delay=0.2)
    store = S3ObjectStore(server.client(), bucket, "bbr", retry=retry)
    return Storage(store=store, prefix="bbr", orchestrator_version="test")


def opsman(tmp_path: Path) -> OpsmanRun:
    connection = OmConnection("https://opsman-rebuild.example.internal", skip_ssl_validation=True)
    return OpsmanRun(
        target="opsman-rebuild",
        build_argv=lambda output: export_installation_argv("om", connection, output),
        work_root=str(tmp_path / "work"),
        env=om_environment(username="admin", password="pw", decryption_passphrase="phrase"),
        timeout_seconds=120,
        plan=PLAN,
    )


def bbr_step(
    catalog: SqlCatalog, shell: ShellFactory, spec: TargetRun, store: Storage, who: Requester
) -> Step:
    def execute(queued: Run, cancel: CancelToken) -> Run:
        return run_operation(
            catalog, shell, SystemClock(), spec, Operation.BACKUP, who,
            cancel=cancel, storage=store, queued=queued,
        )  # fmt: skip

    return Step(spec.target, spec.target_kind, RunKind.BACKUP, "jumpbox", execute)


def store_restore_point(
    catalog: SqlCatalog, shell: ShellFactory, tmp_path: Path, store: Storage
) -> str:
    """A scheduled firing of plan nightly: Ops Manager export, director, deployment."""
    clock = SystemClock()
    who = Requester(Trigger.SCHEDULE, f"plan {PLAN}", "daemon-a")
    now = clock.now()
    point = catalog.create_restore_point(
        NewRestorePoint(new_run_id(now, "0000abcd"), PLAN, Trigger.SCHEDULE,
                        "schedule 0 2 * * * (UTC)", now, scheduled_for=now, daemon_instance="a")
    )  # fmt: skip

    def export(queued: Run, cancel: CancelToken) -> Run:
        spec = opsman(tmp_path)
        return run_opsman_export(
            catalog, shell, clock, spec, who, cancel=cancel, storage=store, queued=queued
        )

    steps = [
        Step("opsman-rebuild", TargetKind.OPSMAN, RunKind.OPSMAN_EXPORT, "jumpbox", export),
        bbr_step(catalog, shell, director(tmp_path, "10.8.7.2"), store, who),
        bbr_step(catalog, shell, deployment(tmp_path, "cf-rebuild"), store, who),
    ]
    stop, cancel = threading.Event(), threading.Event()
    ctx = PointContext(catalog, clock, OpenGate(), stop, cancel, who)
    done = run_restore_point(ctx, point, steps, queue_steps(ctx, point, steps))
    assert done.state is RestorePointState.COMPLETE, done.summary
    return point.id


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[SqlCatalog]:
    """A second, empty catalog at the migration head (the one rebuilt into)."""
    url = f"sqlite:///{tmp_path / 'rebuilt.sqlite3'}"
    upgrade(url)
    with open_catalog(url) as opened:
        yield opened


def backups(catalog: SqlCatalog) -> list[Run]:
    runs = catalog.list_runs(RunFilter(states=frozenset({RunState.SUCCEEDED}), limit=100))
    return [r for r in runs if r.kind in (RunKind.BACKUP, RunKind.OPSMAN_EXPORT)]


def rebuildable(run: Run) -> tuple[object, ...]:
    """The fields a manifest carries back (everything but exit code, owner, log, queue time)."""
    return (
        run.id, run.kind, run.target, run.target_kind, run.plan, run.restore_point_id, run.step,
        run.state, run.outcome, run.started_at, run.bytes_total, run.trigger, run.triggered_by,
    )  # fmt: skip


def test_the_catalog_rebuilt_from_the_bucket_matches_the_original(
    catalog: SqlCatalog,
    fresh: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """An operator backup and a three-step restore point come back with the same runs, artifact
    rows and restore point; a garbage manifest is reported and skipped, an upload without a
    manifest is an orphan; a second rebuild adds nothing."""
    bbrsim.clear_faults(bbr_state)
    store = storage(seaweedfs, bucket(seaweedfs))
    plain = run_operation(
        catalog, shell, SystemClock(), director(tmp_path, "10.8.7.1"), Operation.BACKUP,
        OPERATOR, storage=store,
    )  # fmt: skip
    assert plain.state is RunState.SUCCEEDED, plain.error_summary
    point_id = store_restore_point(catalog, shell, tmp_path, store)
    store.store.put(GARBAGE, b"{ this is not a manifest")
    store.store.put(ORPHAN, b"half an upload")
    original = backups(catalog)
    assert len(original) == 4

    plans = {PLAN: ("opsman-rebuild", "director-10.8.7.2", "cf-rebuild")}
    report = rebuild_catalog(fresh, store.store, "bbr", SystemClock(), plan_targets=plans)

    assert len(report.manifests) == 5 and len(report.rebuilt) == 4 and report.present == ()
    assert [p.key for p in report.problems] == [GARBAGE]
    assert [o.keys for o in report.orphans] == [(ORPHAN,)]
    rebuilt = {r.id: r for r in backups(fresh)}
    assert set(rebuilt) == {r.id for r in original}
    for run in original:
        again = rebuilt[run.id]
        assert rebuildable(again) == rebuildable(run)
        assert run.finished_at is not None and again.finished_at is not None
        assert timedelta(0) <= run.finished_at - again.finished_at < timedelta(seconds=60)
        rows = catalog.list_artifacts(run.id)
        assert fresh.list_artifacts(run.id) == rows
        (key,) = [a.object_key for a in rows if a.object_key.endswith("/manifest.json")]
        assert [line.text for line in fresh.read_log(run.id)] == [f"rebuilt from {key}"]
    assert rebuilt[plain.id].plan is None and rebuilt[plain.id].triggered_by == "tester@ci"
    was, now = catalog.get_restore_point(point_id), fresh.get_restore_point(point_id)
    assert (now.plan, now.state, now.trigger) == (was.plan, was.state, was.trigger)
    assert now.triggered_by == REBUILT_BY and now.scheduled_for is None

    recorded = {r.id: fresh.list_artifacts(r.id) for r in original}
    second = rebuild_catalog(fresh, store.store, "bbr", SystemClock(), plan_targets=plans)
    assert second.rebuilt == () and second.points == () and len(second.present) == 4
    assert {r.id: fresh.list_artifacts(r.id) for r in original} == recorded
    assert len(backups(fresh)) == 4 and len(fresh.list_restore_points()) == 1


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "-c", str(config), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_catalog_rebuild_command_needs_a_migrated_catalog_and_reports_problems(
    tmp_path: Path,
    jumpbox: Jumpbox,
    shell: ShellFactory,
    bbr_state: Path,
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> None:
    """`catalog rebuild` refuses an unmigrated catalog (exit 3, says `db upgrade`); --dry-run
    writes nothing; a garbage manifest makes it exit 1 naming the key; without it, exit 0."""
    name = bucket(seaweedfs)
    data = check_config_data(tmp_path, jumpbox, seaweedfs, name)
    config = validate_data(data)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    store = storage(seaweedfs, name)
    bbrsim.clear_faults(bbr_state)
    origin_url = f"sqlite:///{tmp_path / 'origin.sqlite3'}"
    upgrade(origin_url)
    with open_catalog(origin_url) as origin:
        run = run_operation(
            origin, shell, SystemClock(), director(tmp_path, "10.8.7.3"), Operation.BACKUP,
            OPERATOR, storage=store,
        )  # fmt: skip
    assert run.state is RunState.SUCCEEDED, run.error_summary
    store.store.put(GARBAGE, b"garbage")

    refused = cli(path, "catalog", "rebuild")
    assert refused.returncode == 3 and "bbr-orchestrator db upgrade" in refused.stderr
    config.state_dir.mkdir(parents=True, exist_ok=True)
    upgrade(config.catalog_url())
    dry = cli(path, "catalog", "rebuild", "--dry-run")
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert "runs would be rebuilt: 1" in dry.stdout and f"  {GARBAGE}: unreadable" in dry.stdout
    with open_catalog(config.catalog_url()) as target:
        assert target.list_runs(RunFilter()) == []
    done = cli(path, "catalog", "rebuild")
    assert done.returncode == 1 and "runs rebuilt: 1" in done.stdout
    store.store.delete([GARBAGE])
    clean = cli(path, "catalog", "rebuild")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "runs rebuilt: 0" in clean.stdout and "already in the catalog: 1" in clean.stdout
    with open_catalog(config.catalog_url()) as target:
        assert target.get_run(run.id).bytes_total == run.bytes_total
