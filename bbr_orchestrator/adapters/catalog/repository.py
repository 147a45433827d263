"""``SqlCatalog``: the ``Catalog`` port over SQLAlchemy Core (SQLite, PostgreSQL, MySQL/MariaDB)."""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any, Final, Self

from sqlalchemy import Connection, Row, Table, and_, case, func, select
from sqlalchemy import update as update_statement
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement

from bbr_orchestrator.adapters.catalog.artifacts_log import SqlArtifactsAndLog
from bbr_orchestrator.adapters.catalog.job_firings import SqlJobFirings
from bbr_orchestrator.adapters.catalog.restore_points import SqlRestorePoints, heartbeat_points
from bbr_orchestrator.adapters.catalog.retention_rows import SqlRetention
from bbr_orchestrator.adapters.catalog.rows import Refused, aware, checked, violates
from bbr_orchestrator.adapters.catalog.run_rows import (
    changes,
    fetch_run,
    fetch_state,
    insert_run,
    run_conditions,
    stale,
    target_holder,
    to_run,
    update_and_read,
)
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.stats import SqlRunStats
from bbr_orchestrator.adapters.catalog.tables import (
    ACTIVE_TARGET_KEY,
    restore_points,
    runs,
)
from bbr_orchestrator.core.models import (
    ACTIVE_STATES,
    TARGET_HOLDING_KINDS,
    Artifact,
    LogLine,
    LogStream,
    NewRestorePoint,
    NewRun,
    RestorePoint,
    RestorePointState,
    RestorePointUpdate,
    Run,
    RunFilter,
    RunState,
    RunStats,
    RunUpdate,
)
from bbr_orchestrator.errors import (
    RestorePointNotFound,
    RunConflict,
    RunNotFound,
    TargetBusy,
)

#: ``get_run`` accepts an id prefix of at least this many characters.
MIN_PREFIX_LENGTH: Final = 6
_ACTIVE: Final = tuple(sorted(s.value for s in ACTIVE_STATES))
_HOLDING: Final = tuple(sorted(k.value for k in TARGET_HOLDING_KINDS))
#: Characters of a run id (``new_run_id``); a "prefix" with anything else matches nothing.
_ID_CHARS: Final = frozenset(string.ascii_letters + string.digits + "-")


