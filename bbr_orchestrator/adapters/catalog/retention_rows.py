"""Pins and deletion marks in SQL: every change is one conditional UPDATE, then the row is read
back in the same transaction to tell what happened (not the rowcount: MySQL may count a row
written with the values it already held as untouched).

The conditions make the two sides exclusive whatever the timing: a pin is set only while the
backup's deletion has not begun, and a deletion begins only while the backup is not pinned, so
an operator's pin and a prune racing for the same backup cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, select
from sqlalchemy import update as update_statement
from sqlalchemy.sql.expression import ColumnElement

from bbr_orchestrator.adapters.catalog.restore_points import ACTIVE_POINT_STATES, to_point
from bbr_orchestrator.adapters.catalog.rows import aware, checked
from bbr_orchestrator.adapters.catalog.run_rows import update_and_read
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import restore_points, runs
from bbr_orchestrator.core.models import RestorePoint, RestorePointState, Run
from bbr_orchestrator.core.retention import DeletionConflict
from bbr_orchestrator.errors import RestorePointNotFound, RunConflict

_NOT_STARTED: Final = (runs.c.delete_reason.is_(None), runs.c.deleted_at.is_(None))
_FINAL_POINT_STATES: Final = tuple(
    s.value for s in RestorePointState if s.value not in ACTIVE_POINT_STATES
)


class SqlRetention:
    """The pin and deletion half of the ``Catalog`` port (``SqlCatalog`` delegates to it)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def pin_run(self, run_id: str, by: str, reason: str | None, at: datetime) -> Run:
        """Pin (again: who, why and when are replaced) unless its deletion has begun."""
        values = checked(
            self._db.url, runs, {"pinned_at": at, "pinned_by": by, "pin_reason": reason}
        )
        run = self._update(run_id, [*_NOT_STARTED], values)
        if run.deletion_started:
            raise DeletionConflict(
                run_id, f"cannot pin: retention is deleting it ({run.delete_reason})"
            )
        return run

    def unpin_run(self, run_id: str) -> Run:
        """Clear the pin (a run not pinned is returned as it is)."""
        return self._update(run_id, [], {"pinned_at": None, "pinned_by": None, "pin_reason": None})

    def begin_deletion(self, run_id: str, reason: str) -> Run:
        """Record why the run is deleted, unless pinned; a run whose deletion already began
        is returned as it is (its first reason kept)."""
        if not reason:
            raise ValueError("begin_deletion needs a reason")
        values = checked(self._db.url, runs, {"delete_reason": reason})
        run = self._update(run_id, [runs.c.pinned_at.is_(None), *_NOT_STARTED], values)
        if not run.deletion_started and run.pinned:
            raise DeletionConflict(run_id, f"cannot delete: pinned by {run.pinned_by}")
        return run

    def mark_deleted(self, run_id: str, at: datetime) -> Run:
        """Record that the last object is gone; a run already marked keeps its first time.
        ``DeletionConflict`` when its deletion was never begun."""
        values = {"deleted_at": aware("mark_deleted.at", at)}
        where = [runs.c.delete_reason.is_not(None), runs.c.deleted_at.is_(None)]
        run = self._update(run_id, where, values)
        if run.delete_reason is None:
            raise DeletionConflict(run_id, "cannot mark deleted: its deletion was never begun")
        return run

    def mark_restore_point_deleted(
        self, restore_point_id: str, reason: str, at: datetime
    ) -> RestorePoint:
        """Record that the point's stored objects are gone (a point already marked keeps its
        first mark); ``RunConflict`` when the point is still active."""
        table = restore_points
        values = checked(self._db.url, table, {"deleted_at": at, "delete_reason": reason})
        stmt = (
            update_statement(table)
            .where(
                table.c.id == restore_point_id,
                table.c.deleted_at.is_(None),
                table.c.state.in_(_FINAL_POINT_STATES),
            )
            .values(values)
        )

        def work(conn: Connection) -> Row[Any] | None:
            conn.execute(stmt)
            return conn.execute(select(table).where(table.c.id == restore_point_id)).first()

        row = self._db.write(work)
        if row is None:
            raise RestorePointNotFound(restore_point_id)
        point = to_point(row)
        if point.deleted_at is None:
            raise RunConflict(restore_point_id, _FINAL_POINT_STATES, point.state.value)
        return point

    def _update(
        self, run_id: str, where: Sequence[ColumnElement[bool]], values: dict[str, Any]
    ) -> Run:
        return update_and_read(self._db, run_id, where, values)
