"""Alembic environment for the bbr-orchestrator catalog.

bbr-orchestrator runs migrations in code (``bbr-orchestrator db upgrade``) and hands this
script an open connection in ``config.attributes["connection"]``. Developers may also use the
``alembic`` command from the repository root (see ``alembic.ini``); the database URL then
comes from ``-x url=...`` or the ``BBR_CATALOG_URL`` environment variable.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from bbr_orchestrator.adapters.catalog.migrate import check_foreign_keys, sqlite_foreign_keys_off
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import metadata

config = context.config


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("BBR_CATALOG_URL")
    if not url:
        raise SystemExit("set the catalog URL: alembic -x url=... or BBR_CATALOG_URL=...")
    return url


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    db = Database(_url())
    try:
        # As `bbr-orchestrator db upgrade` does: SQLite's table rebuilds with foreign keys off,
        # and every reference checked before the commit.
        with db.connect() as conn, sqlite_foreign_keys_off(conn):
            _configure_and_run(conn)
            check_foreign_keys(db, conn)
            conn.commit()
    finally:
        db.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