class SqlCatalog:
    """The run catalog in a SQL database. Build it with ``open_catalog``; close it when done.

    Safe to share between threads: every call checks out its own pooled connection and runs in
    its own short transaction.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._points = SqlRestorePoints(db)
        self._records = SqlArtifactsAndLog(db)
        self._stats = SqlRunStats(db)
        self._firings = SqlJobFirings(db)
        self._retention = SqlRetention(db)

    @property
    def url(self) -> str:
        """The catalog URL with the password masked."""
        return self._db.url

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- runs -------------------------------------------------------------------------------

    def create_run(self, run: NewRun) -> Run:
        """Insert; ``RunConflict`` for a known id, ``TargetBusy`` when a RUNNING run's target is
        held, ``RestorePointNotFound`` for an unknown ``restore_point_id``, ``RunNotFound``
        (naming it) for an unknown ``subject_run_id``."""
        row = self._run_row(run)

        def work(conn: Connection) -> Row[Any]:
            insert_run(conn, row)
            return fetch_run(conn, run.id)

        try:
            return to_run(self._db.write(work))
        except Refused as refused:
            raise self._explain_refused(refused, run) from refused.cause

    def get_run(self, run_id: str) -> Run:
        def work(conn: Connection) -> tuple[Row[Any] | None, int]:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
            if row is not None or len(run_id) < MIN_PREFIX_LENGTH or not set(run_id) <= _ID_CHARS:
                return row, int(row is not None)
            # Ids compare byte-wise on every backend (see tables.py), so the prefix is a key
            # range; substr keeps the match exact whatever the collation's pad rules.
            match = and_(
                runs.c.id >= run_id,
                runs.c.id < run_id[:-1] + chr(ord(run_id[-1]) + 1),
                func.substr(runs.c.id, 1, len(run_id)) == run_id,
            )
            found = conn.execute(select(runs).where(match).order_by(runs.c.id).limit(2)).all()
            if len(found) < 2:
                return (found[0] if found else None), len(found)
            return None, int(conn.scalar(select(func.count()).select_from(runs).where(match)) or 0)

        row, matches = self._db.read(work)
        if row is not None:
            return to_run(row)
        if matches > 1:
            raise RunNotFound(run_id, f"ambiguous prefix: {matches} runs match")
        if len(run_id) < MIN_PREFIX_LENGTH:
            raise RunNotFound(
                run_id, f"no such run (an id prefix needs at least {MIN_PREFIX_LENGTH} characters)"
            )
        raise RunNotFound(run_id)

    def list_runs(self, run_filter: RunFilter) -> list[Run]:
        if run_filter.limit < 1:
            raise ValueError(f"RunFilter.limit must be at least 1, got {run_filter.limit}")
        query = (
            select(runs)
            .where(*run_conditions(run_filter))
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(run_filter.limit)
        )
        return [to_run(row) for row in self._db.read(lambda conn: conn.execute(query).all())]

    def transition(
        self,
        run_id: str,
        expected: Sequence[RunState],
        new_state: RunState,
        update: RunUpdate | None = None,
        successor: NewRun | None = None,
    ) -> Run:
        """Compare-and-set; RUNNING claims the target (unless the kind holds none: a verify),
        any other state releases it.

        ``RunConflict`` when the run is not in ``expected``, ``TargetBusy`` when the target is
        held; ``successor`` is inserted in the same transaction (nothing is when either fails).
        """
        if not expected:
            raise ValueError("transition needs at least one expected state")
        values = self._checked(runs, {**changes(update), "state": new_state})
        # The kind is the row's, so the claim is decided in the same statement (no read first).
        values["active_target"] = (
            case((runs.c.kind.in_(_HOLDING), runs.c.target), else_=None)
            if new_state is RunState.RUNNING
            else None
        )
        allowed = [RunState(s).value for s in expected]
        where = [runs.c.id == run_id, runs.c.state.in_(allowed)]
        result = self._update_run(run_id, where, values, successor)
        if isinstance(result, Row):
            return to_run(result)
        if result is None:
            raise RunNotFound(run_id)
        raise RunConflict(run_id, allowed, result)

    def heartbeat(self, run_id: str, at: datetime) -> None:
        beat = {"heartbeat_at": aware("heartbeat.at", at)}
        result = self._update_run(run_id, [runs.c.id == run_id, runs.c.state.in_(_ACTIVE)], beat)
        if result is None:
            raise RunNotFound(run_id)
        if isinstance(result, str):
            raise RunConflict(run_id, _ACTIVE, result)

    def heartbeat_owner(self, daemon_instance: str, at: datetime) -> int:
        """One UPDATE of the owner's active runs, one of its active restore points; rows hit."""
        at = aware("heartbeat_owner.at", at)
        beat_runs = (
            update_statement(runs)
            .where(runs.c.daemon_instance == daemon_instance, runs.c.state.in_(_ACTIVE))
            .values(heartbeat_at=at)
        )

        def work(conn: Connection) -> int:
            touched = int(conn.execute(beat_runs).rowcount)
            return touched + heartbeat_points(conn, daemon_instance, at)

        return self._db.write(work)

    def stale_runs(self, heartbeat_before: datetime) -> list[Run]:
        """Active runs whose heartbeat (or creation) is older than the bound, oldest first."""
        query = (
            select(runs)
            .where(*stale(aware("stale_runs.heartbeat_before", heartbeat_before), _ACTIVE))
            .order_by(runs.c.created_at, runs.c.id)
        )
        return [to_run(row) for row in self._db.read(lambda conn: conn.execute(query).all())]

    def interrupt_run(
        self,
        run_id: str,
        heartbeat_before: datetime,
        update: RunUpdate,
        successor: NewRun | None = None,
    ) -> Run | None:
        """``INTERRUPTED`` (target released) if still active and stale, with ``successor`` in
        the same transaction; ``None`` when the run is gone, final, or alive again."""
        bound = aware("interrupt_run.heartbeat_before", heartbeat_before)
        values = self._checked(runs, {**changes(update), "state": RunState.INTERRUPTED})
        values["active_target"] = None
        result = self._update_run(
            run_id, [runs.c.id == run_id, *stale(bound, _ACTIVE)], values, successor
        )
        return to_run(result) if isinstance(result, Row) else None

    def record_verification(self, run_id: str, restorable: bool, at: datetime) -> Run:
        """Set ``restorable`` and ``verified_at`` whatever the run's state; ``RunNotFound``."""
        values = self._checked(runs, {"restorable": bool(restorable), "verified_at": at})
        return update_and_read(self._db, run_id, [], values)

    def run_stats(self, duration_bounds: Sequence[float]) -> list[RunStats]:
        """One aggregate query (see ``stats.py``)."""
        return self._stats.run_stats(duration_bounds)

    def _update_run(
        self,
        run_id: str,
        where: Sequence[ColumnElement[bool]],
        values: Mapping[str, object],
        successor: NewRun | None = None,
    ) -> Row[Any] | str | None:
        """``UPDATE runs SET … WHERE …`` (+ the successor's INSERT when it hit the row): the row
        after, or else the run's state (``None`` when there is no such run)."""
        follow = None if successor is None else self._run_row(successor)

        def work(conn: Connection) -> Row[Any] | str | None:
            stmt = update_statement(runs).where(*where).values(dict(values))
            try:
                hit = conn.execute(stmt).rowcount == 1
            except IntegrityError as exc:
                raise Refused(run_id, exc) from exc
            if not hit:
                return fetch_state(conn, run_id)
            if follow is not None:
                insert_run(conn, follow)
            return fetch_run(conn, run_id)

        try:
            return self._db.write(work)
        except Refused as refused:
            new = successor if successor is not None and refused.subject == successor.id else None
            raise self._explain_refused(refused, new) from refused.cause

    def _run_row(self, run: NewRun) -> dict[str, Any]:
        """The row of a new run; a RUNNING one starts now and holds its target (if its kind
        holds targets: not a verify)."""
        fields = asdict(run)
        fields["trigger_type"] = fields.pop("trigger")
        if run.state is RunState.RUNNING:
            if run.kind in TARGET_HOLDING_KINDS:
                fields["active_target"] = run.target
            fields["started_at"] = fields["heartbeat_at"] = run.created_at
        return self._checked(runs, fields)

    def _explain_refused(self, refused: Refused, new: NewRun | None) -> Exception:
        """The error for a refused INSERT of ``new`` (or UPDATE of a run, ``new`` None)."""
        exc, run_id = refused.cause, refused.subject
        if new is not None and (state := self._db.read(partial(fetch_state, run_id=run_id))):
            return RunConflict(run_id, ("absent",), state)
        if violates(exc, ACTIVE_TARGET_KEY, "runs.active_target"):
            target, holder = self._db.read(
                partial(target_holder, run_id=run_id, target=new.target if new else None)
            )
            return TargetBusy(run_id, target, holder)
        point = None if new is None else new.restore_point_id
        if point is not None and not self._points_exist(point):
            return RestorePointNotFound(point)
        subject = None if new is None else new.subject_run_id
        if subject is not None and not self._run_exists(subject):
            return RunNotFound(subject, f"no such run (the subject of run {run_id})")
        return self._db.error(exc, f"cannot record run {run_id}")

    def _points_exist(self, restore_point_id: str) -> bool:
        query = select(restore_points.c.id).where(restore_points.c.id == restore_point_id)
        return self._db.read(lambda conn: conn.scalar(query)) is not None

    def _run_exists(self, run_id: str) -> bool:
        return self._db.read(partial(fetch_state, run_id=run_id)) is not None

    # -- restore points (SqlRestorePoints) --------------------------------------------------

    def create_restore_point(self, point: NewRestorePoint) -> RestorePoint:
        return self._points.create_restore_point(point)

    def get_restore_point(self, restore_point_id: str) -> RestorePoint:
        return self._points.get_restore_point(restore_point_id)

    def list_restore_points(
        self,
        plan: str | None = None,
        states: Iterable[RestorePointState] | None = None,
        limit: int = 50,
    ) -> list[RestorePoint]:
        return self._points.list_restore_points(plan, states, limit)

    def transition_restore_point(
        self,
        restore_point_id: str,
        expected: Sequence[RestorePointState],
        new_state: RestorePointState,
        update: RestorePointUpdate | None = None,
    ) -> RestorePoint:
        return self._points.transition_restore_point(restore_point_id, expected, new_state, update)

    def stale_restore_points(self, heartbeat_before: datetime) -> list[RestorePoint]:
        return self._points.stale_restore_points(heartbeat_before)

    def last_scheduled_for(self, plan: str) -> datetime | None:
        return self._points.last_scheduled_for(plan)

    # -- job firings (SqlJobFirings) --------------------------------------------------------

    def claim_job_firing(
        self, job: str, scheduled_for: datetime, daemon_instance: str, claimed_at: datetime
    ) -> bool:
        return self._firings.claim_job_firing(job, scheduled_for, daemon_instance, claimed_at)

    def attach_job_run(self, job: str, scheduled_for: datetime, run_id: str) -> None:
        self._firings.attach_job_run(job, scheduled_for, run_id)

    def last_job_firing(self, job: str) -> datetime | None:
        return self._firings.last_job_firing(job)

    def count_job_firings(self, job: str, before: datetime) -> int:
        return self._firings.count_job_firings(job, before)

    # -- pins and deletions (SqlRetention) --------------------------------------------------

    def pin_run(self, run_id: str, by: str, reason: str | None, at: datetime) -> Run:
        return self._retention.pin_run(run_id, by, reason, at)

    def unpin_run(self, run_id: str) -> Run:
        return self._retention.unpin_run(run_id)

    def begin_deletion(self, run_id: str, reason: str) -> Run:
        return self._retention.begin_deletion(run_id, reason)

    def mark_deleted(self, run_id: str, at: datetime) -> Run:
        return self._retention.mark_deleted(run_id, at)

    def mark_restore_point_deleted(
        self, restore_point_id: str, reason: str, at: datetime
    ) -> RestorePoint:
        return self._retention.mark_restore_point_deleted(restore_point_id, reason, at)

    # -- artifacts and log (SqlArtifactsAndLog) ---------------------------------------------

    def add_artifacts(self, artifacts: Iterable[Artifact]) -> None:
        self._records.add_artifacts(artifacts)

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        return self._records.list_artifacts(run_id)

    def append_log(self, run_id: str, lines: Iterable[tuple[datetime, LogStream, str]]) -> int:
        return self._records.append_log(run_id, lines)

    def read_log(self, run_id: str, after_seq: int = 0) -> Iterator[LogLine]:
        return self._records.read_log(run_id, after_seq)

    def _checked(self, table: Table, values: Mapping[str, object]) -> dict[str, Any]:
        return checked(self._db.url, table, values)
