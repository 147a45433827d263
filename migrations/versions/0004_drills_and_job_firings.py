"""drills and scheduled jobs: runs.rto_seconds, job_firings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 12:00:00.000000

* ``runs.rto_seconds`` (nullable DOUBLE): for a restore or a drill, the seconds from its start
  until the platform was restored (artifact fetched and ``bbr restore`` done): the recovery
  time it proved. NULL for every other run and for every row of a 0003 catalog.
* ``job_firings``: one row per firing of a scheduled job that is not a plan's backup (a
  plan's verify job, a restore drill). The unique ``(job, scheduled_for)`` is the claim that
  makes exactly one daemon run a firing, as ``restore_points (plan, scheduled_for)`` does for
  backups; ``run_id`` (ON DELETE SET NULL) is the run the firing started.

On SQLite adding the column rebuilds ``runs`` (batch mode); as for 0002/0003 the upgrade
refuses to run with foreign keys enforced on a catalog with artifacts or log lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = ("mysql", "mariadb")
MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def utc_datetime() -> sa.types.TypeEngine[Any]:
    """``timestamptz`` on PostgreSQL, ``DATETIME(6)`` (naive UTC) on MySQL, DATETIME on SQLite."""
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *MYSQL)


def run_id() -> sa.types.TypeEngine[Any]:
    """Byte-wise comparison everywhere, so an id prefix is a primary-key range."""
    return sa.String(length=64).with_variant(postgresql.VARCHAR(64, collation="C"), "postgresql")


def upgrade() -> None:
    refuse_cascading_rebuild()
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("rto_seconds", sa.Double(), nullable=True))
    op.create_table(
        "job_firings",
        sa.Column("id", run_id(), nullable=False),
        sa.Column("job", sa.String(length=255), nullable=False),
        sa.Column("scheduled_for", utc_datetime(), nullable=False),
        sa.Column("daemon_instance", sa.String(length=255), nullable=False),
        sa.Column("claimed_at", utc_datetime(), nullable=False),
        sa.Column("run_id", run_id(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_firings")),
        sa.UniqueConstraint("job", "scheduled_for", name="uq_job_firings_job_scheduled_for"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_job_firings_run_id_runs"),
            ondelete="SET NULL",
        ),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_job_firings_run_id", "job_firings", ["run_id"])


def downgrade() -> None:
    """Back to 0003: the job firings and the recorded recovery times are dropped."""
    op.drop_table("job_firings")
    refuse_cascading_rebuild()
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("rto_seconds")


def refuse_cascading_rebuild() -> None:
    """On SQLite with foreign keys on, rebuilding ``runs`` would empty artifacts and run_log."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or not bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        return
    children = ("artifacts", "run_log")
    if any(bind.exec_driver_sql(f"SELECT 1 FROM {t} LIMIT 1").first() for t in children):  # noqa: S608
        raise RuntimeError(
            "SQLite rebuilds the runs table for this migration, and with foreign keys on that "
            "would delete every artifact and log line: run `bbr-orchestrator db upgrade` (which "
            "turns them off for the migration), or PRAGMA foreign_keys = OFF before migrating"
        )
