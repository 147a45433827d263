"""Catalog URLs: driver mapping, the default SQLite file, unreachable servers, masked passwords."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy.engine import make_url

from bbr_orchestrator.adapters.catalog import (
    current_revision,
    default_sqlite_url,
    open_catalog,
    upgrade,
    with_password,
)
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.errors import CatalogError

PASSWORD = "Sup3r:Secret@pw/1%x"  # URL-special characters on purpose
UNREACHABLE = {
    "postgresql": with_password("postgresql://bbr@127.0.0.1:1/catalog", PASSWORD),
    "mariadb": with_password("mysql://bbr@127.0.0.1:1/catalog", PASSWORD),
}
PLAIN_DRIVER = {"sqlite": "sqlite", "postgresql": "postgresql", "mariadb": "mysql"}


@pytest.mark.parametrize("backend_name", ["postgresql", "mariadb"])
@pytest.mark.parametrize(
    "call",
    [open_catalog, upgrade, current_revision],
    ids=["open_catalog", "upgrade", "current_revision"],
)
def test_unreachable_server_error_masks_the_password(
    backend_name: str, call: Callable[[str], object]
) -> None:
    """A refused connection is a CatalogError whose URL and message show *** for the password."""
    with pytest.raises(CatalogError) as caught:
        call(UNREACHABLE[backend_name])

    error = caught.value
    for form in (PASSWORD, quote(PASSWORD, safe=""), "Secret"):
        assert form not in str(error)
        assert form not in repr(error.args)
        assert form not in error.url
    assert "bbr:***@127.0.0.1:1/catalog" in str(error)
    assert error.reason
    assert isinstance(error.__cause__, Exception)


def test_wrong_password_error_masks_the_password() -> None:
    """MariaDB refusing a password: the error names the user, never the password."""
    with pytest.raises(CatalogError) as caught:
        open_catalog(with_password("mysql://root@127.0.0.1:3306/mysql", PASSWORD))
    assert "Secret" not in str(caught.value)
    assert "Access denied" in caught.value.reason


def test_with_password_survives_url_special_characters(
    create_database: Callable[[str], str],
) -> None:
    """A password with @ / : % reaches the server intact (trust auth) and is masked in .url."""
    url = with_password(create_database("postgresql"), PASSWORD)

    assert make_url(url).password == PASSWORD
    with open_catalog(url, require_head=False) as catalog:
        assert catalog.url.count("***") == 1
        assert PASSWORD not in catalog.url
        assert quote(PASSWORD, safe="") not in catalog.url


def test_unreachable_sqlite_file_names_the_path(tmp_path: Path) -> None:
    """A SQLite file in a missing directory is a CatalogError naming the file."""
    url = f"sqlite:///{tmp_path}/missing-dir/catalog.sqlite3"
    with pytest.raises(CatalogError, match=r"missing-dir/catalog\.sqlite3"):
        open_catalog(url)


def test_plain_backend_urls_get_the_bundled_driver(migrated_url: str, backend: str) -> None:
    """postgresql:// and mysql:// (no +driver) open with psycopg and PyMySQL.

    SQLAlchemy's own defaults (psycopg2, mysqlclient) are not installed, so opening proves it.
    """
    plain = make_url(migrated_url).set(drivername=PLAIN_DRIVER[backend]).render_as_string()

    with open_catalog(plain) as catalog:
        assert catalog.list_artifacts("20260101T000000Z-00000000") == []
        assert catalog.url == plain


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("not a url", "not a database URL"),
        ("oracle://scott:tiger@db/orcl", "unsupported database 'oracle'"),
    ],
)
def test_unusable_urls_are_catalog_errors(url: str, reason: str) -> None:
    """Unparseable URLs and unsupported databases are CatalogErrors, password masked."""
    with pytest.raises(CatalogError, match=reason) as caught:
        open_catalog(url)
    assert "tiger" not in str(caught.value)


def test_default_sqlite_url_lives_in_a_private_state_dir(tmp_path: Path) -> None:
    """default_sqlite_url creates the state dir 0700 and points at catalog.sqlite3 inside it."""
    state_dir = tmp_path / "state" / "bbr-orchestrator"

    url = default_sqlite_url(state_dir)

    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert make_url(url).database == str(state_dir / "catalog.sqlite3")
    upgrade(url)
    with open_catalog(url) as catalog:
        assert catalog.list_artifacts("20260101T000000Z-00000000") == []
    assert (state_dir / "catalog.sqlite3").is_file()


def test_sqlite_catalog_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    """SQLite catalogs run in WAL mode with foreign keys on and a busy timeout."""
    url = default_sqlite_url(tmp_path)
    upgrade(url)
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            pragmas = [
                conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
    finally:
        db.dispose()
    assert pragmas[0] == "wal"
    assert pragmas[1] == 1
    assert int(pragmas[2] or 0) >= 5000
