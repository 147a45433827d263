"""What do the daemon's catalog claims cost per restore-point step?

A step's catalog lifecycle is: create the run QUEUED, start it (compare-and-set to RUNNING,
which also claims its target through the unique ``active_target`` column), finish it (CAS to
SUCCEEDED, releasing the target). This times that lifecycle per step (median of several
batches) on each backend, then drops the ``uq_runs_active_target`` constraint on the same
database and times it again: the baseline, i.e. what the cross-daemon claim adds. Last, 8
threads (each its own connection pool, as 8 daemons would) race for 4 targets: steps per
second and how often a start found its target busy.

    .venv/bin/python benchmarks/bench_claims.py                       # sqlite, postgresql, mariadb
    .venv/bin/python benchmarks/bench_claims.py --steps 200 --backends sqlite
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runs_list import Backend

from bbr_orchestrator.actions.run_claim import Requester, RunRequest, new_run, start_run
from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog, upgrade
from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.core.models import RunKind, RunState, RunUpdate, TargetKind, Trigger
from bbr_orchestrator.errors import TargetBusy

BACKENDS = {
    "sqlite": Backend("sqlite", None),
    "postgresql": Backend("postgresql", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mariadb": Backend("mariadb", "mysql+pymysql://root@127.0.0.1:3306/"),
}
CLOCK = SystemClock()
WHO = Requester(Trigger.SCHEDULE, "bench", "bench@host:1")


def lifecycle(catalog: SqlCatalog, target: str) -> bool:
    """One step through the catalog; False when the target was busy (the run stays queued)."""
    request = RunRequest(RunKind.BACKUP, target, TargetKind.DIRECTOR, "bench")
    queued = catalog.create_run(new_run(CLOCK, request, WHO))
    try:
        running = start_run(catalog, CLOCK, queued)
    except TargetBusy:
        catalog.transition(
            queued.id, [RunState.QUEUED], RunState.CANCELLED, RunUpdate(finished_at=CLOCK.now())
        )
        return False
    catalog.transition(
        running.id, [RunState.RUNNING], RunState.SUCCEEDED, RunUpdate(finished_at=CLOCK.now())
    )
    return True


def per_step_ms(catalog: SqlCatalog, steps: int, batches: int, tag: str) -> float:
    """Median over batches of (batch time / steps), in milliseconds."""
    lifecycle(catalog, f"warm-{tag}")
    timings = []
    for batch in range(batches):
        started = time.perf_counter()
        for i in range(steps):
            lifecycle(catalog, f"{tag}-{batch}-{i % 20}")
        timings.append((time.perf_counter() - started) * 1000 / steps)
    return statistics.median(timings)


def race(url: str, threads: int, steps: int, targets: int) -> tuple[float, int]:
    """``threads`` catalogs race through ``steps`` lifecycles each on ``targets`` targets."""
    busy = [0] * threads
    catalogs = [open_catalog(url) for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(steps):
            while not lifecycle(catalogs[n], f"shared-{(n + i) % targets}"):
                busy[n] += 1
                time.sleep(0.001)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    for catalog in catalogs:
        catalog.close()
    return threads * steps / elapsed, sum(busy)


def drop_claim(catalog: SqlCatalog, dialect: str) -> None:
    """Remove the unique claim on active_target (the baseline: no cross-daemon claim)."""
    statement = {
        "sqlite": "DROP INDEX IF EXISTS uq_runs_active_target",
        "postgresql": "ALTER TABLE runs DROP CONSTRAINT uq_runs_active_target",
    }.get(dialect, "ALTER TABLE runs DROP INDEX uq_runs_active_target")
    engine = catalog._db.engine
    with engine.connect() as conn:
        conn.execute(text(statement))
        conn.commit()


def bench(name: str, steps: int, batches: int, out: Callable[[str], None]) -> None:
    backend = BACKENDS[name]
    with backend.database() as url:
        upgrade(url)
        with open_catalog(url) as catalog:
            claimed = per_step_ms(catalog, steps, batches, "claimed")
            rate, busy = race(url, threads=8, steps=max(steps // 8, 10), targets=4)
            drop_claim(catalog, catalog._db.dialect)
            baseline = per_step_ms(catalog, steps, batches, "baseline")
        out(
            f"{name:<11} {claimed:>10.2f} {baseline:>12.2f} {claimed - baseline:>+9.2f}"
            f" {rate:>12.0f} {busy:>10}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per batch")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgresql,mariadb")
    args = parser.parse_args()
    print(
        f"per-step catalog lifecycle (create, claim+start, finish): median of {args.batches} "
        f"batches of {args.steps} steps; race: 8 threads x {max(args.steps // 8, 10)} steps "
        "on 4 targets"
    )
    print(
        f"{'backend':<11} {'claimed ms':>10} {'baseline ms':>12} {'claim':>9} "
        f"{'race steps/s':>12} {'busy hits':>10}"
    )
    for name in args.backends.split(","):
        bench(name.strip(), args.steps, args.batches, print)


if __name__ == "__main__":
    main()
