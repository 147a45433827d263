"""``run_stats`` in SQL: the aggregates behind every metric, computed by the database.

Two statements in one snapshot, whatever the history size; what reaches Python is one row per
``(plan, target, kind, state, outcome)`` plus the few runs that finished last:

1. the totals, one full pass over the finished runs::

       SELECT plan, target, kind, state, outcome, COUNT(*), COUNT(micros), SUM(micros),
              SUM(bytes_total), MAX(finished_at),
              SUM(CASE WHEN micros <= :le_0 THEN 1 ELSE 0 END), …   -- one per bound
       FROM (SELECT …, <duration in µs, per dialect> AS micros
             FROM runs WHERE state NOT IN ('queued', 'running') OFFSET 0) AS finished_runs
       GROUP BY plan, target, kind, state, outcome

   The ``OFFSET 0`` is an optimisation fence: without it SQLite and PostgreSQL merge the
   subquery and compute the duration once per use of it (12 a row): 3-4x slower at 100k runs.
2. the latest runs: ``SELECT … FROM runs WHERE finished_at IN (:times)``, the times being each
   group's latest finish and latest success from (1); among those rows the larger id wins a
   tie. (``ROW_NUMBER() OVER (PARTITION BY … ORDER BY finished_at DESC, id DESC)`` sorts every
   finished run, 0.4-0.8 s more at 100k runs on each backend; a join back to a GROUP BY of the
   latest times ran as a nested loop on SQLite and MariaDB, seconds. The IN list: ~50 ms.)

See ``benchmarks/bench_run_stats.py`` for the figures, against aggregating in Python.

Durations are whole microseconds, computed exactly on every backend, so a duration equal to a
bucket bound lands in that bucket everywhere, and sums do not depend on the order the database
adds them in. SQLite's date functions round to milliseconds (and a ``julianday`` difference is
off by some microseconds more), so there the duration is whole seconds from ``julianday`` of
the stored text up to the seconds, plus the stored microsecond digits.

A final run without ``finished_at`` (the actions always set one; the column allows NULL) counts
in ``finished`` and ``outcome_counts``, and is never the latest attempt or success.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar

from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    Select,
    String,
    case,
    cast,
    extract,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.sql.expression import ColumnElement

from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import MYSQL_DIALECTS, runs
from bbr_orchestrator.core.models import ACTIVE_STATES, RunKind, RunState, RunStats

T = TypeVar("T")
GroupKey = tuple[str | None, str, str]

_ACTIVE: Final = tuple(sorted(s.value for s in ACTIVE_STATES))
_SUCCEEDED: Final = RunState.SUCCEEDED.value
_MICROS: Final = 1_000_000
#: Bounds beyond ±31 years are clamped (no run lasts that long; keeps thresholds in BIGINT).
_FAR: Final = 10**9
#: Bind parameters per statement: SQLite before 3.32 allows 999.
_MAX_PARAMS: Final = 900 if sqlite3.sqlite_version_info < (3, 32) else 30_000


def duration_micros(dialect: str) -> ColumnElement[int]:
    """``runs.finished_at - runs.started_at`` in whole microseconds (NULL when either is NULL)."""
    started, finished = runs.c.started_at, runs.c.finished_at
    if dialect == "postgresql":
        return cast(func.round(extract("epoch", finished - started) * _MICROS), BigInteger)
    if dialect in MYSQL_DIALECTS:
        micros = func.timestampdiff(literal_column("MICROSECOND"), started, finished)
        return cast(micros, BigInteger)
    if dialect == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): whole seconds (rounding removes the
        # float error of julianday) plus the difference of the microsecond digits.
        finished_text, started_text = type_coerce(finished, String), type_coerce(started, String)
        days = func.julianday(func.substr(finished_text, 1, 19)) - func.julianday(
            func.substr(started_text, 1, 19)
        )
        seconds = cast(func.round(days * 86_400), BigInteger)
        return seconds * _MICROS + (_sqlite_micros(finished_text) - _sqlite_micros(started_text))
    raise ValueError(f"run_stats: no duration expression for the {dialect} dialect")


def _sqlite_micros(text: ColumnElement[str]) -> ColumnElement[int]:
    """The microsecond digits of a stored timestamp (zero-padded: a shorter or missing fraction
    reads right too)."""
    return cast(func.substr(text.concat("000000"), 21, 6), BigInteger)


def micros_at_most(bound: float) -> int:
    """The largest whole number of microseconds ``m`` with ``m / 10**6 <= bound``: exactly the
    durations (``timedelta.total_seconds()``) that a ``<= bound`` bucket counts."""
    if math.isnan(bound):
        raise ValueError("run_stats: a duration bound must be a number, got nan")
    bound = min(max(bound, -_FAR), _FAR)
    micros = math.floor(bound * _MICROS)
    while micros / _MICROS > bound:
        micros -= 1
    while (micros + 1) / _MICROS <= bound:
        micros += 1
    return micros


def _label(row: Row[Any]) -> str:
    return str(row.outcome if row.outcome is not None else row.state)


@dataclass
class _Group:
    """One ``(plan, target, kind)`` while its rows are folded in."""

    plan: str | None
    target: str
    kind: RunKind
    buckets: list[int]
    finished: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    timed: int = 0
    micros: int = 0
    bytes_succeeded: int = 0
    last_unlock_failed_at: datetime | None = None
    latest_at: datetime | None = None
    success_at: datetime | None = None
    latest: tuple[str, str] | None = None
    """``(id, label)`` of the latest finished run (the larger id when finish times tie)."""
    success: tuple[str, int | None] | None = None
    """``(id, bytes_total)`` of the latest succeeded run."""

    def add_totals(self, row: Row[Any]) -> None:
        """A row of the totals: one ``(state, outcome)`` of the group."""
        label, count, last = _label(row), int(row.finished), row.last_finished
        self.finished += count
        self.outcomes[label] = self.outcomes.get(label, 0) + count
        self.timed += int(row.timed)
        self.micros += int(row.micros or 0)
        for i, n in enumerate(row[-len(self.buckets) :] if self.buckets else ()):
            self.buckets[i] += int(n)
        if row.state == _SUCCEEDED:
            self.bytes_succeeded += int(row.bytes_total or 0)
        if last is None:
            return
        self.latest_at = max(last, self.latest_at or last)
        if row.state == _SUCCEEDED:
            self.success_at = max(last, self.success_at or last)
        if "unlock-failed" in label:
            self.last_unlock_failed_at = max(last, self.last_unlock_failed_at or last)

    def add_latest(self, row: Row[Any]) -> None:
        """A row of ``latest_query``: a run that finished at one of the latest times (of this
        group or another)."""
        if row.finished_at == self.latest_at and (self.latest is None or row.id > self.latest[0]):
            self.latest = (row.id, _label(row))
        if (
            row.state == _SUCCEEDED
            and row.finished_at == self.success_at
            and (self.success is None or row.id > self.success[0])
        ):
            self.success = (row.id, None if row.bytes_total is None else int(row.bytes_total))

    def stats(self) -> RunStats:
        return RunStats(
            plan=self.plan,
            target=self.target,
            kind=self.kind,
            finished=self.finished,
            outcome_counts=tuple(sorted(self.outcomes.items())),
            last_attempt_at=self.latest_at if self.latest else None,
            last_outcome=self.latest[1] if self.latest else None,
            last_success_at=self.success_at if self.success else None,
            last_success_bytes=self.success[1] if self.success else None,
            bytes_succeeded_total=self.bytes_succeeded,
            last_unlock_failed_at=self.last_unlock_failed_at,
            duration_count=self.timed,
            duration_sum_seconds=self.micros / _MICROS,
            duration_buckets=tuple(self.buckets),
        )


class SqlRunStats:
    """The ``run_stats`` part of the ``Catalog`` port (``SqlCatalog`` delegates to it)."""

    def __init__(self, db: Database, max_params: int = _MAX_PARAMS) -> None:
        self._db = db
        self._max_params = max_params
        """Finish times per statement of the latest runs (more take several statements)."""

    def run_stats(self, duration_bounds: Sequence[float]) -> list[RunStats]:
        thresholds = [micros_at_most(float(b)) for b in duration_bounds]
        totals = totals_query(self._db.dialect, thresholds)

        def work(conn: Connection) -> list[_Group]:
            groups: dict[GroupKey, _Group] = {}
            for row in conn.execute(totals):
                key = (row.plan, row.target, row.kind)
                if (group := groups.get(key)) is None:
                    group = groups[key] = _Group(*key[:2], RunKind(key[2]), [0] * len(thresholds))
                group.add_totals(row)
            times = sorted(
                {t for g in groups.values() for t in (g.latest_at, g.success_at) if t is not None}
            )
            for start in range(0, len(times), self._max_params):
                for row in conn.execute(latest_query(times[start : start + self._max_params])):
                    if (group := groups.get((row.plan, row.target, row.kind))) is not None:
                        group.add_latest(row)
            return list(groups.values())

        return sorted((g.stats() for g in self._in_one_snapshot(work)), key=order_key)

    def _in_one_snapshot(self, work: Callable[[Connection], T]) -> T:
        """``work`` in one read transaction that sees one snapshot throughout. SQLite's
        transactions do; PostgreSQL's default (READ COMMITTED) takes one per statement, so the
        transaction asks for REPEATABLE READ (MySQL's default, asked for in case a server
        runs another)."""
        if self._db.dialect == "sqlite":
            return self._db.read(work)
        with self._db.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                return work(conn)


def order_key(stats: RunStats) -> tuple[str, str, str, bool]:
    """Result order: ``(plan or "", target, kind)`` (a None plan before an empty one)."""
    return (stats.plan or "", stats.target, stats.kind.value, stats.plan is not None)


def totals_query(dialect: str, thresholds: Sequence[int]) -> Select[Any]:
    """Counts, sums, latest finish and duration buckets per ``(plan, target, kind, state,
    outcome)``; the buckets are the last columns, in the thresholds' order."""
    finished_runs = (
        select(
            runs.c.plan,
            runs.c.target,
            runs.c.kind,
            runs.c.state,
            runs.c.outcome,
            runs.c.finished_at,
            runs.c.bytes_total,
            duration_micros(dialect).label("micros"),
        )
        .where(runs.c.state.not_in(_ACTIVE))
        .offset(0)  # the fence (see the module's docstring)
        .subquery("finished_runs")
    )
    r = finished_runs.c
    keys = (r.plan, r.target, r.kind, r.state, r.outcome)
    return select(
        *keys,
        func.count().label("finished"),
        func.count(r.micros).label("timed"),
        func.sum(r.micros).label("micros"),
        func.sum(r.bytes_total).label("bytes_total"),
        func.max(r.finished_at).label("last_finished"),
        *(
            func.sum(case((r.micros <= threshold, 1), else_=0)).label(f"le_{i}")
            for i, threshold in enumerate(thresholds)
        ),
    ).group_by(*keys)


def latest_query(times: Sequence[datetime]) -> Select[Any]:
    """The finished runs that finished at one of ``times`` (each group's latest finish and
    latest success): the latest attempt and the latest success of each group are among them."""
    return select(
        runs.c.plan,
        runs.c.target,
        runs.c.kind,
        runs.c.state,
        runs.c.outcome,
        runs.c.finished_at,
        runs.c.id,
        runs.c.bytes_total,
    ).where(runs.c.state.not_in(_ACTIVE), runs.c.finished_at.in_(times))
