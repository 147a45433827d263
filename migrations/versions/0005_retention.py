"""retention: pinned and deleted backups, deleted restore points

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-20 09:00:00.000000

* ``runs.pinned_at`` / ``pinned_by`` / ``pin_reason``: an operator's pin on a backup
  (retention never deletes a pinned backup). NULL: not pinned.
* ``runs.delete_reason``: why retention deletes the backup, set (compare-and-set, only when
  not pinned) before its first object is deleted; ``runs.deleted_at``: when the last one was.
  A row with a reason and no time is a deletion that was interrupted (the next prune ends it).
* ``restore_points.deleted_at`` / ``delete_reason``: every stored object of the point's
  backups is gone.

Existing rows get NULL everywhere: nothing was pinned or deleted before this revision. The
rows of deleted backups stay (history, and the list of objects a re-run must still delete).

On SQLite adding columns may rebuild the tables (batch mode); as for 0002-0004 the upgrade
refuses to run with foreign keys enforced on a catalog with artifacts or log lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = ("mysql", "mariadb")
REASON_LENGTH = 1024


def utc_datetime() -> sa.types.TypeEngine[Any]:
    """``timestamptz`` on PostgreSQL, ``DATETIME(6)`` (naive UTC) on MySQL, DATETIME on SQLite."""
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *MYSQL)


def upgrade() -> None:
    refuse_cascading_rebuild()
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("pinned_at", utc_datetime(), nullable=True))
        batch.add_column(sa.Column("pinned_by", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("pin_reason", sa.String(length=REASON_LENGTH), nullable=True))
        batch.add_column(sa.Column("delete_reason", sa.String(length=REASON_LENGTH), nullable=True))
        batch.add_column(sa.Column("deleted_at", utc_datetime(), nullable=True))
    with op.batch_alter_table("restore_points") as batch:
        batch.add_column(sa.Column("deleted_at", utc_datetime(), nullable=True))
        batch.add_column(sa.Column("delete_reason", sa.String(length=REASON_LENGTH), nullable=True))


def downgrade() -> None:
    """Back to 0004: pins and deletion marks are dropped (deleted backups' rows stay, and
    would look like stored backups again: their objects are gone)."""
    refuse_cascading_rebuild()
    with op.batch_alter_table("restore_points") as batch:
        batch.drop_column("delete_reason")
        batch.drop_column("deleted_at")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("delete_reason")
        batch.drop_column("pin_reason")
        batch.drop_column("pinned_by")
        batch.drop_column("pinned_at")


def refuse_cascading_rebuild() -> None:
    """On SQLite with foreign keys on, rebuilding ``runs`` would empty artifacts and run_log."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or not bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        return
    children = ("artifacts", "run_log", "runs")
    if any(bind.exec_driver_sql(f"SELECT 1 FROM {t} LIMIT 1").first() for t in children):  # noqa: S608
        raise RuntimeError(
            "SQLite rebuilds the runs table for this migration, and with foreign keys on that "
            "would delete every artifact and log line: run `bbr-orchestrator db upgrade` (which "
            "turns them off for the migration), or PRAGMA foreign_keys = OFF before migrating"
        )
