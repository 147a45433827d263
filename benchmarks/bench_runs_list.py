"""How fast is ``list_runs`` over a big catalog, with and without the ``runs`` indexes?

Fills a throwaway catalog per backend with N runs (default 100,000: ~10 plans, ~50 targets,
every kind and state in realistic proportions, a year of timestamps), times ``list_runs`` with
each filter (median of several repetitions, in milliseconds), then drops the secondary
indexes of ``runs`` on the same data and times the same queries again as the baseline.

    .venv/bin/python benchmarks/bench_runs_list.py                      # all three backends
    .venv/bin/python benchmarks/bench_runs_list.py --runs 20000 --backends sqlite

PostgreSQL and MariaDB must be running (defaults: 127.0.0.1:5432 user postgres, 127.0.0.1:3306
user root); the script creates and drops its own ``bbr_bench_*`` databases.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog, upgrade
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import runs
from bbr_orchestrator.core.models import (
    RunFilter,
    RunKind,
    RunState,
    TargetKind,
    Trigger,
    new_run_id,
)

END = datetime(2026, 11, 27, tzinfo=UTC)
YEAR = timedelta(days=365)
KIND_WEIGHTS = {
    RunKind.BACKUP: 55,
    RunKind.PRE_BACKUP_CHECK: 25,
    RunKind.VERIFY: 10,
    RunKind.BACKUP_CLEANUP: 5,
    RunKind.DRILL: 3,
    RunKind.RESTORE: 1,
    RunKind.RESTORE_CLEANUP: 1,
}
STATE_WEIGHTS = {
    RunState.SUCCEEDED: 900,
    RunState.FAILED: 70,
    RunState.CANCELLED: 15,
    RunState.INTERRUPTED: 14,
    RunState.RUNNING: 1,
}
TARGETS = [f"director-{i:02d}" for i in range(5)] + [f"deployment-{i:02d}" for i in range(45)]
PLANS = [f"plan-{i:02d}" for i in range(10)]


def make_rows(count: int, seed: int = 42) -> list[dict[str, Any]]:
    """``count`` runs in realistic proportions; deterministic for a given seed."""
    rng = random.Random(seed)
    target_weights = [1 / (i + 1) ** 0.7 for i in range(len(TARGETS))]  # a few busy targets
    targets = rng.choices(TARGETS, target_weights, k=count)
    kinds = rng.choices(list(KIND_WEIGHTS), list(KIND_WEIGHTS.values()), k=count)
    states = rng.choices(list(STATE_WEIGHTS), list(STATE_WEIGHTS.values()), k=count)
    rows = []
    for target, kind, state in zip(targets, kinds, states, strict=True):
        created = END - YEAR * rng.random()
        scheduled = rng.random() < 0.9
        started = created + timedelta(seconds=rng.randint(0, 30))
        finished = started + timedelta(seconds=rng.randint(60, 7200))
        final = state not in (RunState.RUNNING, RunState.QUEUED)
        rows.append(
            {
                "id": new_run_id(created, f"{rng.getrandbits(32):08x}"),
                "kind": kind.value,
                "target": target,
                "target_kind": (
                    TargetKind.DIRECTOR if target.startswith("director") else TargetKind.DEPLOYMENT
                ).value,
                "plan": rng.choice(PLANS) if scheduled else None,
                "trigger_type": (Trigger.SCHEDULE if scheduled else Trigger.OPERATOR).value,
                "triggered_by": "daemon:jumpbox-1" if scheduled else "alice@jumpbox",
                "state": state.value,
                "created_at": created,
                "started_at": started,
                "finished_at": finished if final else None,
                "heartbeat_at": finished if final else started,
                "exit_code": (0 if state is RunState.SUCCEEDED else 1) if final else None,
                "outcome": state.value if final else None,
                "bytes_total": rng.randint(10**6, 10**11) if kind is RunKind.BACKUP else None,
                "daemon_instance": "jumpbox-1",
                "log_object_key": None,
            }
        )
    return rows


def queries(rows: list[dict[str, Any]]) -> dict[str, Callable[[SqlCatalog], object]]:
    """The timed calls; filter values picked from the data (one busy, one middling target)."""
    mid = END - YEAR / 2
    some_id = str(rows[len(rows) // 2]["id"])
    return {
        "newest 50 (no filter)": lambda c: c.list_runs(RunFilter()),
        "plan": lambda c: c.list_runs(RunFilter(plan="plan-03")),
        "target (busy)": lambda c: c.list_runs(RunFilter(target="director-00")),
        "target (quiet)": lambda c: c.list_runs(RunFilter(target="deployment-40")),
        "kind=restore (1%)": lambda c: c.list_runs(RunFilter(kind=RunKind.RESTORE)),
        "state=failed (7%)": lambda c: c.list_runs(RunFilter(state=RunState.FAILED)),
        "state=running (0.1%)": lambda c: c.list_runs(RunFilter(state=RunState.RUNNING)),
        "time range (1 week, mid-year)": lambda c: c.list_runs(
            RunFilter(since=mid, until=mid + timedelta(days=7))
        ),
        "plan + state=failed": lambda c: c.list_runs(
            RunFilter(plan="plan-03", state=RunState.FAILED)
        ),
        "target + kind + last 30 days": lambda c: c.list_runs(
            RunFilter(target="deployment-10", kind=RunKind.BACKUP, since=END - timedelta(days=30))
        ),
        "get_run by id prefix": lambda c: c.get_run(some_id[:-4]),
    }


def median_ms(call: Callable[[], object], reps: int) -> float:
    call()  # warm the cache and the connection pool
    timings = []
    for _ in range(reps):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


@dataclass
class Backend:
    name: str
    admin_url: str | None  # None: SQLite

    @contextmanager
    def database(self) -> Iterator[str]:
        """A throwaway database URL, dropped afterwards."""
        if self.admin_url is None:
            with tempfile.TemporaryDirectory(prefix="bbr-bench-") as tmp:
                yield f"sqlite:///{Path(tmp) / 'catalog.sqlite3'}"
            return
        name = f"bbr_bench_{secrets.token_hex(4)}"
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        try:
            yield make_url(self.admin_url).set(database=name).render_as_string(False)
        finally:
            force = " WITH (FORCE)" if self.name == "postgresql" else ""
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
            admin.dispose()


def analyze(db: Database) -> None:
    statement = {"sqlite": "ANALYZE", "postgresql": "ANALYZE runs"}.get(
        db.dialect, "ANALYZE TABLE runs"
    )
    with db.engine.connect() as conn:
        conn.exec_driver_sql(statement).close()
        conn.commit()


def bench_backend(
    backend: Backend, rows: list[dict[str, Any]], reps: int
) -> dict[str, tuple[float, float]]:
    """Per query: (median ms with the indexes, median ms without)."""
    results: dict[str, list[float]] = {}
    with backend.database() as url:
        upgrade(url)
        db = Database(url)
        try:
            started = time.perf_counter()
            with db.engine.begin() as conn:
                for start in range(0, len(rows), 5000):
                    conn.execute(insert(runs), rows[start : start + 5000])
            elapsed = time.perf_counter() - started
            print(f"  {backend.name}: {len(rows):,} runs inserted in {elapsed:.1f} s")
            for phase in ("indexed", "no index"):
                if phase == "no index":
                    with db.engine.begin() as conn:
                        # The list indexes only: MySQL keeps an index on a foreign key column.
                        for index in runs.indexes:
                            if not any(column.foreign_keys for column in index.columns):
                                index.drop(conn)
                analyze(db)
                with open_catalog(url) as catalog:
                    for label, call in queries(rows).items():
                        timing = median_ms(partial(call, catalog), reps)
                        results.setdefault(label, []).append(timing)
        finally:
            db.dispose()
    return {label: (t[0], t[1]) for label, t in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs to insert")
    parser.add_argument("--reps", type=int, default=11, help="timed repetitions per query")
    parser.add_argument("--backends", default="sqlite,postgresql,mariadb")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--mariadb-url", default="mysql+pymysql://root@127.0.0.1:3306/")
    args = parser.parse_args()

    admin = {"sqlite": None, "postgresql": args.postgres_url, "mariadb": args.mariadb_url}
    rows = make_rows(args.runs)
    print(f"list_runs over {args.runs:,} runs, median of {args.reps} (ms), limit 50")
    for name in args.backends.split(","):
        results = bench_backend(Backend(name, admin[name]), rows, args.reps)
        print(f"\n{name}\n")
        print(f"| {'query':<32} | {'indexed':>9} | {'no index':>9} | {'speed-up':>8} |")
        print(f"|{'-' * 34}|{'-' * 10}:|{'-' * 10}:|{'-' * 9}:|")
        for label, (indexed, bare) in results.items():
            print(f"| {label:<32} | {indexed:>9.2f} | {bare:>9.2f} | {bare / indexed:>7.0f}x |")


if __name__ == "__main__":
    main()
