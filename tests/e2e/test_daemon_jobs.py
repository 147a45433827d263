"""The daemon's scheduled verify jobs and restore drills, as a subprocess against real sshd +
bbr simulator + SeaweedFS + PostgreSQL: damage caught from the bucket alone, a drill into a
sandbox director with its RTO recorded, and each firing run once across two daemons."""

from __future__ import annotations

import io
import json
import secrets
import signal
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from bbr_orchestrator.adapters.catalog.tables import job_firings
from bbr_orchestrator.core.models import RestorePointState, Run, RunFilter, RunKind, RunState
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox, running_sshd

from .daemon_kit import CLIENT_SECRET, Bed, postgres_database, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NEVER = "0 0 1 1 *"


@pytest.fixture(scope="module")
def jobs_jumpbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Jumpbox, Path]]:
    """One jumpbox (a real sshd) with the bbr simulator, for this module's tests."""
    base = tmp_path_factory.mktemp("jobs-jumpbox")
    bin_dir, state = base / "bin", base / "bbr-state"
    bbrsim.install(bin_dir, state)
    (state / "deployment_secret").write_text(CLIENT_SECRET, encoding="utf-8")
    with running_sshd(base / "sshd", bin_dir=bin_dir, env={"BBR_SIM_STATE": str(state)}) as box:
        yield box, state


@pytest.fixture
def bed(
    tmp_path: Path,
    jobs_jumpbox: tuple[Jumpbox, Path],
    seaweedfs: S3Server,
    bucket: BucketFactory,
) -> Iterator[Bed]:
    box, state = jobs_jumpbox
    with postgres_database() as url:
        test_bed = Bed(tmp_path, [box], state, seaweedfs, bucket(seaweedfs), url)
        try:
            yield test_bed
        finally:
            test_bed.stop_all()


def _host() -> str:
    """A director address no other test uses (the simulator keys directors by host)."""
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 2}"


