"""How long does ``run_stats`` (the metrics' one catalog query) take over a big catalog, against
streaming every finished run into Python and aggregating there?

For each backend and each size (default 10,000 and 100,000 runs: the data of
``bench_runs_list.py``, ~10 plans x 50 targets x 7 kinds, a year of history), fills a
throwaway catalog, ``ANALYZE``s, and times, as the median of ``--reps`` calls after a warm-up:

* ``run_stats``: ``SqlCatalog.run_stats`` with the exporter's 10 duration bounds (one
  statement: GROUP BY + window functions, durations computed by the database);
* ``naive``: the baseline, ``SELECT plan, target, kind, state, outcome, started_at,
  finished_at, bytes_total, id FROM runs WHERE state NOT IN (active)`` through the same
  engine, every row turned into Python values and folded into the same ``RunStats``.

Both results are compared: the script stops if they differ. With ``--try-index`` it then adds
a candidate covering index on ``runs (plan, target, kind, state, outcome, finished_at,
started_at, bytes_total)`` (the totals' GROUP BY in index order, no table reads) and times
``run_stats`` again: the case for, or against, a migration.

    .venv/bin/python benchmarks/bench_run_stats.py                      # all three backends
    .venv/bin/python benchmarks/bench_run_stats.py --sizes 10000 --backends sqlite --reps 5

PostgreSQL and MariaDB must be running (defaults: 127.0.0.1:5432 user postgres, 127.0.0.1:3306
user root); the script creates and drops its own ``bbr_bench_*`` databases.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runs_list import PLANS, TARGETS, Backend, analyze, make_rows

from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog, upgrade
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import runs
from bbr_orchestrator.core.models import ACTIVE_STATES, RunKind, RunState, RunStats

BOUNDS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400)
ADMIN_URLS = {
    "sqlite": None,
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/",
}
CANDIDATE_INDEX = (
    "CREATE INDEX ix_bench_runs_stats ON runs "
    "(plan, target, kind, state, outcome, finished_at, started_at, bytes_total)"
)


def flavoured_rows(count: int) -> list[dict[str, Any]]:
    """``bench_runs_list``'s runs, each target in one plan (as configs do: 50 targets over 10
    plans, so ~700 ``(plan, target, kind)`` series rather than every plan on every target), with
    bbr's outcome names on some failures, sub-second durations, and cancelled runs that never
    started (what run_stats has to tell apart)."""
    rows = make_rows(count)
    plan_of = {target: PLANS[i % len(PLANS)] for i, target in enumerate(TARGETS)}
    for i, row in enumerate(rows):
        if row["plan"] is not None:
            row["plan"] = plan_of[row["target"]]
        if row["finished_at"] is not None:
            row["finished_at"] += timedelta(microseconds=(i * 7919) % 1_000_000)
        if row["state"] == RunState.FAILED.value and i % 5 == 0:
            row["outcome"] = "unlock-failed" if i % 2 else "lock-failed+unlock-failed"
        elif row["state"] == RunState.CANCELLED.value and i % 2 == 0:
            row["outcome"], row["started_at"] = None, None
    return rows


@dataclass
class _Acc:
    """One group's running totals in the naive baseline."""

    finished: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    latest: tuple[datetime, str] | None = None
    last_outcome: str | None = None
    success: tuple[datetime, str] | None = None
    success_bytes: int | None = None
    bytes_ok: int = 0
    unlock_failed_at: datetime | None = None
    micros: list[int] = field(default_factory=list)


