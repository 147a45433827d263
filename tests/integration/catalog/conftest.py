"""Real databases for the catalog contract suite: SQLite, PostgreSQL and MariaDB.

Each test session (each xdist worker) creates its own throwaway databases with random names
and drops them at the end. The servers must be running (127.0.0.1:5432 and :3306); when one
is not reachable the tests fail with a message saying so. Override the admin URLs with
``BBR_TEST_POSTGRES_URL`` / ``BBR_TEST_MARIADB_URL``.

``catalog`` is a ``SqlCatalog`` on each backend; ``any_catalog`` adds the unit tests'
``MemoryCatalog``, so contract tests written against it hold the fake to the same behaviour.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog, upgrade
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import (
    artifacts,
    job_firings,
    restore_points,
    run_log,
    runs,
)
from bbr_orchestrator.core.models import (
    NewRestorePoint,
    NewRun,
    RunKind,
    TargetKind,
    Trigger,
    new_run_id,
)
from bbr_orchestrator.ports import Catalog
from tests.unit.fakes import MemoryCatalog

BACKEND_NAMES = ("sqlite", "postgresql", "mariadb")
BACKENDS = (
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
)

_POSTGRES_ADMIN_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
_MARIADB_ADMIN_URLS = ("mysql+pymysql://root@127.0.0.1:3306/",)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@dataclass
class Server:
    """A database server on which the suite creates (and later drops) throwaway databases."""

    backend: str
    admin_url: str | None = None
    sqlite_dir: Path | None = None
    _engine: Engine | None = None
    created: list[str] = field(default_factory=list)

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        name = f"bbr_test_{_worker()}_{secrets.token_hex(4)}"
        if self.backend == "sqlite":
            assert self.sqlite_dir is not None
            return f"sqlite:///{self.sqlite_dir / name}.sqlite3"
        assert self._engine is not None and self.admin_url is not None
        with self._engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        if self.backend == "sqlite" or name not in self.created:
            return
        assert self._engine is not None
        force = " WITH (FORCE)" if self.backend == "postgresql" else ""
        with self._engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
        self.created.remove(name)

    def close(self) -> None:
        if self._engine is None:
            return
        for name in list(self.created):
            self.drop_database(make_url(self.admin_url or "").set(database=name).render_as_string())
        self._engine.dispose()


def _connect_server(backend: str, candidates: tuple[str, ...], env: str) -> Server:
    urls = (os.environ[env],) if os.environ.get(env) else candidates
    problems = []
    for url in urls:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            engine.dispose()
            problems.append(f"  {make_url(url).render_as_string()}: {exc}")
            continue
        return Server(backend, admin_url=url, _engine=engine)
    pytest.fail(
        f"the catalog contract suite needs a {backend} server and none answered:\n"
        + "\n".join(problems)
        + f"\nstart it (see .ci/run) or point {env} at an admin URL",
        pytrace=False,
    )


class Servers:
    """The three backends, connected on first use."""

    def __init__(self, sqlite_dir: Path) -> None:
        self._sqlite_dir = sqlite_dir
        self._servers: dict[str, Server] = {}

    def get(self, backend: str) -> Server:
        if backend not in self._servers:
            if backend == "sqlite":
                self._servers[backend] = Server("sqlite", sqlite_dir=self._sqlite_dir)
            elif backend == "postgresql":
                self._servers[backend] = _connect_server(
                    backend, _POSTGRES_ADMIN_URLS, "BBR_TEST_POSTGRES_URL"
                )
            else:
                self._servers[backend] = _connect_server(
                    backend, _MARIADB_ADMIN_URLS, "BBR_TEST_MARIADB_URL"
                )
        return self._servers[backend]

    def close(self) -> None:
        for server in self._servers.values():
            server.close()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    all_servers = Servers(tmp_path_factory.mktemp("sqlite-catalogs"))
    yield all_servers
    all_servers.close()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


CreateDatabase = Callable[[str], str]


@pytest.fixture
def create_database(servers: Servers) -> Iterator[CreateDatabase]:
    """``create_database(backend) -> url``: fresh empty databases, dropped after the test."""
    made: list[tuple[Server, str]] = []

    def create(backend: str) -> str:
        server = servers.get(backend)
        url = server.create_database()
        made.append((server, url))
        return url

    yield create
    for server, url in made:
        server.drop_database(url)


@pytest.fixture
def empty_url(create_database: CreateDatabase, backend: str) -> str:
    """A fresh empty database of the current backend, dropped after the test."""
    return create_database(backend)


class MigratedDatabases:
    """One database per backend and session, upgraded to head on first use; tests share them."""

    def __init__(self, servers: Servers) -> None:
        self._servers = servers
        self._urls: dict[str, str] = {}

    def url(self, backend: str) -> str:
        if backend not in self._urls:
            url = self._servers.get(backend).create_database()
            upgrade(url)
            self._urls[backend] = url
        return self._urls[backend]


@pytest.fixture(scope="session")
def migrated(servers: Servers) -> MigratedDatabases:
    return MigratedDatabases(servers)


@pytest.fixture(scope="session")
def migrated_url(migrated: MigratedDatabases, backend: str) -> str:
    """The session's migrated database of the current backend (see ``catalog``)."""
    return migrated.url(backend)


