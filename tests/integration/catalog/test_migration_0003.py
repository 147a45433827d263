"""Migration 0003 (verification: runs.subject_run_id, restorable, verified_at) on catalogs holding
data: rows and claims survive the upgrade, the downgrade gives back 0002's schema, and SQLite's
table rebuild never cascades deletes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import func, insert, select

from bbr_orchestrator.adapters.catalog import (
    current_revision,
    downgrade,
    head_revision,
    open_catalog,
    upgrade,
)
from bbr_orchestrator.adapters.catalog.migrate import alembic_config
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import artifacts, restore_points, run_log, runs
from bbr_orchestrator.core.models import (
    NewRun,
    Run,
    RunKind,
    RunState,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.errors import TargetBusy
from tests.integration.catalog.schema_shape import describe_schema

CreateDatabase = Callable[[str], str]
AT = datetime(2026, 3, 1, 3, 0, 0, 250000, tzinfo=UTC)
SHA = "cd" * 32
POINT_ID = "20260301T030000Z-00000001"
BACKUP_ID = "20260301T030000Z-0123abcd"
RUNNING_ID = "20260301T040000Z-99999999"
BACKUP = Run(
    id=BACKUP_ID,
    kind=RunKind.BACKUP,
    target="cf",
    target_kind=TargetKind.DEPLOYMENT,
    trigger=Trigger.SCHEDULE,
    triggered_by="daemon:jumpbox-1",
    state=RunState.SUCCEEDED,
    created_at=AT,
    plan="nightly-cf",
    daemon_instance="jumpbox-1",
    started_at=AT + timedelta(seconds=1),
    finished_at=AT + timedelta(minutes=5),
    heartbeat_at=AT + timedelta(minutes=4),
    exit_code=0,
    outcome="succeeded",
    bytes_total=987654321,
    log_object_key="runs/cf/x/log.txt",
    restore_point_id=POINT_ID,
    step=1,
)


def _write_0002_rows(url: str) -> None:
    """A restore point; a finished backup (its step 1) with two artifacts and three log lines;
    a RUNNING backup holding target ``cf`` — as 0002 stores them."""
    fields = {
        f.name: getattr(BACKUP, f.name)
        for f in dataclasses.fields(BACKUP)
        if f.name not in ("kind", "target_kind", "trigger", "state")
        and f.name not in ("subject_run_id", "restorable", "verified_at", "rto_seconds")
        and f.name not in ("pinned_at", "pinned_by", "pin_reason", "delete_reason", "deleted_at")
    }
    enums = {"kind": "backup", "target_kind": "deployment", "trigger_type": "schedule"}
    running = {
        **fields,
        **enums,
        "id": RUNNING_ID,
        "state": "running",
        "finished_at": None,
        "active_target": "cf",
        "restore_point_id": None,
        "step": None,
    }
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            conn.execute(
                insert(restore_points).values(
                    id=POINT_ID,
                    plan="nightly-cf",
                    trigger_type="schedule",
                    triggered_by="daemon:jumpbox-1",
                    state="complete",
                    created_at=AT,
                    scheduled_for=AT.replace(second=0, microsecond=0),
                )
            )
            conn.execute(insert(runs).values(**fields, **enums, state="succeeded"))
            conn.execute(insert(runs).values(running))
            conn.execute(
                insert(artifacts),
                [
                    {
                        "run_id": BACKUP_ID,
                        "object_key": key,
                        "size_bytes": 10,
                        "sha256": SHA,
                        "member_checksums": 2,
                    }
                    for key in ("k/a.tar", "k/metadata")
                ],
            )
            conn.execute(
                insert(run_log),
                [
                    {"run_id": BACKUP_ID, "seq": i, "at": AT, "stream": "stdout", "text": f"l{i}"}
                    for i in (1, 2, 3)
                ],
            )
    finally:
        db.dispose()


def _counts(url: str) -> tuple[int, int, int, int]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                int(conn.scalar(select(func.count()).select_from(t)) or 0)
                for t in (restore_points, runs, artifacts, run_log)
            )
    finally:
        db.dispose()


def _verify(run_id: str, state: RunState = RunState.RUNNING) -> NewRun:
    return NewRun(
        id=run_id,
        kind=RunKind.VERIFY,
        target="cf",
        target_kind=TargetKind.DEPLOYMENT,
        trigger=Trigger.OPERATOR,
        triggered_by="alice",
        created_at=AT + timedelta(hours=2),
        state=state,
        subject_run_id=BACKUP_ID,
    )


def test_rows_written_at_0002_survive_the_upgrade(empty_url: str) -> None:
    """Restore points, runs (unverified, without a subject), artifacts and log lines of a 0002
    catalog read back unchanged at head."""
    upgrade(empty_url, "0002")
    _write_0002_rows(empty_url)

    assert upgrade(empty_url) == ("0002", head_revision())

    with open_catalog(empty_url) as catalog:
        assert catalog.get_run(BACKUP_ID) == BACKUP
        assert catalog.get_restore_point(POINT_ID).plan == "nightly-cf"
        assert [a.object_key for a in catalog.list_artifacts(BACKUP_ID)] == [
            "k/a.tar",
            "k/metadata",
        ]
        assert [line.text for line in catalog.read_log(BACKUP_ID)] == ["l1", "l2", "l3"]
    assert _counts(empty_url) == (1, 2, 2, 3)


def test_upgraded_claims_still_hold_and_new_fields_work(empty_url: str) -> None:
    """After the upgrade the old RUNNING backup still holds its target, a verify of it runs
    beside it, and the new fields are written and read."""
    upgrade(empty_url, "0002")
    _write_0002_rows(empty_url)
    upgrade(empty_url)

    with open_catalog(empty_url) as catalog:
        backup = dataclasses.replace(
            _verify("20260301T050000Z-0000000b"), kind=RunKind.BACKUP, subject_run_id=None
        )
        with pytest.raises(TargetBusy) as caught:
            catalog.create_run(backup)
        assert caught.value.holder == RUNNING_ID

        verify = catalog.create_run(_verify("20260301T050000Z-0000000c"))
        assert (verify.state, verify.subject_run_id) == (RunState.RUNNING, BACKUP_ID)
        at = AT + timedelta(hours=3)
        assert catalog.record_verification(BACKUP_ID, False, at) == dataclasses.replace(
            BACKUP, restorable=False, verified_at=at
        )


def test_downgrade_to_0002_gives_back_its_schema_and_rows(
    create_database: CreateDatabase, backend: str
) -> None:
    """Head -> 0002 leaves exactly 0002's schema and every row (a verify with a subject and a
    verified backup included), and upgrades again."""
    reference = create_database(backend)
    upgrade(reference, "0002")
    url = create_database(backend)
    upgrade(url, "0002")
    _write_0002_rows(url)
    upgrade(url)
    with open_catalog(url) as catalog:
        catalog.create_run(_verify("20260301T050000Z-0000000c", RunState.SUCCEEDED))
        catalog.record_verification(BACKUP_ID, True, AT + timedelta(hours=3))

    assert downgrade(url, "0002") == (head_revision(), "0002")

    assert describe_schema(url) == describe_schema(reference)
    assert _counts(url) == (1, 3, 2, 3)
    assert upgrade(url) == ("0002", head_revision())
    assert _counts(url) == (1, 3, 2, 3)
    with open_catalog(url) as catalog:
        assert catalog.get_run(BACKUP_ID) == BACKUP
        assert catalog.get_run("20260301T050000Z-0000000c").subject_run_id is None


def test_sqlite_rebuild_with_foreign_keys_on_refuses_instead_of_deleting(
    create_database: CreateDatabase,
) -> None:
    """Alembic run from 0002 with SQLite foreign keys on would cascade-delete artifacts and log
    lines in the runs rebuild: 0003 refuses, and the data and the revision stay as they were."""
    url = create_database("sqlite")
    upgrade(url, "0002")
    _write_0002_rows(url)
    db = Database(url)  # its connections enforce foreign keys
    try:
        with db.engine.connect() as conn, pytest.raises(RuntimeError, match="foreign keys"):
            command.upgrade(alembic_config(conn), "head")
    finally:
        db.dispose()

    assert current_revision(url) == "0002"
    assert _counts(url) == (1, 2, 2, 3)