def _migrated(bed: Bed, data: dict[str, Any]) -> Path:
    config = bed.write_config(data)
    result = bed.cli(config, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return config


def _runs(bed: Bed, **filters: Any) -> list[Run]:
    with bed.catalog() as catalog:
        return catalog.list_runs(RunFilter(limit=500, **filters))


def _firings(bed: Bed, job: str) -> list[Any]:
    engine = create_engine(bed.catalog_url)
    try:
        with engine.connect() as conn:
            query = select(job_firings).where(job_firings.c.job == job)
            return list(conn.execute(query.order_by(job_firings.c.scheduled_for)).all())
    finally:
        engine.dispose()


def _stored_backup(bed: Bed, config: Path, director: str) -> Run:
    """A backup of ``director`` stored by the operator's `run backup`."""
    made = bed.cli(config, "run", "backup", director, "--quiet")
    assert made.returncode == 0, made.stdout + made.stderr
    (backup,) = _runs(bed, target=director, kind=RunKind.BACKUP)
    assert backup.state is RunState.SUCCEEDED
    return backup


def _damage(bed: Bed, backup: Run) -> tuple[str, str, str]:
    """Delete one tar of ``backup`` from the bucket and flip a byte inside a member of another;
    returns (deleted key, damaged key, member name)."""
    with bed.catalog() as catalog:
        tars = sorted(
            a.object_key for a in catalog.list_artifacts(backup.id) if a.object_key.endswith(".tar")
        )
    deleted, damaged = tars[:2]
    client = bed.s3.client()
    raw = bytearray(client.get_object(Bucket=bed.bucket, Key=damaged)["Body"].read())
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        member = next(m for m in tar.getmembers() if m.isfile() and m.size > 0)
    raw[member.offset_data] ^= 0x01
    client.put_object(Bucket=bed.bucket, Key=damaged, Body=bytes(raw))
    client.delete_object(Bucket=bed.bucket, Key=deleted)
    return deleted, damaged, member.name.lstrip("./")


def test_a_scheduled_verify_catches_a_deleted_object_and_a_corrupted_member(bed: Bed) -> None:
    """A plan's verify job (mode latest, every 3 s) marks the stored backup restorable; after a
    tar is deleted and a member of another flipped in the bucket, a later firing fails naming
    both, the backup is marked not restorable, and bbr never ran for any of it."""
    token = secrets.token_hex(3)
    director, host = f"dir-{token}", _host()
    plan = {
        "name": f"verified-{token}",
        "targets": [director],
        "schedule": NEVER,
        "timezone": "UTC",
        "verify": {"schedule": "*/3 * * * * *", "timezone": "UTC", "mode": "latest"},
    }
    config = _migrated(bed, bed.config([bed.director(director, host)], [plan]))
    backup = _stored_backup(bed, config, director)
    bbr_calls = len(bbrsim.invocations(bed.bbr_state))
    daemon = bed.start_daemon(config)
    daemon.wait_event("daemon_started", timeout=30)
    scheduled = [e for e in daemon.named("job_scheduled") if e["job"] == f"verify:{plan['name']}"]
    assert scheduled and scheduled[0]["kind"] == "verify", daemon.named("job_scheduled")

    def verifies() -> list[Run]:
        return [r for r in _runs(bed, kind=RunKind.VERIFY) if r.subject_run_id == backup.id]

    wait_until(
        "a succeeded verify",
        lambda: [r for r in verifies() if r.outcome == "verified"],
        timeout=60,
    )
    assert _runs(bed, target=director, kind=RunKind.BACKUP)[0].restorable is True
    deleted, damaged, member = _damage(bed, backup)

    def caught() -> list[Run]:
        summaries = [(r, r.error_summary or "") for r in verifies() if r.state is RunState.FAILED]
        return [r for r, s in summaries if deleted in s and damaged in s and member in s]

    failed = wait_until("a verify naming both problems", caught, timeout=60)[0]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
    assert failed.outcome == "corrupt" and failed.trigger.value == "schedule"
    assert failed.triggered_by.startswith(f"verify job of plan {plan['name']}")
    stored = _runs(bed, target=director, kind=RunKind.BACKUP)[0]
    assert stored.restorable is False and stored.verified_at is not None
    shown = bed.cli(config, "runs", "show", failed.id)
    assert "marked not restorable" in shown.stdout, shown.stdout
    assert len(bbrsim.invocations(bed.bbr_state)) == bbr_calls, "verify never runs bbr"
    finished = daemon.named("verify_job_finished")
    assert any(e["failed"] == 1 and e["level"] == "warning" for e in finished), finished
    firings = _firings(bed, f"verify:{plan['name']}")
    assert len(firings) == len({f.scheduled_for for f in firings})
    assert {f.run_id for f in firings if f.run_id} <= {r.id for r in verifies()}


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def test_a_scheduled_drill_restores_into_the_sandbox_and_records_its_rto(bed: Bed) -> None:
    """A drill scheduled every 3 s is refused (a warning naming why, nothing recorded) while
    the plan has no complete restore point; once the plan (rescheduled by a reload) has one,
    a drill restores that backup of director A into sandbox director B: a succeeded DRILL run
    with its RTO, about the backup, and B holding A's data."""
    token = secrets.token_hex(3)
    source, sandbox = f"dir-{token}", f"sandbox-{token}"
    source_host, sandbox_host = _host(), _host()
    plan = {
        "name": f"drilled-{token}",
        "targets": [source],
        "schedule": NEVER,
        "timezone": "UTC",
        "pre_backup_check": False,
        "drills": [
            {"target": sandbox, "source": source, "schedule": "*/3 * * * * *", "timezone": "UTC"}
        ],
    }
    targets = [bed.director(source, source_host), bed.director(sandbox, sandbox_host)]
    data = bed.config(targets, [plan])
    config = _migrated(bed, data)
    source_db = bbrsim.director_job_dir(bed.bbr_state, source_host, "fake-db")
    (source_db / "dump.sql").write_text(f"source data {token}\n", encoding="utf-8")
    expected = _tree(source_db)
    sandbox_db = bbrsim.director_job_dir(bed.bbr_state, sandbox_host, "fake-db")
    (sandbox_db / "dump.sql").write_text("sandbox data\n", encoding="utf-8")
    daemon = bed.start_daemon(config)
    refused = daemon.wait_event("drill_refused", timeout=30)
    assert refused["level"] == "warning" and "no complete restore point" in refused["reason"]
    assert refused["job"] == f"drill:{plan['name']}:{sandbox}"
    assert _runs(bed, kind=RunKind.DRILL) == []
    rescheduled = json.loads(json.dumps(data))
    rescheduled["plans"][0]["schedule"] = "*/4 * * * * *"
    bed.write_config(rescheduled)
    asked = bed.cli(config, "reload")
    assert asked.returncode == 0, asked.stderr
    daemon.wait_event("config_reloaded", timeout=30)

    def drilled() -> list[Run]:
        return [r for r in _runs(bed, kind=RunKind.DRILL) if r.state is RunState.SUCCEEDED]

    drill = wait_until("a succeeded drill", drilled, timeout=120)[-1]
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(90) == 0
    assert (drill.target, drill.plan, drill.trigger.value) == (sandbox, plan["name"], "schedule")
    assert drill.rto_seconds is not None and drill.rto_seconds > 0
    with bed.catalog() as catalog:
        backup = catalog.get_run(drill.subject_run_id or "")
        point = catalog.get_restore_point(backup.restore_point_id or "")
    assert (backup.kind, backup.target, backup.state) == (
        RunKind.BACKUP,
        source,
        RunState.SUCCEEDED,
    )
    assert point.state is RestorePointState.COMPLETE
    assert _tree(sandbox_db) == expected
    restores = [i for i in bbrsim.invocations(bed.bbr_state) if i.get("subcommand") == "restore"]
    assert {i.get("target") for i in restores} == {sandbox_host}, "the source is never restored"
    finished = [e for e in daemon.named("drill_finished") if e["run_id"] == drill.id]
    assert finished and finished[0]["rto_seconds"] == pytest.approx(drill.rto_seconds)
    firings = _firings(bed, f"drill:{plan['name']}:{sandbox}")
    assert drill.id in {f.run_id for f in firings}


def test_two_daemons_run_each_verify_firing_exactly_once(bed: Bed) -> None:
    """Two daemons on one PostgreSQL catalog, one verify job every 2 s: each firing is claimed
    by one of them (both take some) and yields exactly one verify run."""
    token = secrets.token_hex(3)
    director, host = f"dir-{token}", _host()
    plan = {
        "name": f"shared-{token}",
        "targets": [director],
        "schedule": NEVER,
        "timezone": "UTC",
        "verify": {"schedule": "*/2 * * * * *", "timezone": "UTC"},
    }
    config = _migrated(bed, bed.config([bed.director(director, host)], [plan]))
    backup = _stored_backup(bed, config, director)
    job = f"verify:{plan['name']}"
    first, second = bed.start_daemon(config, "a"), bed.start_daemon(config, "b")
    first.wait_event("daemon_started", timeout=30)
    second.wait_event("daemon_started", timeout=30)
    wait_until(
        "both daemons claiming firings, six in all",
        lambda: (
            len(rows := _firings(bed, job)) >= 6 and len({r.daemon_instance for r in rows}) == 2
        ),
        timeout=90,
    )
    for daemon in (first, second):
        daemon.signal(signal.SIGTERM)
    assert first.wait_exit(60) == 0 and second.wait_exit(60) == 0
    firings = _firings(bed, job)
    verifies = [r for r in _runs(bed, kind=RunKind.VERIFY) if r.subject_run_id == backup.id]
    assert len(firings) == len({f.scheduled_for for f in firings})
    assert all(f.scheduled_for.second % 2 == 0 for f in firings)
    assert all(f.run_id is not None for f in firings), firings
    assert sorted(f.run_id for f in firings) == sorted(r.id for r in verifies)
    assert all(r.state is RunState.SUCCEEDED and r.outcome == "verified" for r in verifies)
    owners = {f.daemon_instance for f in firings}
    assert owners == {r.daemon_instance for r in verifies} and len(owners) == 2
