"""verification: runs.subject_run_id, runs.restorable, runs.verified_at

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-11 09:00:00.000000

* ``runs.subject_run_id`` (FK -> ``runs.id``, indexed, ON DELETE SET NULL): the backup run a
  verify, restore or drill run is about. SET NULL rather than NO ACTION: the application never
  deletes runs, but whoever does (an operator, a future catalog retention) can drop an old
  backup without hunting down the runs about it first, and MySQL checks a multi-row DELETE
  row by row, so NO ACTION would refuse a bulk delete whenever the backup's row went first.
  The runs about it keep their own record (target, plan, log).
* ``runs.restorable`` (nullable BOOLEAN; ``TINYINT(1)`` on MySQL, an integer on SQLite, with
  ``ck_runs_restorable`` keeping it to false/true there): NULL until a verification.
* ``runs.verified_at``: when the latest verification finished.

Existing rows get NULL in all three, the truth for every run of a 0002 catalog. A verify
holds no target (it reads the object store only); that is the repository's rule, with no
schema change: its ``active_target`` stays NULL.

On SQLite the ``runs`` changes rebuild the table (batch mode): as for 0002, the upgrade refuses
to run with foreign keys enforced on a catalog with artifacts or log lines, which the rebuild
would cascade-delete; ``bbr-orchestrator db upgrade`` turns them off and checks every
reference before committing (see ``adapters/catalog/migrate.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = ("mysql", "mariadb")


def utc_datetime() -> sa.types.TypeEngine[Any]:
    """``timestamptz`` on PostgreSQL, ``DATETIME(6)`` (naive UTC) on MySQL, DATETIME on SQLite."""
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *MYSQL)


def run_id() -> sa.types.TypeEngine[Any]:
    """Byte-wise comparison everywhere, so an id prefix is a primary-key range."""
    return sa.String(length=64).with_variant(postgresql.VARCHAR(64, collation="C"), "postgresql")


def upgrade() -> None:
    refuse_cascading_rebuild()
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("subject_run_id", run_id(), nullable=True))
        batch.add_column(
            sa.Column("restorable", sa.Boolean(create_constraint=False), nullable=True)
        )
        batch.add_column(sa.Column("verified_at", utc_datetime(), nullable=True))
        # The index before the foreign key: MySQL would otherwise add one of its own.
        batch.create_index("ix_runs_subject_run_id", ["subject_run_id"])
        batch.create_foreign_key(
            op.f("fk_runs_subject_run_id_runs"),
            "runs",
            ["subject_run_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_check_constraint(
            op.f("ck_runs_restorable"), sa.text("restorable IN (false, true)")
        )


def downgrade() -> None:
    """Back to 0002: the three columns (and what they held) are dropped; every row stays."""
    refuse_cascading_rebuild()
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("ck_runs_restorable"), type_="check")
        batch.drop_constraint(op.f("fk_runs_subject_run_id_runs"), type_="foreignkey")
        batch.drop_index("ix_runs_subject_run_id")
        batch.drop_column("verified_at")
        batch.drop_column("restorable")
        batch.drop_column("subject_run_id")


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