def naive_run_stats(db: Database, bounds: tuple[float, ...]) -> list[RunStats]:
    """The baseline: every finished run into Python, aggregated there."""
    active = sorted(s.value for s in ACTIVE_STATES)
    query = select(
        runs.c.plan,
        runs.c.target,
        runs.c.kind,
        runs.c.state,
        runs.c.outcome,
        runs.c.started_at,
        runs.c.finished_at,
        runs.c.bytes_total,
        runs.c.id,
    ).where(runs.c.state.not_in(active))

    def work(conn: Connection) -> dict[tuple[str | None, str, str], _Acc]:
        groups: dict[tuple[str | None, str, str], _Acc] = {}
        for plan, target, kind, state, outcome, started, finished, size, run_id in conn.execute(
            query
        ):
            acc = groups.get((plan, target, kind))
            if acc is None:
                acc = groups[(plan, target, kind)] = _Acc()
            label = outcome if outcome is not None else state
            acc.finished += 1
            acc.outcomes[label] = acc.outcomes.get(label, 0) + 1
            if state == RunState.SUCCEEDED.value:
                acc.bytes_ok += size or 0
            if finished is None:
                continue
            order = (finished, run_id)
            if acc.latest is None or order > acc.latest:
                acc.latest, acc.last_outcome = order, label
            if state == RunState.SUCCEEDED.value and (acc.success is None or order > acc.success):
                acc.success, acc.success_bytes = order, size
            if "unlock-failed" in label:
                acc.unlock_failed_at = max(finished, acc.unlock_failed_at or finished)
            if started is not None:
                acc.micros.append((finished - started) // timedelta(microseconds=1))
        return groups

    stats = [
        RunStats(
            plan=plan,
            target=target,
            kind=RunKind(kind),
            finished=acc.finished,
            outcome_counts=tuple(sorted(acc.outcomes.items())),
            last_attempt_at=None if acc.latest is None else acc.latest[0],
            last_outcome=acc.last_outcome,
            last_success_at=None if acc.success is None else acc.success[0],
            last_success_bytes=acc.success_bytes,
            bytes_succeeded_total=acc.bytes_ok,
            last_unlock_failed_at=acc.unlock_failed_at,
            duration_count=len(acc.micros),
            duration_sum_seconds=sum(acc.micros) / 1_000_000,
            duration_buckets=tuple(sum(m / 1_000_000 <= b for m in acc.micros) for b in bounds),
        )
        for (plan, target, kind), acc in db.read(work).items()
    ]
    return sorted(stats, key=lambda s: (s.plan or "", s.target, s.kind.value, s.plan is not None))


def medians_ms(calls: Sequence[Callable[[], object]], reps: int) -> list[float]:
    """Median wall time of each call (ms) after one warm-up call each. The calls take turns in
    every round, so a burst of load elsewhere on the machine hits one run of each."""
    for call in calls:
        call()  # warm the caches and the connection pool
    timings: list[list[float]] = [[] for _ in calls]
    for _ in range(reps):
        for call, times in zip(calls, timings, strict=True):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
    return [statistics.median(times) for times in timings]


def add_candidate_index(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(CANDIDATE_INDEX))


def bench(name: str, admin_url: str | None, size: int, reps: int, try_index: bool) -> list[str]:
    """One table line: size, groups, run_stats ms, naive ms, speed-up (and with the index)."""
    rows = flavoured_rows(size)
    bounds = tuple(float(b) for b in BOUNDS)
    with Backend(name, admin_url).database() as url:
        upgrade(url)
        db = Database(url)
        try:
            with db.engine.begin() as conn:
                for start in range(0, len(rows), 5000):
                    conn.execute(insert(runs), rows[start : start + 5000])
            analyze(db)
            catalog: SqlCatalog
            with open_catalog(url) as catalog:
                ours = catalog.run_stats(bounds)
                if ours != naive_run_stats(db, bounds):
                    raise SystemExit(f"{name} {size}: run_stats and the naive baseline differ")
                fast, slow = medians_ms(
                    [lambda: catalog.run_stats(bounds), lambda: naive_run_stats(db, bounds)], reps
                )
                cells = [
                    f"{name:<10}",
                    f"{size:>9,}",
                    f"{len(ours):>6}",
                    f"{fast:>9.1f}",
                    f"{slow:>9.1f}",
                    f"{slow / fast:>7.1f}x",
                ]
                if try_index:
                    add_candidate_index(db)
                    analyze(db)
                    (indexed,) = medians_ms([lambda: catalog.run_stats(bounds)], reps)
                    cells.append(f"{indexed:>9.1f}")
        finally:
            db.dispose()
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="runs per catalog, comma-separated")
    parser.add_argument("--reps", type=int, default=7, help="timed calls per figure")
    parser.add_argument("--backends", default="sqlite,postgresql,mariadb")
    parser.add_argument("--postgres-url", default=ADMIN_URLS["postgresql"])
    parser.add_argument("--mariadb-url", default=ADMIN_URLS["mariadb"])
    parser.add_argument(
        "--try-index",
        action="store_true",
        help="also time run_stats with a covering index for the totals query",
    )
    args = parser.parse_args()

    admin = {"sqlite": None, "postgresql": args.postgres_url, "mariadb": args.mariadb_url}
    print(f"run_stats with {len(BOUNDS)} bounds: median of {args.reps} calls (ms)\n")
    header = ["backend   ", "     runs", "groups", "run_stats", "    naive", "speed-up"]
    if args.try_index:
        header.append("  +index")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("-" * (len(h) + 1) + ":" for h in header) + "|")
    for name in args.backends.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            cells = bench(name, admin[name], size, args.reps, args.try_index)
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
