"""``SqlCatalog``: the ``Catalog`` port over SQLAlchemy Core (SQLite, PostgreSQL, MySQL/MariaDB)."""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from enum import StrEnum
from functools import partial
from types import TracebackType
from typing import Any, Final, Self

from sqlalchemy import Connection, Row, Table, Text, and_, func, insert, select
from sqlalchemy import update as update_statement
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.types import String, TypeEngine

from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import MAX_LOG_LINE_BYTES, artifacts, run_log, runs
from bbr_orchestrator.core.models import (
    ACTIVE_STATES,
    Artifact,
    LogLine,
    LogStream,
    NewRun,
    Run,
    RunFilter,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.errors import ArtifactConflict, CatalogError, RunConflict, RunNotFound

#: ``get_run`` accepts an id prefix of at least this many characters.
MIN_PREFIX_LENGTH: Final = 6
#: Rows per INSERT batch (append_log, add_artifacts) and per page read (read_log).
BATCH_SIZE: Final = 500
_ACTIVE: Final = tuple(sorted(s.value for s in ACTIVE_STATES))
_SHA256_HEX: Final = frozenset("0123456789abcdef")
#: Characters of a run id (``new_run_id``); a "prefix" with anything else matches nothing.
_ID_CHARS: Final = frozenset(string.ascii_letters + string.digits + "-")


class SqlCatalog:
    """The run catalog in a SQL database. Build it with ``open_catalog``; close it when done.

    Safe to share between threads: every call checks out its own pooled connection and runs in
    its own short transaction.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

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
        fields = asdict(run)
        fields["trigger_type"] = fields.pop("trigger")
        row = self._checked(runs, fields)

        def work(conn: Connection) -> Row[Any]:
            conn.execute(insert(runs).values(row))
            return _fetch_run(conn, run.id)

        try:
            return _to_run(self._db.write(work))
        except IntegrityError as exc:
            existing = self._db.read(partial(_fetch_state, run_id=run.id))
            if existing is None:
                raise self._db.error(exc, f"cannot record run {run.id}") from exc
            raise RunConflict(run.id, ("absent",), existing) from exc

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
            return _to_run(row)
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
        conditions: list[ColumnElement[bool]] = []
        if run_filter.plan is not None:
            conditions.append(runs.c.plan == run_filter.plan)
        if run_filter.target is not None:
            conditions.append(runs.c.target == run_filter.target)
        if run_filter.kind is not None:
            conditions.append(runs.c.kind == run_filter.kind.value)
        if run_filter.state is not None:
            conditions.append(runs.c.state == run_filter.state.value)
        if run_filter.since is not None:
            conditions.append(runs.c.created_at >= _aware("RunFilter.since", run_filter.since))
        if run_filter.until is not None:
            conditions.append(runs.c.created_at < _aware("RunFilter.until", run_filter.until))
        query = (
            select(runs)
            .where(*conditions)
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(run_filter.limit)
        )
        return [_to_run(row) for row in self._db.read(lambda conn: conn.execute(query).all())]

    def transition(
        self,
        run_id: str,
        expected: Sequence[RunState],
        new_state: RunState,
        update: RunUpdate | None = None,
    ) -> Run:
        if not expected:
            raise ValueError("transition needs at least one expected state")
        changes = {k: v for k, v in asdict(update or RunUpdate()).items() if v is not None}
        values = self._checked(runs, {**changes, "state": new_state})
        allowed = [RunState(s).value for s in expected]
        return _to_run(self._compare_and_set(run_id, allowed, values))

    def heartbeat(self, run_id: str, at: datetime) -> None:
        self._compare_and_set(run_id, _ACTIVE, {"heartbeat_at": _aware("heartbeat.at", at)})

    def _compare_and_set(
        self, run_id: str, allowed: Sequence[str], values: Mapping[str, object]
    ) -> Row[Any]:
        """``UPDATE runs SET … WHERE id = ? AND state IN (…)``; the row after, or why not."""

        def work(conn: Connection) -> Row[Any] | str | None:
            stmt = (
                update_statement(runs)
                .where(runs.c.id == run_id, runs.c.state.in_(allowed))
                .values(dict(values))
            )
            if conn.execute(stmt).rowcount == 1:
                return _fetch_run(conn, run_id)
            return _fetch_state(conn, run_id)

        result = self._db.write(work)
        if isinstance(result, Row):
            return result
        if result is None:
            raise RunNotFound(run_id)
        raise RunConflict(run_id, allowed, result)

    # -- artifacts --------------------------------------------------------------------------

    def add_artifacts(self, artifacts_: Iterable[Artifact]) -> None:
        rows = [self._checked(artifacts, _artifact_row(a)) for a in artifacts_]
        if not rows:
            return

        def work(conn: Connection) -> None:
            for start in range(0, len(rows), BATCH_SIZE):
                conn.execute(insert(artifacts), rows[start : start + BATCH_SIZE])

        try:
            self._db.write(work)
        except IntegrityError as exc:
            raise self._explain_artifact_conflict(rows, exc) from exc

    def _explain_artifact_conflict(
        self, rows: list[dict[str, Any]], exc: IntegrityError
    ) -> Exception:
        wanted = [(str(r["run_id"]), str(r["object_key"])) for r in rows]
        run_ids = sorted({run_id for run_id, _ in wanted})

        def work(conn: Connection) -> tuple[set[str], set[tuple[str, str]]]:
            known = set(conn.scalars(select(runs.c.id).where(runs.c.id.in_(run_ids))))
            query = select(artifacts.c.run_id, artifacts.c.object_key).where(
                artifacts.c.run_id.in_(run_ids)
            )
            return known, {(r.run_id, r.object_key) for r in conn.execute(query)}

        known, stored = self._db.read(work)
        for run_id in run_ids:
            if run_id not in known:
                return RunNotFound(run_id)
        repeated = [key for key, n in Counter(wanted).items() if n > 1 or key in stored]
        if repeated:
            return ArtifactConflict(*repeated[0])
        return self._db.error(exc, "cannot record artifacts")

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        query = (
            select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.object_key)
        )
        rows = self._db.read(lambda conn: conn.execute(query).all())
        return [
            Artifact(
                run_id=r.run_id,
                object_key=r.object_key,
                size_bytes=r.size_bytes,
                sha256=r.sha256,
                member_checksums=r.member_checksums,
            )
            for r in rows
        ]

    # -- log --------------------------------------------------------------------------------

    def append_log(self, run_id: str, lines: Iterable[tuple[datetime, LogStream, str]]) -> int:
        """Append in one transaction; ``seq`` continues from the run's last line.

        One writer per run: a concurrent writer of the same run loses with a ``CatalogError``.
        The lines are held in memory for the transaction, so callers pass bounded batches.
        """
        entries = [
            (_aware("log line at", at), LogStream(stream).value, clip_log_text(line))
            for at, stream, line in lines
        ]
        if not entries:
            return 0

        def work(conn: Connection) -> int:
            last = conn.scalar(select(func.max(run_log.c.seq)).where(run_log.c.run_id == run_id))
            seq = int(last or 0)
            for start in range(0, len(entries), BATCH_SIZE):
                batch = entries[start : start + BATCH_SIZE]
                rows = [
                    {"run_id": run_id, "seq": seq + i, "at": at, "stream": stream, "text": text}
                    for i, (at, stream, text) in enumerate(batch, start=1)
                ]
                conn.execute(insert(run_log), rows)
                seq += len(batch)
            return len(entries)

        try:
            return self._db.write(work)
        except IntegrityError as exc:
            if self._db.read(partial(_fetch_state, run_id=run_id)) is None:
                raise RunNotFound(run_id) from exc
            raise self._db.error(exc, f"concurrent append to the log of run {run_id}") from exc

    def read_log(self, run_id: str, after_seq: int = 0) -> Iterator[LogLine]:
        """Lines in ``seq`` order, fetched in pages (no cursor is held between pages)."""
        last = after_seq
        while True:
            page = self._db.read(partial(_log_page, run_id=run_id, after_seq=last))
            first = last == after_seq
            if first and not page and self._db.read(partial(_fetch_state, run_id=run_id)) is None:
                raise RunNotFound(run_id)
            yield from page
            if len(page) < BATCH_SIZE:
                return
            last = page[-1].seq

    # -- helpers ----------------------------------------------------------------------------

    def _checked(self, table: Table, values: Mapping[str, object]) -> dict[str, Any]:
        """Values ready to bind: enums as strings, datetimes checked aware, strings fit."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            column = table.c[name]
            if isinstance(value, datetime):
                value = _aware(f"{table.name}.{name}", value)
            elif isinstance(value, str):
                if isinstance(value, StrEnum):
                    value = value.value
                if isinstance(column.type, Text):
                    value = value.replace("\x00", "\ufffd")
                elif len(value) > (limit := _max_length(column.type, len(value))):
                    raise CatalogError(
                        self._db.url,
                        f"{table.name}.{name} is {len(value)} characters long; "
                        f"the catalog holds at most {limit}",
                    )
            out[name] = value
        return out


def clip_log_text(text: str) -> str:
    """A log line as stored: NUL replaced, invalid code points replaced, cut at 64 KiB (UTF-8)."""
    data = text.replace("\x00", "\ufffd").encode("utf-8", "replace")
    if len(data) > MAX_LOG_LINE_BYTES:
        marker = f" [… line cut: {len(data)} bytes, kept {MAX_LOG_LINE_BYTES}]".encode()
        data = data[: MAX_LOG_LINE_BYTES - len(marker)]
        return data.decode("utf-8", "ignore") + marker.decode()
    return data.decode("utf-8")


def _max_length(type_: TypeEngine[Any], default: int) -> int:
    """The length limit of a ``VARCHAR`` column; ``default`` when it has none."""
    length = type_.length if isinstance(type_, String) else None
    return default if length is None else length


def _aware(what: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: the catalog needs a timezone-aware datetime, got {value!r}")
    return value


def _artifact_row(artifact: Artifact) -> dict[str, Any]:
    sha = artifact.sha256
    if len(sha) != 64 or not set(sha) <= _SHA256_HEX:
        raise ValueError(f"artifact {artifact.object_key}: sha256 must be 64 lowercase hex digits")
    if artifact.size_bytes < 0:
        raise ValueError(f"artifact {artifact.object_key}: size_bytes must not be negative")
    return asdict(artifact)


def _log_page(conn: Connection, *, run_id: str, after_seq: int) -> list[LogLine]:
    query = (
        select(run_log)
        .where(run_log.c.run_id == run_id, run_log.c.seq > after_seq)
        .order_by(run_log.c.seq)
        .limit(BATCH_SIZE)
    )
    return [
        LogLine(run_id=r.run_id, seq=r.seq, at=r.at, stream=LogStream(r.stream), text=r.text)
        for r in conn.execute(query)
    ]


def _fetch_run(conn: Connection, run_id: str) -> Row[Any]:
    return conn.execute(select(runs).where(runs.c.id == run_id)).one()


def _fetch_state(conn: Connection, run_id: str) -> str | None:
    state = conn.scalar(select(runs.c.state).where(runs.c.id == run_id))
    return None if state is None else str(state)


def _to_run(row: Row[Any]) -> Run:
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
    )
