"""Alembic, configured in code: where the scripts are, which revision a catalog is at, upgrades."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection

import bbr_orchestrator
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.errors import CatalogError, CatalogNotAtHead

#: Where a built wheel puts the scripts (pyproject: force-include "migrations").
_PACKAGED = Path(bbr_orchestrator.__file__).parent / "_migrations"
#: The source tree / editable install: ``<repo>/migrations``.
_SOURCE_TREE = Path(bbr_orchestrator.__file__).parent.parent / "migrations"


def migrations_dir() -> Path:
    """The Alembic script directory of this installation."""
    for candidate in (_PACKAGED, _SOURCE_TREE):
        if (candidate / "env.py").is_file():
            return candidate
    raise CatalogError(
        "(migrations)",
        f"cannot find the migration scripts: looked in {_PACKAGED} and {_SOURCE_TREE}",
    )


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config without an ini file; ``env.py`` runs on ``connection`` when given."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    """The revision this version of bbr-orchestrator needs."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise CatalogError("(migrations)", f"no migration scripts in {migrations_dir()}")
    return head


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def current_revision_of(db: Database) -> str | None:
    with db.connect() as conn:
        return _current(conn)


def current_revision(url: str) -> str | None:
    """The revision the catalog at ``url`` is at; ``None`` for an empty database."""
    db = Database(url)
    try:
        return current_revision_of(db)
    finally:
        db.dispose()


def ensure_at_head(db: Database) -> None:
    """Raise ``CatalogNotAtHead`` unless the catalog is at this version's head revision."""
    current = current_revision_of(db)
    head = head_revision()
    if current != head:
        raise CatalogNotAtHead(db.url, current, head)


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the catalog at ``url`` up to ``revision``; returns ``(from, to)``.

    ``to`` is ``"base"`` when the database holds no revision afterwards.
    """
    return _migrate(url, revision, command.upgrade, "upgrade")


def downgrade(url: str, revision: str) -> tuple[str | None, str]:
    """Migrate the catalog at ``url`` down to ``revision`` (``"base"``: drop every table)."""
    return _migrate(url, revision, command.downgrade, "downgrade")


def _migrate(
    url: str, revision: str, step: Callable[[Config, str], None], verb: str
) -> tuple[str | None, str]:
    db = Database(url)
    try:
        before = current_revision_of(db)
        with db.connect() as conn, sqlite_foreign_keys_off(conn):
            try:
                step(alembic_config(conn), revision)
            except CommandError as exc:
                raise CatalogError(db.url, f"cannot {verb} to {revision}: {exc}") from exc
            check_foreign_keys(db, conn)
            conn.commit()
        return before, current_revision_of(db) or "base"
    finally:
        db.dispose()


@contextmanager
def sqlite_foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite alters a table by rebuilding it (Alembic batch mode); with foreign keys enforced,
    dropping the old ``runs`` would cascade-delete every artifact and log line. The pragma is
    ignored inside a transaction, so it is set on the driver connection before one starts."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = conn.connection.driver_connection
    if driver is None:
        raise CatalogError("(migrations)", "the SQLite connection is closed")
    driver.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        conn.rollback()
        driver.execute("PRAGMA foreign_keys = ON")


def check_foreign_keys(db: Database, conn: Connection) -> None:
    """With SQLite's foreign keys off, make sure the migration left every reference intact."""
    if conn.dialect.name != "sqlite":
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        conn.rollback()
        tables = sorted({str(row[0]) for row in broken})
        raise CatalogError(
            db.url, f"migration left broken foreign keys in {', '.join(tables)}; rolled back"
        )
