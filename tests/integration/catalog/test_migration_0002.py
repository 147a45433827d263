"""Migration 0002 (claims and restore points) on catalogs holding data: rows survive the upgrade,
the downgrade gives back 0001's schema, and SQLite's table rebuild never cascades deletes."""

from __future__ import annotations

import secrets
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
from bbr_orchestrator.adapters.catalog.tables import artifacts, run_log, runs
from bbr_orchestrator.core.models import (
    Artifact,
    NewRun,
    Run,
    RunFilter,
    RunKind,
    RunState,
    TargetKind,
    Trigger,
    new_run_id,
)
from tests.integration.catalog.schema_shape import describe_schema

CreateDatabase = Callable[[str], str]
AT = datetime(2026, 2, 1, 3, 0, 0, 250000, tzinfo=UTC)
SHA = "ab" * 32
RUN_ID = "20260201T030000Z-0123abcd"
OLD_RUN = Run(
    id=RUN_ID,
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
    error_summary=None,
    bytes_total=123456789,
    log_object_key="runs/cf/x/log.txt",
)


def _write_0001_rows(url: str) -> None:
    """A finished run with two artifacts and three log lines, plus a RUNNING run, as 0001 had."""
    fields = {
        name: getattr(OLD_RUN, name)
        for name in (
            "id",
            "target",
            "plan",
            "triggered_by",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "exit_code",
            "outcome",
            "bytes_total",
            "daemon_instance",
            "log_object_key",
        )
    }
    enums = {"kind": "backup", "target_kind": "deployment", "trigger_type": "schedule"}
    running = {**fields, **enums, "id": "20260201T040000Z-99999999", "state": "running"}
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            conn.execute(insert(runs).values(**fields, **enums, state="succeeded"))
            conn.execute(insert(runs).values(running))
            conn.execute(
                insert(artifacts),
                [
                    {
                        "run_id": RUN_ID,
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
                    {"run_id": RUN_ID, "seq": i, "at": AT, "stream": "stdout", "text": f"line {i}"}
                    for i in (1, 2, 3)
                ],
            )
    finally:
        db.dispose()


def _counts(url: str) -> tuple[int, int, int]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return tuple(  # type: ignore[return-value]
                int(conn.scalar(select(func.count()).select_from(t)) or 0)
                for t in (runs, artifacts, run_log)
            )
    finally:
        db.dispose()


def test_rows_written_at_0001_survive_the_upgrade(empty_url: str) -> None:
    """Runs, artifacts and log lines of a 0001 catalog read back unchanged at head."""
    upgrade(empty_url, "0001")
    _write_0001_rows(empty_url)

    assert upgrade(empty_url) == ("0001", head_revision())

    with open_catalog(empty_url) as catalog:
        assert catalog.get_run(RUN_ID) == OLD_RUN
        assert [a.object_key for a in catalog.list_artifacts(RUN_ID)] == ["k/a.tar", "k/metadata"]
        assert catalog.list_artifacts(RUN_ID)[0] == Artifact(RUN_ID, "k/a.tar", 10, SHA, 2)
        assert [(line.seq, line.text) for line in catalog.read_log(RUN_ID)] == [
            (1, "line 1"),
            (2, "line 2"),
            (3, "line 3"),
        ]
        assert len(catalog.list_runs(RunFilter())) == 2
        assert catalog.list_restore_points() == []


def test_upgraded_rows_take_part_in_claims(empty_url: str) -> None:
    """After the upgrade an old RUNNING run holds no target (it is stale: the reaper's), and
    runs of the new kinds are accepted."""
    upgrade(empty_url, "0001")
    _write_0001_rows(empty_url)
    upgrade(empty_url)

    with open_catalog(empty_url) as catalog:
        stale = catalog.stale_runs(AT + timedelta(days=1))
        assert [r.id for r in stale] == ["20260201T040000Z-99999999"]
        for target, kind, target_kind in (
            ("cf", RunKind.BACKUP, TargetKind.DEPLOYMENT),
            ("opsman", RunKind.OPSMAN_EXPORT, TargetKind.OPSMAN),
        ):
            new = NewRun(
                id=new_run_id(AT, secrets.token_hex(4)),
                kind=kind,
                target=target,
                target_kind=target_kind,
                trigger=Trigger.OPERATOR,
                triggered_by="alice",
                created_at=AT,
                state=RunState.RUNNING,
            )
            assert catalog.create_run(new).state is RunState.RUNNING


def test_downgrade_to_0001_gives_back_its_schema_and_rows(
    create_database: CreateDatabase, backend: str
) -> None:
    """Head -> 0001 leaves exactly 0001's schema, keeps 0001-shaped rows, and upgrades again."""
    reference = create_database(backend)
    upgrade(reference, "0001")
    url = create_database(backend)
    upgrade(url, "0001")
    _write_0001_rows(url)
    upgrade(url)

    assert downgrade(url, "0001") == (head_revision(), "0001")

    assert describe_schema(url) == describe_schema(reference)
    assert _counts(url) == (2, 2, 3)
    assert upgrade(url) == ("0001", head_revision())
    assert _counts(url) == (2, 2, 3)


def test_sqlite_rebuild_with_foreign_keys_on_refuses_instead_of_deleting(
    create_database: CreateDatabase,
) -> None:
    """Alembic run with SQLite foreign keys on would cascade-delete artifacts and log lines in
    the runs rebuild: the migration refuses, and the data and the revision stay as they were."""
    url = create_database("sqlite")
    upgrade(url, "0001")
    _write_0001_rows(url)
    db = Database(url)  # its connections enforce foreign keys
    try:
        with db.engine.connect() as conn, pytest.raises(RuntimeError, match="foreign keys"):
            command.upgrade(alembic_config(conn), "head")
    finally:
        db.dispose()

    assert current_revision(url) == "0001"
    assert _counts(url) == (2, 2, 3)
