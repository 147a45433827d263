"""The catalog's tables as SQLAlchemy Core metadata: the one schema Alembic compares against.

Portable across SQLite, PostgreSQL and MySQL/MariaDB (InnoDB, Galera-safe):

* enums are short ``VARCHAR`` columns with a CHECK constraint, never native enum types, so a
  new run kind is a small migration (replace the constraint; a batch table copy on SQLite);
* every timestamp is UTC: ``timestamptz`` on PostgreSQL, naive UTC on SQLite (ISO text) and
  MySQL (``DATETIME(6)``) with UTC re-attached on read (:class:`UtcDateTime`);
* MySQL tables are ``utf8mb4`` with the binary collation, so text compares exactly as on the
  other backends (case-sensitive plan/target filters, distinct object keys);
* every table has a primary key (Galera requires one);
* claims between daemons are unique constraints, so the database arbitrates them:
  ``runs.active_target`` (one RUNNING run per target, among the kinds that hold targets: a
  verify never sets it) and ``restore_points (plan, scheduled_for)`` (one restore point per
  plan firing);
* booleans are ``BOOLEAN`` (``TINYINT(1)`` on MySQL, an integer on SQLite) with a named CHECK
  that keeps them to false/true where the type alone would not.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeDecorator, TypeEngine

from bbr_orchestrator.core.models import (
    LogStream,
    RestorePointState,
    RunKind,
    RunState,
    TargetKind,
    Trigger,
)

MYSQL_DIALECTS = ("mysql", "mariadb")

# Constraint names are derived, so migrations (and SQLite batch rebuilds) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

#: S3 allows 1024-byte keys; ours (``<prefix>/<target>/<run id>/<file>``) are far shorter.
#: 700 characters keeps the unique (run_id, object_key) index under InnoDB's 3072-byte limit
#: in utf8mb4 (4 bytes a character).
OBJECT_KEY_LENGTH = 700
RUN_ID_LENGTH = 64
NAME_LENGTH = 255
#: Why a backup was pinned or deleted (operator text, retention's reasons).
REASON_LENGTH = 1024
#: Longest run-log line kept, in UTF-8 bytes; longer lines are cut and marked.
MAX_LOG_LINE_BYTES = 64 * 1024
#: The claims, named as the naming convention would name them (the repository recognises which
#: one a unique violation broke by these names).
ACTIVE_TARGET_KEY = "uq_runs_active_target"
FIRING_KEY = "uq_restore_points_plan_scheduled_for"
JOB_FIRING_KEY = "uq_job_firings_job_scheduled_for"


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` on every backend; naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[datetime]:
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"the catalog stores timezone-aware datetimes only, got {value!r}")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _run_id() -> TypeEngine[str]:
    """Run ids compare byte-wise on every backend (PostgreSQL: ``COLLATE "C"``; MySQL tables are
    ``utf8mb4_bin``; SQLite is binary), so an id prefix is a range of the primary key index."""
    return String(RUN_ID_LENGTH).with_variant(
        postgresql.VARCHAR(RUN_ID_LENGTH, collation="C"), "postgresql"
    )


def _long_text() -> TypeEngine[str]:
    """``TEXT``; ``MEDIUMTEXT`` on MySQL, whose ``TEXT`` stops at 65,535 bytes."""
    return Text().with_variant(mysql.MEDIUMTEXT(), *MYSQL_DIALECTS)


def _one_of(column: str, values: Iterable[StrEnum]) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

# One row per plan firing (a "restore point": every step of the plan as one unit). The unique
# (plan, scheduled_for) is the claim that makes one daemon, and only one, run a firing; a NULL
# scheduled_for (started by hand) may repeat, as NULLs are distinct in unique indexes on every
# backend.
restore_points = Table(
    "restore_points",
    metadata,
    Column("id", _run_id(), primary_key=True),
    Column("plan", String(NAME_LENGTH), nullable=False),
    Column("trigger_type", String(16), nullable=False),
    Column("triggered_by", String(NAME_LENGTH), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("scheduled_for", UtcDateTime(), nullable=True),
    Column("daemon_instance", String(NAME_LENGTH), nullable=True),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("heartbeat_at", UtcDateTime(), nullable=True),
    Column("summary", _long_text(), nullable=True),
    # Set once retention deleted every stored object of the point's backups.
    Column("deleted_at", UtcDateTime(), nullable=True),
    Column("delete_reason", String(REASON_LENGTH), nullable=True),
    _one_of("trigger_type", Trigger),
    _one_of("state", RestorePointState),
    # Also the index for last_scheduled_for (MAX over one plan).
    UniqueConstraint("plan", "scheduled_for", name=FIRING_KEY),
    Index("ix_restore_points_created_at", "created_at", "id"),
    Index("ix_restore_points_plan_created_at", "plan", "created_at", "id"),
    Index("ix_restore_points_state_created_at", "state", "created_at", "id"),
    **MYSQL_TABLE_OPTIONS,
)

runs = Table(
    "runs",
    metadata,
    Column("id", _run_id(), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("target", String(NAME_LENGTH), nullable=False),
    Column("target_kind", String(16), nullable=False),
    Column("plan", String(NAME_LENGTH), nullable=True),
    # TRIGGER is a reserved word in MySQL: this column would need quoting in every ad-hoc query.
    Column("trigger_type", String(16), nullable=False),
    Column("triggered_by", String(NAME_LENGTH), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("heartbeat_at", UtcDateTime(), nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("outcome", String(128), nullable=True),
    Column("error_summary", _long_text(), nullable=True),
    Column("bytes_total", BigInteger, nullable=True),
    Column("daemon_instance", String(NAME_LENGTH), nullable=True),
    Column("log_object_key", String(1024), nullable=True),
    # ``target`` while the run is RUNNING, NULL otherwise: the unique constraint on it is the
    # claim that gives a target one running run across every daemon sharing the catalog.
    Column("active_target", String(NAME_LENGTH), nullable=True),
    Column("restore_point_id", _run_id(), ForeignKey("restore_points.id"), nullable=True),
    Column("step", Integer, nullable=True),
    # The backup run a verify, restore or drill run is about. ON DELETE SET NULL: the app never
    # deletes runs, but whoever does (an operator, a future catalog retention) must be able to
    # drop an old backup run without first finding the runs about it, and on MySQL a bulk
    # DELETE is checked row by row, where NO ACTION would refuse whenever the backup's row
    # goes before theirs. The runs about it keep their own record (target, plan, log).
    Column(
        "subject_run_id",
        _run_id(),
        ForeignKey("runs.id", ondelete="SET NULL"),
        nullable=True,
    ),
    # For a backup: NULL until verified, then what the latest verification found.
    Column("restorable", Boolean(create_constraint=False), nullable=True),
    Column("verified_at", UtcDateTime(), nullable=True),
    # For a restore or drill: seconds from its start until the platform was restored.
    Column("rto_seconds", Double(), nullable=True),
    # Retention: a pinned backup is never deleted. ``delete_reason`` is set (compare-and-set,
    # only when not pinned) before the first object goes, ``deleted_at`` once the last one has.
    Column("pinned_at", UtcDateTime(), nullable=True),
    Column("pinned_by", String(NAME_LENGTH), nullable=True),
    Column("pin_reason", String(REASON_LENGTH), nullable=True),
    Column("delete_reason", String(REASON_LENGTH), nullable=True),
    Column("deleted_at", UtcDateTime(), nullable=True),
    _one_of("kind", RunKind),
    _one_of("target_kind", TargetKind),
    _one_of("trigger_type", Trigger),
    _one_of("state", RunState),
    # ``false``/``true`` are 0/1 on SQLite and MySQL, where the column is an integer.
    CheckConstraint("restorable IN (false, true)", name="restorable"),
    # list_runs: one filter (or none) + ORDER BY created_at DESC, id DESC + LIMIT walks one
    # index backwards and stops after LIMIT rows. ``id`` makes the order total (ties on
    # created_at) and lets SQLite avoid a sort step.
    Index("ix_runs_created_at", "created_at", "id"),
    Index("ix_runs_plan_created_at", "plan", "created_at", "id"),
    Index("ix_runs_target_created_at", "target", "created_at", "id"),
    Index("ix_runs_kind_created_at", "kind", "created_at", "id"),
    Index("ix_runs_state_created_at", "state", "created_at", "id"),
    Index("ix_runs_restore_point_id", "restore_point_id"),
    Index("ix_runs_subject_run_id", "subject_run_id"),
    UniqueConstraint("active_target", name=ACTIVE_TARGET_KEY),
    **MYSQL_TABLE_OPTIONS,
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "run_id",
        _run_id(),
        ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("object_key", String(OBJECT_KEY_LENGTH), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("member_checksums", Integer, nullable=False),
    # Also the index for "artifacts of a run" and for the foreign key.
    UniqueConstraint("run_id", "object_key"),
    CheckConstraint("size_bytes >= 0", name="size_bytes"),
    **MYSQL_TABLE_OPTIONS,
)

run_log = Table(
    "run_log",
    metadata,
    Column(
        "run_id",
        _run_id(),
        ForeignKey("runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("stream", String(16), nullable=False),
    Column("text", _long_text(), nullable=False),
    _one_of("stream", LogStream),
    **MYSQL_TABLE_OPTIONS,
)

# One row per firing of a scheduled job that is not a plan's backup (a plan's verify job, a
# restore drill): the unique (job, scheduled_for) is the claim that makes one daemon, and only
# one, run that firing. ``job`` names the job (``verify:nightly``,
# ``drill:nightly:sandbox-director``); ``run_id`` is the run the firing started, once known.
job_firings = Table(
    "job_firings",
    metadata,
    Column("id", _run_id(), primary_key=True),
    Column("job", String(NAME_LENGTH), nullable=False),
    Column("scheduled_for", UtcDateTime(), nullable=False),
    Column("daemon_instance", String(NAME_LENGTH), nullable=False),
    Column("claimed_at", UtcDateTime(), nullable=False),
    Column("run_id", _run_id(), ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    # Also the index for the latest firing of a job (MAX over one job).
    UniqueConstraint("job", "scheduled_for", name=JOB_FIRING_KEY),
    Index("ix_job_firings_run_id", "run_id"),
    **MYSQL_TABLE_OPTIONS,
)
