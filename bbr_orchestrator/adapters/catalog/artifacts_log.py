"""Artifacts and run logs in SQL: batched inserts, conflicts explained, the log read in pages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import datetime
from functools import partial
from typing import Any, Final

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from bbr_orchestrator.adapters.catalog.rows import aware, checked
from bbr_orchestrator.adapters.catalog.run_rows import fetch_state
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import MAX_LOG_LINE_BYTES, artifacts, run_log, runs
from bbr_orchestrator.core.models import Artifact, LogLine, LogStream
from bbr_orchestrator.errors import ArtifactConflict, RunNotFound

#: Rows per INSERT batch (append_log, add_artifacts) and per page read (read_log).
BATCH_SIZE: Final = 500
_SHA256_HEX: Final = frozenset("0123456789abcdef")


class SqlArtifactsAndLog:
    """The artifact and log half of the ``Catalog`` port (``SqlCatalog`` delegates to it)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- artifacts --------------------------------------------------------------------------

    def add_artifacts(self, artifacts_: Iterable[Artifact]) -> None:
        rows = [checked(self._db.url, artifacts, _artifact_row(a)) for a in artifacts_]
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
            (aware("log line at", at), LogStream(stream).value, clip_log_text(line))
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
            if self._db.read(partial(fetch_state, run_id=run_id)) is None:
                raise RunNotFound(run_id) from exc
            raise self._db.error(exc, f"concurrent append to the log of run {run_id}") from exc

    def read_log(self, run_id: str, after_seq: int = 0) -> Iterator[LogLine]:
        """Lines in ``seq`` order, fetched in pages (no cursor is held between pages)."""
        last = after_seq
        while True:
            page = self._db.read(partial(_log_page, run_id=run_id, after_seq=last))
            first = last == after_seq
            if first and not page and self._db.read(partial(fetch_state, run_id=run_id)) is None:
                raise RunNotFound(run_id)
            yield from page
            if len(page) < BATCH_SIZE:
                return
            last = page[-1].seq


def clip_log_text(text: str) -> str:
    """A log line as stored: NUL replaced, invalid code points replaced, cut at 64 KiB (UTF-8)."""
    data = text.replace("\x00", "\ufffd").encode("utf-8", "replace")
    if len(data) > MAX_LOG_LINE_BYTES:
        marker = f" [… line cut: {len(data)} bytes, kept {MAX_LOG_LINE_BYTES}]".encode()
        data = data[: MAX_LOG_LINE_BYTES - len(marker)]
        return data.decode("utf-8", "ignore") + marker.decode()
    return data.decode("utf-8")


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
