"""Rows of the ``runs`` table to and from ``Run`` values, the filters of ``list_runs``, and the
small statements ``SqlCatalog`` builds its run methods from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, not_, or_, select
from sqlalchemy import update as update_statement
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement

from bbr_orchestrator.adapters.catalog.rows import Refused, aware
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import runs
from bbr_orchestrator.core.models import (
    Run,
    RunFilter,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.errors import RunNotFound


def run_conditions(run_filter: RunFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a ``RunFilter`` (AND-ed)."""
    f = run_filter
    conditions: list[ColumnElement[bool]] = []
    if f.plan is not None:
        conditions.append(runs.c.plan == f.plan)
    if f.target is not None:
        conditions.append(runs.c.target == f.target)
    if f.kind is not None:
        conditions.append(runs.c.kind == f.kind.value)
    if f.state is not None:
        conditions.append(runs.c.state == f.state.value)
    if f.states is not None:
        conditions.append(runs.c.state.in_(sorted(RunState(s).value for s in f.states)))
    if f.restore_point_id is not None:
        conditions.append(runs.c.restore_point_id == f.restore_point_id)
    if f.since is not None:
        conditions.append(runs.c.created_at >= aware("RunFilter.since", f.since))
    if f.until is not None:
        conditions.append(runs.c.created_at < aware("RunFilter.until", f.until))
    if f.deleted is not None:
        started = or_(runs.c.delete_reason.is_not(None), runs.c.deleted_at.is_not(None))
        conditions.append(started if f.deleted else not_(started))
    return conditions


def fetch_run(conn: Connection, run_id: str) -> Row[Any]:
    return conn.execute(select(runs).where(runs.c.id == run_id)).one()


def fetch_state(conn: Connection, run_id: str) -> str | None:
    state = conn.scalar(select(runs.c.state).where(runs.c.id == run_id))
    return None if state is None else str(state)


def to_run(row: Row[Any]) -> Run:
    return Run(
        id=row.id,
        kind=RunKind(row.kind),
        target=row.target,
        target_kind=TargetKind(row.target_kind),
        trigger=Trigger(row.trigger_type),
        triggered_by=row.triggered_by,
        state=RunState(row.state),
        created_at=row.created_at,
        plan=row.plan,
        daemon_instance=row.daemon_instance,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        exit_code=row.exit_code,
        outcome=row.outcome,
        error_summary=row.error_summary,
        bytes_total=row.bytes_total,
        log_object_key=row.log_object_key,
        restore_point_id=row.restore_point_id,
        step=row.step,
        subject_run_id=row.subject_run_id,
        # bool(): a driver may hand back the integer the column holds on SQLite and MySQL.
        restorable=None if row.restorable is None else bool(row.restorable),
        verified_at=row.verified_at,
        rto_seconds=row.rto_seconds,
        pinned_at=row.pinned_at,
        pinned_by=row.pinned_by,
        pin_reason=row.pin_reason,
        delete_reason=row.delete_reason,
        deleted_at=row.deleted_at,
    )


def insert_run(conn: Connection, row: Mapping[str, object]) -> None:
    try:
        conn.execute(insert(runs).values(dict(row)))
    except IntegrityError as exc:
        raise Refused(str(row["id"]), exc) from exc


def target_holder(conn: Connection, *, run_id: str, target: str | None) -> tuple[str, str | None]:
    """The target ``run_id`` wanted (its own when not given) and the run holding it now."""
    wanted = (
        target
        if target is not None
        else conn.scalar(select(runs.c.target).where(runs.c.id == run_id))
    )
    holder = conn.scalar(select(runs.c.id).where(runs.c.active_target == wanted))
    return str(wanted), holder


def changes(update: RunUpdate | None) -> dict[str, object]:
    """The fields an update sets (``None`` means "leave as is")."""
    return {k: v for k, v in asdict(update or RunUpdate()).items() if v is not None}


def stale(bound: datetime, active: Sequence[str]) -> list[ColumnElement[bool]]:
    """Active, and the last sign of life (heartbeat, else creation) older than ``bound``."""
    return [
        runs.c.state.in_(active),
        func.coalesce(runs.c.heartbeat_at, runs.c.created_at) < bound,
    ]


def update_and_read(
    db: Database, run_id: str, where: Sequence[ColumnElement[bool]], values: Mapping[str, Any]
) -> Run:
    """``UPDATE runs SET values WHERE id = run_id AND where``; the row after, hit or not (read
    back, not judged by the rowcount: MySQL counts a row written with the values it already
    held as unchanged); ``RunNotFound`` when there is no such run."""
    stmt = update_statement(runs).where(runs.c.id == run_id, *where).values(dict(values))

    def work(conn: Connection) -> Row[Any] | None:
        conn.execute(stmt)
        return conn.execute(select(runs).where(runs.c.id == run_id)).first()

    row = db.write(work)
    if row is None:
        raise RunNotFound(run_id)
    return to_run(row)
