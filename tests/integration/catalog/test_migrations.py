"""Migrations: the schema they build, its agreement with the table metadata, the head check."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from bbr_orchestrator.adapters.catalog import (
    current_revision,
    downgrade,
    head_revision,
    open_catalog,
    upgrade,
)
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import metadata
from bbr_orchestrator.errors import CatalogError, CatalogNotAtHead
from tests.integration.catalog.schema_shape import describe_schema

CATALOG_TABLES = {"runs", "artifacts", "run_log", "restore_points", "job_firings"}
CreateDatabase = Callable[[str], str]


def test_upgrade_on_empty_database_creates_the_catalog_tables(empty_url: str) -> None:
    """Upgrading an empty database goes from no revision to head and creates the five tables."""
    assert current_revision(empty_url) is None

    assert upgrade(empty_url) == (None, head_revision())

    assert current_revision(empty_url) == head_revision()
    tables = set(describe_schema(empty_url))
    assert tables == CATALOG_TABLES | {"alembic_version"}


def test_upgrade_at_head_is_a_no_op(empty_url: str) -> None:
    """A second upgrade reports (head, head) and changes nothing."""
    upgrade(empty_url)
    before = describe_schema(empty_url)

    assert upgrade(empty_url) == (head_revision(), head_revision())
    assert describe_schema(empty_url) == before


def test_schema_is_the_same_on_every_backend(create_database: CreateDatabase) -> None:
    """SQLite, PostgreSQL and MariaDB get the same tables, columns, keys, indexes and checks."""
    schemas = {}
    for backend in ("sqlite", "postgresql", "mariadb"):
        url = create_database(backend)
        upgrade(url)
        schemas[backend] = describe_schema(url)

    runs_indexes = {name for name, _, unique in schemas["sqlite"]["runs"]["indexes"]}
    assert runs_indexes == {
        "ix_runs_created_at",
        "ix_runs_plan_created_at",
        "ix_runs_target_created_at",
        "ix_runs_kind_created_at",
        "ix_runs_state_created_at",
        "ix_runs_restore_point_id",
        "ix_runs_subject_run_id",
        "uq_runs_active_target",
    }
    points_indexes = {name for name, _, _ in schemas["sqlite"]["restore_points"]["indexes"]}
    assert points_indexes == {
        "ix_restore_points_created_at",
        "ix_restore_points_plan_created_at",
        "ix_restore_points_state_created_at",
        "uq_restore_points_plan_scheduled_for",
    }
    assert schemas["postgresql"] == schemas["sqlite"]
    assert schemas["mariadb"] == schemas["sqlite"]


def test_models_and_migrations_agree(migrated_url: str) -> None:
    """Alembic finds no difference between the migrated database and the table metadata."""
    db = Database(migrated_url)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, metadata)
    finally:
        db.dispose()
    assert diffs == []


def test_mysql_tables_are_innodb_utf8mb4_binary(create_database: CreateDatabase) -> None:
    """On MariaDB every catalog table is InnoDB with the binary utf8mb4 collation."""
    url = create_database("mariadb")
    upgrade(url)
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_name, engine, table_collation FROM information_schema.tables"
                    " WHERE table_schema = DATABASE()"
                )
            ).all()
    finally:
        db.dispose()
    found = {str(name): (engine, collation) for name, engine, collation in rows}
    for table in CATALOG_TABLES:
        assert found[table] == ("InnoDB", "utf8mb4_bin")


def test_postgresql_run_ids_use_the_c_collation(create_database: CreateDatabase) -> None:
    """On PostgreSQL every run (and restore point) id column is COLLATE "C": byte-wise order."""
    url = create_database("postgresql")
    upgrade(url)
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT table_name, column_name, collation_name"
                    " FROM information_schema.columns"
                    " WHERE column_name IN ('id', 'run_id', 'restore_point_id', 'subject_run_id')"
                    "   AND table_schema = 'public'"
                    "   AND table_name IN ('runs', 'artifacts', 'run_log', 'restore_points')"
                )
            ).all()
    finally:
        db.dispose()
    assert sorted(tuple(r) for r in rows) == [
        ("artifacts", "id", None),
        ("artifacts", "run_id", "C"),
        ("restore_points", "id", "C"),
        ("run_log", "run_id", "C"),
        ("runs", "id", "C"),
        ("runs", "restore_point_id", "C"),
        ("runs", "subject_run_id", "C"),
    ]


def test_open_catalog_on_empty_database_asks_for_db_upgrade(empty_url: str) -> None:
    """An empty database is not at head: CatalogNotAtHead names `bbr-orchestrator db upgrade`."""
    with pytest.raises(CatalogNotAtHead) as caught:
        open_catalog(empty_url)

    assert caught.value.current is None
    assert caught.value.head == head_revision()
    assert "bbr-orchestrator db upgrade" in str(caught.value)


def test_open_catalog_at_base_revision_asks_for_db_upgrade(empty_url: str) -> None:
    """A database upgraded only to base (version table, no revision) is not at head."""
    assert upgrade(empty_url, "base") == (None, "base")

    with pytest.raises(CatalogNotAtHead) as caught:
        open_catalog(empty_url)
    assert caught.value.current is None
    assert "bbr-orchestrator db upgrade" in str(caught.value)


def test_open_catalog_after_downgrade_asks_for_db_upgrade(empty_url: str) -> None:
    """A catalog migrated to head then downgraded to base is refused, and upgrading repairs it."""
    upgrade(empty_url)
    assert downgrade(empty_url, "base") == (head_revision(), "base")
    assert set(describe_schema(empty_url)) == {"alembic_version"}

    with pytest.raises(CatalogNotAtHead, match="bbr-orchestrator db upgrade"):
        open_catalog(empty_url)

    assert upgrade(empty_url) == (None, head_revision())
    open_catalog(empty_url).close()


def test_open_catalog_at_unknown_revision_is_refused(empty_url: str) -> None:
    """A catalog stamped with a revision this version does not know is not at head."""
    upgrade(empty_url)
    db = Database(empty_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        db.dispose()

    with pytest.raises(CatalogNotAtHead) as caught:
        open_catalog(empty_url)
    assert caught.value.current == "9999"
    assert current_revision(empty_url) == "9999"
    with pytest.raises(CatalogError, match="9999"):
        upgrade(empty_url)


def test_open_catalog_without_head_check_opens_an_old_schema(empty_url: str) -> None:
    """require_head=False connects without checking the revision (for `db upgrade`/`db status`)."""
    catalog = open_catalog(empty_url, require_head=False)
    catalog.close()


def test_upgrade_to_unknown_revision_is_a_catalog_error(empty_url: str) -> None:
    """Asking for a revision that does not exist is a CatalogError naming it."""
    with pytest.raises(CatalogError, match="no-such-revision"):
        upgrade(empty_url, "no-such-revision")
