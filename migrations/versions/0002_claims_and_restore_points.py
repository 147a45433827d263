"""claims and restore points: restore_points table, runs.active_target/restore_point_id/step

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 09:00:00.000000

* ``restore_points``: one row per plan firing; UNIQUE (plan, scheduled_for) is the claim that
  gives a firing to one daemon only.
* ``runs.active_target`` (UNIQUE): the target while the run is RUNNING, so one running run per
  target across daemons. Existing rows get NULL, the truth for every run of a 0001 catalog
  except a RUNNING one, which the reaper treats as stale anyway (it has no owner alive).
* ``runs.restore_point_id`` (FK, indexed) and ``runs.step``: a run as a step of a restore point.
* The CHECKs on ``runs.kind`` and ``runs.target_kind`` admit ``opsman-export`` and ``opsman``.

On SQLite the ``runs`` changes rebuild the table (batch mode). With foreign keys enforced,
dropping the old table would cascade-delete every artifact and log line, so the upgrade refuses
to run that way on a catalog with rows in them; ``bbr-orchestrator db upgrade`` turns foreign
keys off for the migration (see ``adapters/catalog/migrate.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = ("mysql", "mariadb")
TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

OLD_KINDS = (
    "pre-backup-check",
    "backup",
    "restore",
    "verify",
    "drill",
    "backup-cleanup",
    "restore-cleanup",
)
NEW_KINDS = (*OLD_KINDS, "opsman-export")
OLD_TARGET_KINDS = ("director", "deployment")
NEW_TARGET_KINDS = (*OLD_TARGET_KINDS, "opsman")
RESTORE_POINT_STATES = (
    "queued",
    "running",
    "complete",
    "partial",
    "failed",
    "cancelled",
    "interrupted",
    "missed",
)


def utc_datetime() -> sa.types.TypeEngine[Any]:
    """``timestamptz`` on PostgreSQL, ``DATETIME(6)`` (naive UTC) on MySQL, DATETIME on SQLite."""
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), *MYSQL)


def run_id() -> sa.types.TypeEngine[Any]:
    """Byte-wise comparison everywhere, so an id prefix is a primary-key range."""
    return sa.String(length=64).with_variant(postgresql.VARCHAR(64, collation="C"), "postgresql")


def long_text() -> sa.types.TypeEngine[Any]:
    return sa.Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL)


def one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    refuse_cascading_rebuild()
    create_restore_points()
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("active_target", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("restore_point_id", run_id(), nullable=True))
        batch.add_column(sa.Column("step", sa.Integer(), nullable=True))
        # The index before the foreign key: MySQL would otherwise add one of its own.
        batch.create_index("ix_runs_restore_point_id", ["restore_point_id"])
        batch.create_foreign_key(
            op.f("fk_runs_restore_point_id_restore_points"),
            "restore_points",
            ["restore_point_id"],
            ["id"],
        )
        batch.create_unique_constraint(op.f("uq_runs_active_target"), ["active_target"])
        replace_check(batch, "kind", NEW_KINDS)
        replace_check(batch, "target_kind", NEW_TARGET_KINDS)


def downgrade() -> None:
    """Back to 0001; fails (CHECK) while runs of the new kinds or target kinds remain."""
    refuse_cascading_rebuild()
    with op.batch_alter_table("runs") as batch:
        replace_check(batch, "kind", OLD_KINDS)
        replace_check(batch, "target_kind", OLD_TARGET_KINDS)
        batch.drop_constraint(op.f("uq_runs_active_target"), type_="unique")
        batch.drop_constraint(op.f("fk_runs_restore_point_id_restore_points"), type_="foreignkey")
        batch.drop_index("ix_runs_restore_point_id")
        batch.drop_column("step")
        batch.drop_column("restore_point_id")
        batch.drop_column("active_target")
    op.drop_table("restore_points")


def create_restore_points() -> None:
    op.create_table(
        "restore_points",
        sa.Column("id", run_id(), nullable=False),
        sa.Column("plan", sa.String(length=255), nullable=False),
        sa.Column("trigger_type", sa.String(length=16), nullable=False),
        sa.Column("triggered_by", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", utc_datetime(), nullable=False),
        sa.Column("scheduled_for", utc_datetime(), nullable=True),
        sa.Column("daemon_instance", sa.String(length=255), nullable=True),
        sa.Column("started_at", utc_datetime(), nullable=True),
        sa.Column("finished_at", utc_datetime(), nullable=True),
        sa.Column("heartbeat_at", utc_datetime(), nullable=True),
        sa.Column("summary", long_text(), nullable=True),
        sa.CheckConstraint(
            one_of("trigger_type", ("schedule", "operator")),
            name=op.f("ck_restore_points_trigger_type"),
        ),
        sa.CheckConstraint(
            one_of("state", RESTORE_POINT_STATES), name=op.f("ck_restore_points_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restore_points")),
        sa.UniqueConstraint(
            "plan", "scheduled_for", name=op.f("uq_restore_points_plan_scheduled_for")
        ),
        **TABLE_OPTIONS,
    )
    op.create_index("ix_restore_points_created_at", "restore_points", ["created_at", "id"])
    op.create_index(
        "ix_restore_points_plan_created_at", "restore_points", ["plan", "created_at", "id"]
    )
    op.create_index(
        "ix_restore_points_state_created_at", "restore_points", ["state", "created_at", "id"]
    )


def replace_check(batch: Any, column: str, values: Sequence[str]) -> None:
    name = op.f(f"ck_runs_{column}")
    batch.drop_constraint(name, type_="check")
    batch.create_check_constraint(name, sa.text(one_of(column, values)))


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
