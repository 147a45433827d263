"""Catalog URLs, engines, transactions: driver mapping, SQLite pragmas, retries, error translation.

Passwords never leave this module: every URL that reaches an error or a log is rendered
with the password masked, and the password is scrubbed from driver messages.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import structlog
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError

from bbr_orchestrator.errors import CatalogError

T = TypeVar("T")

log = structlog.get_logger(__name__)

#: Plain backend names map to the drivers bbr-orchestrator ships with.
_DEFAULT_DRIVERS: Final = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_SUPPORTED_BACKENDS: Final = frozenset({"sqlite", "postgresql", "mysql", "mariadb"})

CONNECT_TIMEOUT_SECONDS: Final = 10
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
#: MySQL/MariaDB errors worth re-running the transaction for: deadlock (also how Galera
#: reports a certification conflict) and lock wait timeout.
_MYSQL_RETRYABLE: Final = frozenset({1213, 1205})
#: PostgreSQL: serialization_failure, deadlock_detected.
_PG_RETRYABLE: Final = frozenset({"40001", "40P01"})
RETRY_ATTEMPTS: Final = 4
RETRY_BASE_DELAY_SECONDS: Final = 0.05

# Greedy up to the last "@": a password with a raw "@" in it is still hidden entirely.
_PASSWORD_IN_URL = re.compile(r"(?P<head>://[^:/@\s]*:).*@")
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&][^=&]*pass[^=&]*=)[^&]*", re.IGNORECASE)


def mask_url(url: str | URL) -> str:
    """The URL as text with passwords (userinfo and ``?...password=``) replaced by ``***``.

    Works on text that is not a valid URL too, so it is safe for error messages.
    """
    if isinstance(url, URL):
        url = url.render_as_string(hide_password=False)
    url = _PASSWORD_IN_URL.sub(r"\g<head>***@", url)
    return _PASSWORD_IN_QUERY.sub(r"\g<head>***", url)


def _secrets(url: URL) -> list[str]:
    """Password-like values of the URL, to scrub from driver messages."""
    found = [str(url.password)] if url.password else []
    for key, value in url.query.items():
        if "pass" in key.lower():
            found.extend([value] if isinstance(value, str) else value)
    return [s for s in found if s]


def parse_url(url: str) -> URL:
    """Parse a catalog URL and pick the bundled driver for plain ``postgresql://``/``mysql://``."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CatalogError(mask_url(url), "not a database URL") from exc
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in _SUPPORTED_BACKENDS:
        raise CatalogError(
            mask_url(parsed),
            f"unsupported database {backend!r}; use sqlite, postgresql or mysql/mariadb",
        )
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` filled in, escaped as URLs need (for a password from a secret)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CatalogError(mask_url(url), "not a database URL") from exc
    return parsed.set(password=password).render_as_string(hide_password=False)


def default_sqlite_url(state_dir: Path) -> str:
    """A SQLite catalog file in the state directory (created with mode 0700 if missing)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return URL.create("sqlite", database=str(state_dir / "catalog.sqlite3")).render_as_string()


class Database:
    """One engine plus the rules for using it: transactions, retries and error translation."""

    def __init__(self, url: str) -> None:
        #: The URL as configured, safe to show: passwords masked.
        self.url = mask_url(url)
        parsed = parse_url(url)
        self._secrets = _secrets(parsed)
        try:
            self.engine = _create_engine(parsed)
        except (SQLAlchemyError, ImportError) as exc:
            raise self.error(exc) from exc

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()

    def error(self, exc: BaseException, what: str = "") -> CatalogError:
        """A ``CatalogError`` for ``exc`` that names this catalog and never shows the password."""
        reason = _describe(exc)
        for secret in self._secrets:
            reason = reason.replace(secret, "***")
        return CatalogError(self.url, f"{what}: {reason}" if what else reason)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A plain connection (no transaction started), with errors translated."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise self.error(exc) from exc

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a read transaction."""
        return self._run(work, write=False)

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction, re-running it on deadlocks and lock timeouts.

        ``work`` must therefore be repeatable (no consumed iterators, no side effects outside
        the transaction). ``IntegrityError`` is re-raised untranslated for the caller to explain.
        """
        return self._run(work, write=True)

    def _run(self, work: Callable[[Connection], T], *, write: bool) -> T:
        attempt = 1
        while True:
            try:
                with self.engine.connect() as conn:
                    if write:
                        conn.execution_options(bbr_write=True)
                    with conn.begin():
                        return work(conn)
            except IntegrityError:
                raise
            except DBAPIError as exc:
                if attempt == RETRY_ATTEMPTS or not self._retryable(exc):
                    raise self.error(exc) from exc
                delay = RETRY_BASE_DELAY_SECONDS * 2 ** (attempt - 1) * (1 + random.random())  # noqa: S311
                log.warning(
                    "catalog_transaction_retried",
                    attempt=attempt,
                    of=RETRY_ATTEMPTS,
                    delay_seconds=round(delay, 3),
                    reason=_describe(exc),
                )
                time.sleep(delay)
                attempt += 1
            except SQLAlchemyError as exc:
                raise self.error(exc) from exc

    def _retryable(self, exc: DBAPIError) -> bool:
        orig: Any = exc.orig
        if self.dialect in ("mysql", "mariadb"):
            args: tuple[Any, ...] = getattr(orig, "args", ())
            return bool(args) and args[0] in _MYSQL_RETRYABLE
        if self.dialect == "postgresql":
            return getattr(orig, "sqlstate", None) in _PG_RETRYABLE
        return False


def _describe(exc: BaseException) -> str:
    """The driver's own message when there is one (no SQL text or parameters)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        orig = exc.orig
        message = " ".join(str(orig).split())
        return f"{type(orig).__name__}: {message}" if message else type(orig).__name__
    if isinstance(exc, ImportError):
        return f"database driver not installed ({exc.name or exc})"
    return " ".join(str(exc).split()) or type(exc).__name__


def _create_engine(url: URL) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(url)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": "bbr-orchestrator",
            },
        )
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_recycle=3600,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


def _configure_sqlite(engine: Engine) -> None:
    """Foreign keys, WAL, a busy timeout, and real transactions.

    The ``sqlite3`` module's legacy mode starts no transaction for SELECT, so we emit BEGIN
    ourselves: write transactions take the write lock up front (``BEGIN IMMEDIATE``), which
    makes "read then write" (the log's next seq) wait for other writers instead of failing
    with "database is locked".
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("bbr_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def ping(db: Database) -> None:
    """Connect once, so a wrong URL fails now rather than at the first query."""
    with db.connect() as conn:
        conn.execute(text("SELECT 1"))
