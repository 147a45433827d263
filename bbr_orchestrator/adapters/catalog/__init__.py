"""The run catalog in SQL: SQLite (default), PostgreSQL, MySQL/MariaDB (incl. Galera).

Public API (what the CLI and the composition root use)::

    open_catalog(url, *, require_head=True) -> SqlCatalog
    upgrade(url, revision="head") -> (from_revision, to_revision)
    downgrade(url, revision) -> (from_revision, to_revision)
    current_revision(url) -> str | None
    head_revision() -> str
    default_sqlite_url(state_dir) -> str
    with_password(url, password) -> str     # fill in a password kept out of the config file
    mask_url(url) -> str                    # for messages: passwords shown as ***
"""

from __future__ import annotations

from bbr_orchestrator.adapters.catalog.migrate import (
    current_revision,
    downgrade,
    ensure_at_head,
    head_revision,
    upgrade,
)
from bbr_orchestrator.adapters.catalog.repository import SqlCatalog
from bbr_orchestrator.adapters.catalog.schema import (
    Database,
    default_sqlite_url,
    mask_url,
    ping,
    with_password,
)

__all__ = [
    "SqlCatalog",
    "current_revision",
    "default_sqlite_url",
    "downgrade",
    "head_revision",
    "mask_url",
    "open_catalog",
    "upgrade",
    "with_password",
]


def open_catalog(url: str, *, require_head: bool = True) -> SqlCatalog:
    """Connect to the catalog at ``url``.

    Raises ``CatalogNotAtHead`` (when ``require_head``) unless the schema is at this version's
    head revision, and ``CatalogError`` (password masked) when the database cannot be reached.
    """
    db = Database(url)
    try:
        if require_head:
            ensure_at_head(db)
        else:
            ping(db)
    except BaseException:
        db.dispose()
        raise
    return SqlCatalog(db)
