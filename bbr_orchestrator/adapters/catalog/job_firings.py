"""Firings of scheduled jobs (verify jobs, restore drills) in SQL: the claim, the run it started,
the latest firing and how many came before one.

The claim is an INSERT into ``job_firings``: its unique ``(job, scheduled_for)`` decides which
daemon runs a firing. A losing INSERT is a unique violation (PostgreSQL and SQLite) or, on
MySQL/MariaDB (Galera included), sometimes a deadlock or certification conflict first, which
``Database.write`` re-runs; the re-run then meets the winner's row and loses cleanly.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Connection, func, insert, select
from sqlalchemy import update as update_statement
from sqlalchemy.exc import IntegrityError

from bbr_orchestrator.adapters.catalog.rows import Refused, aware, checked, violates
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import JOB_FIRING_KEY, job_firings, runs
from bbr_orchestrator.core.models import new_run_id
from bbr_orchestrator.errors import RunNotFound

_table = job_firings


class SqlJobFirings:
    """The job-firing part of the ``Catalog`` port (``SqlCatalog`` delegates to it)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim_job_firing(
        self, job: str, scheduled_for: datetime, daemon_instance: str, claimed_at: datetime
    ) -> bool:
        """INSERT the firing; False when ``(job, scheduled_for)`` already has one."""
        firing_id = new_run_id(aware("claim_job_firing.claimed_at", claimed_at),
                               secrets.token_hex(4))  # fmt: skip
        values = {
            "id": firing_id,
            "job": job,
            "scheduled_for": aware("claim_job_firing.scheduled_for", scheduled_for),
            "daemon_instance": daemon_instance,
            "claimed_at": claimed_at,
        }
        row = checked(self._db.url, _table, values)

        def work(conn: Connection) -> None:
            conn.execute(insert(_table).values(row))

        try:
            self._db.write(work)
        except IntegrityError as exc:
            if violates(exc, JOB_FIRING_KEY, "job_firings.job"):
                return False
            raise self._db.error(exc, f"cannot claim firing {scheduled_for} of {job}") from exc
        return True

    def attach_job_run(self, job: str, scheduled_for: datetime, run_id: str) -> None:
        """Set the firing's ``run_id``; ``RunNotFound`` for an unknown run or firing."""
        when = aware("attach_job_run.scheduled_for", scheduled_for)
        where = (_table.c.job == job, _table.c.scheduled_for == when)

        def work(conn: Connection) -> str | None:
            if conn.scalar(select(runs.c.id).where(runs.c.id == run_id)) is None:
                return "no such run"
            try:
                conn.execute(update_statement(_table).where(*where).values(run_id=run_id))
            except IntegrityError as exc:  # the run went in between (deleted by hand)
                raise Refused(run_id, exc) from exc
            # Found by reading, not by rowcount: MySQL may count an unchanged row as untouched.
            if conn.scalar(select(_table.c.id).where(*where)) is None:
                return f"no firing of job {job} at {when.isoformat()} to attach it to"
            return None

        try:
            problem = self._db.write(work)
        except Refused as refused:
            raise RunNotFound(run_id) from refused.cause
        if problem is not None:
            raise RunNotFound(run_id, problem)

    def last_job_firing(self, job: str) -> datetime | None:
        query = select(func.max(_table.c.scheduled_for)).where(_table.c.job == job)
        latest: datetime | None = self._db.read(lambda conn: conn.scalar(query))
        return latest

    def count_job_firings(self, job: str, before: datetime) -> int:
        bound = aware("count_job_firings.before", before)
        query = (
            select(func.count())
            .select_from(_table)
            .where(_table.c.job == job, _table.c.scheduled_for < bound)
        )
        return int(self._db.read(lambda conn: conn.scalar(query)) or 0)