def empty_catalog(url: str) -> None:
    """Delete every row of every catalog table (children first)."""
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            for table in (job_firings, run_log, artifacts, runs, restore_points):
                conn.execute(delete(table))
    finally:
        db.dispose()


@pytest.fixture
def catalog(migrated_url: str) -> Iterator[SqlCatalog]:
    """An open catalog on the session's migrated database, emptied before the test."""
    empty_catalog(migrated_url)
    with open_catalog(migrated_url) as opened:
        yield opened


@pytest.fixture(params=[*BACKENDS, pytest.param("memory", id="memory")])
def any_catalog(request: pytest.FixtureRequest, migrated: MigratedDatabases) -> Iterator[Catalog]:
    """The port on every SQL backend (emptied first) and on the unit tests' ``MemoryCatalog``,
    so the fake is held to the same contract as the real thing."""
    if request.param == "memory":
        yield MemoryCatalog()
        return
    url = migrated.url(str(request.param))
    empty_catalog(url)
    with open_catalog(url) as opened:
        yield opened


T0 = datetime(2026, 11, 27, 3, 53, 53, 123456, tzinfo=UTC)

NewRunFactory = Callable[..., NewRun]


@pytest.fixture
def new_run() -> NewRunFactory:
    """Build a ``NewRun``: a random id at ``created_at`` (default ``T0``), fields overridable."""

    def build(created_at: datetime = T0, **fields: object) -> NewRun:
        values: dict[str, object] = {
            "id": new_run_id(created_at, secrets.token_hex(4)),
            "kind": RunKind.BACKUP,
            "target": "cf",
            "target_kind": TargetKind.DEPLOYMENT,
            "trigger": Trigger.SCHEDULE,
            "triggered_by": "daemon:jumpbox-1",
            "created_at": created_at,
            "plan": "nightly-cf",
            "daemon_instance": "jumpbox-1",
        }
        values.update(fields)
        return NewRun(**values)  # type: ignore[arg-type]

    return build


NewPointFactory = Callable[..., NewRestorePoint]


@pytest.fixture
def new_point() -> NewPointFactory:
    """Build a ``NewRestorePoint``: a random id at ``created_at`` (default ``T0``), plan
    ``nightly-cf`` fired at ``scheduled_for`` (default ``T0`` on the minute), fields overridable."""

    def build(created_at: datetime = T0, **fields: object) -> NewRestorePoint:
        values: dict[str, object] = {
            "id": new_run_id(created_at, secrets.token_hex(4)),
            "plan": "nightly-cf",
            "trigger": Trigger.SCHEDULE,
            "triggered_by": "daemon:jumpbox-1",
            "created_at": created_at,
            "scheduled_for": T0.replace(second=0, microsecond=0),
            "daemon_instance": "jumpbox-1",
        }
        values.update(fields)
        return NewRestorePoint(**values)  # type: ignore[arg-type]

    return build
