"""Restore points (plan firings) in SQL: the firing claim, compare-and-set, listing, staleness."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, func, insert, select
from sqlalchemy import update as update_statement
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement

from bbr_orchestrator.adapters.catalog.rows import aware, checked, violates
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import FIRING_KEY, restore_points
from bbr_orchestrator.core.models import (
    NewRestorePoint,
    RestorePoint,
    RestorePointState,
    RestorePointUpdate,
    Trigger,
)
from bbr_orchestrator.errors import FiringTaken, RestorePointNotFound, RunConflict

ACTIVE_POINT_STATES: Final = (RestorePointState.QUEUED.value, RestorePointState.RUNNING.value)

_table = restore_points


class SqlRestorePoints:
    """The restore-point half of the ``Catalog`` port (``SqlCatalog`` delegates to it)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create_restore_point(self, point: NewRestorePoint) -> RestorePoint:
        """Insert; ``RunConflict`` for a known id, ``FiringTaken`` for a claimed firing."""
        row = checked(self._db.url, _table, _point_row(point))

        def work(conn: Connection) -> Row[Any]:
            conn.execute(insert(_table).values(row))
            return _fetch(conn, point.id)

        try:
            return to_point(self._db.write(work))
        except IntegrityError as exc:
            raise self._explain_refused(point, exc) from exc

    def _explain_refused(self, point: NewRestorePoint, exc: IntegrityError) -> Exception:
        state = self._db.read(lambda conn: _fetch_state(conn, point.id))
        if state is not None:
            return RunConflict(point.id, ("absent",), state)
        if point.scheduled_for is not None and violates(exc, FIRING_KEY, "restore_points.plan"):
            holder = self._db.read(
                lambda conn: conn.scalar(
                    select(_table.c.id).where(
                        _table.c.plan == point.plan, _table.c.scheduled_for == point.scheduled_for
                    )
                )
            )
            return FiringTaken(point.plan, point.scheduled_for.isoformat(), holder)
        return self._db.error(exc, f"cannot record restore point {point.id}")

    def get_restore_point(self, restore_point_id: str) -> RestorePoint:
        row = self._db.read(
            lambda conn: conn.execute(select(_table).where(_table.c.id == restore_point_id)).first()
        )
        if row is None:
            raise RestorePointNotFound(restore_point_id)
        return to_point(row)

    def list_restore_points(
        self,
        plan: str | None = None,
        states: Iterable[RestorePointState] | None = None,
        limit: int = 50,
    ) -> list[RestorePoint]:
        """Newest first (``created_at``, then id), at most ``limit``."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        conditions: list[ColumnElement[bool]] = []
        if plan is not None:
            conditions.append(_table.c.plan == plan)
        if states is not None:
            conditions.append(_table.c.state.in_([RestorePointState(s).value for s in states]))
        query = (
            select(_table)
            .where(*conditions)
            .order_by(_table.c.created_at.desc(), _table.c.id.desc())
            .limit(limit)
        )
        return [to_point(row) for row in self._db.read(lambda conn: conn.execute(query).all())]

    def transition_restore_point(
        self,
        restore_point_id: str,
        expected: Sequence[RestorePointState],
        new_state: RestorePointState,
        update: RestorePointUpdate | None = None,
    ) -> RestorePoint:
        """``UPDATE … WHERE id = ? AND state IN (expected)``; ``RunConflict`` when it loses."""
        if not expected:
            raise ValueError("transition_restore_point needs at least one expected state")
        changes = {k: v for k, v in asdict(update or RestorePointUpdate()).items() if v is not None}
        values = checked(self._db.url, _table, {**changes, "state": new_state})
        allowed = [RestorePointState(s).value for s in expected]

        def work(conn: Connection) -> Row[Any] | str | None:
            stmt = (
                update_statement(_table)
                .where(_table.c.id == restore_point_id, _table.c.state.in_(allowed))
                .values(values)
            )
            if conn.execute(stmt).rowcount == 1:
                return _fetch(conn, restore_point_id)
            return _fetch_state(conn, restore_point_id)

        result = self._db.write(work)
        if isinstance(result, Row):
            return to_point(result)
        if result is None:
            raise RestorePointNotFound(restore_point_id)
        raise RunConflict(restore_point_id, allowed, result)

    def stale_restore_points(self, heartbeat_before: datetime) -> list[RestorePoint]:
        """Active points whose heartbeat (or creation) is older than the bound, oldest first."""
        bound = aware("stale_restore_points.heartbeat_before", heartbeat_before)
        query = (
            select(_table)
            .where(
                _table.c.state.in_(ACTIVE_POINT_STATES),
                func.coalesce(_table.c.heartbeat_at, _table.c.created_at) < bound,
            )
            .order_by(_table.c.created_at, _table.c.id)
        )
        return [to_point(row) for row in self._db.read(lambda conn: conn.execute(query).all())]

    def last_scheduled_for(self, plan: str) -> datetime | None:
        query = select(func.max(_table.c.scheduled_for)).where(_table.c.plan == plan)
        latest: datetime | None = self._db.read(lambda conn: conn.scalar(query))
        return latest


def heartbeat_points(conn: Connection, daemon_instance: str, at: datetime) -> int:
    """Stamp ``heartbeat_at`` on the owner's active restore points; returns how many."""
    stmt = (
        update_statement(_table)
        .where(
            _table.c.daemon_instance == daemon_instance,
            _table.c.state.in_(ACTIVE_POINT_STATES),
        )
        .values(heartbeat_at=at)
    )
    return int(conn.execute(stmt).rowcount)


def _point_row(point: NewRestorePoint) -> dict[str, Any]:
    fields = asdict(point)
    fields["trigger_type"] = fields.pop("trigger")
    if point.state is RestorePointState.RUNNING:
        fields["started_at"] = fields["heartbeat_at"] = point.created_at
    return fields


def _fetch(conn: Connection, restore_point_id: str) -> Row[Any]:
    return conn.execute(select(_table).where(_table.c.id == restore_point_id)).one()


def _fetch_state(conn: Connection, restore_point_id: str) -> str | None:
    state = conn.scalar(select(_table.c.state).where(_table.c.id == restore_point_id))
    return None if state is None else str(state)


def to_point(row: Row[Any]) -> RestorePoint:
    return RestorePoint(
        id=row.id,
        plan=row.plan,
        trigger=Trigger(row.trigger_type),
        triggered_by=row.triggered_by,
        state=RestorePointState(row.state),
        created_at=row.created_at,
        scheduled_for=row.scheduled_for,
        daemon_instance=row.daemon_instance,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        summary=row.summary,
        deleted_at=row.deleted_at,
        delete_reason=row.delete_reason,
    )
