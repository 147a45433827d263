"""Alembic, configured in code: where the scripts are, which revision a catalog is at, upgrades."""

from __future__ import annotations

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
    db = Database(url)
    try:
        before = current_revision_of(db)
        with db.connect() as conn:
            try:
                command.upgrade(alembic_config(conn), revision)
            except CommandError as exc:
                raise CatalogError(db.url, f"cannot upgrade to {revision}: {exc}") from exc
            conn.commit()
        return before, current_revision_of(db) or "base"
    finally:
        db.dispose()
