"""Claims under contention: daemons (each with its own connection pool) racing for the same
firing, the same target, the same stale run. Exactly one wins on every backend."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import pytest

from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog
from bbr_orchestrator.core.models import (
    NewRestorePoint,
    NewRun,
    RunFilter,
    RunKind,
    RunState,
    RunUpdate,
)
from bbr_orchestrator.errors import FiringTaken, TargetBusy

NewRunFactory = Callable[..., NewRun]
NewPointFactory = Callable[..., NewRestorePoint]
T = TypeVar("T")
DAEMONS = 8
BASE = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def daemons(catalog: SqlCatalog, migrated_url: str) -> Iterator[list[SqlCatalog]]:
    """Eight catalogs on the (emptied) test database, one per simulated daemon."""
    with ExitStack() as stack:
        yield [stack.enter_context(open_catalog(migrated_url)) for _ in range(DAEMONS)]


def _race(attempts: list[Callable[[], T]]) -> list[T | Exception]:
    """Run the attempts at once (one thread each, released together); results in order."""
    barrier = threading.Barrier(len(attempts))
    results: list[T | Exception] = [RuntimeError("did not finish")] * len(attempts)

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            results[i] = attempts[i]()
        except Exception as exc:  # noqa: BLE001 -- every outcome is recorded and checked
            results[i] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(attempts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def _split(results: list[T | Exception]) -> tuple[list[T], list[Exception]]:
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    return won, lost


def test_one_daemon_claims_a_firing(
    daemons: list[SqlCatalog], catalog: SqlCatalog, new_point: NewPointFactory
) -> None:
    """Eight daemons claiming one (plan, scheduled_for): one restore point, seven FiringTaken."""
    fired = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    points = [new_point(scheduled_for=fired, daemon_instance=f"d{i}") for i in range(DAEMONS)]

    won, lost = _split(
        _race([partial(d.create_restore_point, p) for d, p in zip(daemons, points, strict=True)])
    )

    assert len(won) == 1, lost
    assert all(isinstance(e, FiringTaken) for e in lost), lost
    assert {e.holder for e in lost if isinstance(e, FiringTaken)} == {won[0].id}
    assert [p.id for p in catalog.list_restore_points()] == [won[0].id]


def test_one_queued_run_starts_on_a_target(
    daemons: list[SqlCatalog], catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """Eight queued runs of one target started at once: one RUNNING, seven TargetBusy (queued)."""
    queued = [catalog.create_run(new_run(daemon_instance=f"d{i}")) for i in range(DAEMONS)]

    def start(daemon: SqlCatalog, run_id: str) -> str:
        update = RunUpdate(started_at=BASE, heartbeat_at=BASE)
        return daemon.transition(run_id, [RunState.QUEUED], RunState.RUNNING, update).id

    won, lost = _split(
        _race([partial(start, d, r.id) for d, r in zip(daemons, queued, strict=True)])
    )

    assert len(won) == 1, lost
    assert all(isinstance(e, TargetBusy) and e.holder == won[0] for e in lost), lost
    states = sorted(r.state for r in catalog.list_runs(RunFilter()))
    assert states == sorted([RunState.RUNNING] + [RunState.QUEUED] * (DAEMONS - 1))


def test_one_run_is_created_running_on_a_target(
    daemons: list[SqlCatalog], catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """Eight runs created RUNNING on one target at once: one stored, seven TargetBusy."""
    runs = [new_run(state=RunState.RUNNING, daemon_instance=f"d{i}") for i in range(DAEMONS)]

    won, lost = _split(
        _race([partial(d.create_run, r) for d, r in zip(daemons, runs, strict=True)])
    )

    assert len(won) == 1, lost
    assert all(isinstance(e, TargetBusy) and e.holder == won[0].id for e in lost), lost
    assert [r.id for r in catalog.list_runs(RunFilter())] == [won[0].id]


def test_one_reaper_interrupts_a_stale_run(
    daemons: list[SqlCatalog], catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """Reapers racing interrupt_run on one stale run: one gets it, one cleanup run is inserted."""
    stale = catalog.create_run(new_run(state=RunState.RUNNING, created_at=BASE))
    cleanups = [
        new_run(kind=RunKind.BACKUP_CLEANUP, state=RunState.RUNNING, daemon_instance=f"d{i}")
        for i in range(DAEMONS)
    ]
    bound = BASE + timedelta(hours=1)

    def reap(daemon: SqlCatalog, cleanup: NewRun) -> object:
        return daemon.interrupt_run(stale.id, bound, RunUpdate(finished_at=bound), cleanup)

    results = _race([partial(reap, d, c) for d, c in zip(daemons, cleanups, strict=True)])

    assert not [r for r in results if isinstance(r, Exception)], results
    assert len([r for r in results if r is not None]) == 1
    stored = catalog.list_runs(RunFilter(kind=RunKind.BACKUP_CLEANUP))
    assert [(r.state, r.target) for r in stored] == [(RunState.RUNNING, "cf")]
    assert catalog.get_run(stale.id).state is RunState.INTERRUPTED


def test_a_handover_leaves_no_gap_for_a_queued_run(
    daemons: list[SqlCatalog], catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """A run handing its target to its cleanup while queued runs try to start: the cleanup runs,
    every start is TargetBusy (the target is never free in between)."""
    holder = catalog.create_run(new_run(state=RunState.RUNNING, created_at=BASE))
    queued = [catalog.create_run(new_run()) for _ in range(DAEMONS - 1)]
    cleanup = new_run(kind=RunKind.BACKUP_CLEANUP, state=RunState.RUNNING)

    def finish() -> str:
        daemons[0].transition(holder.id, [RunState.RUNNING], RunState.FAILED, successor=cleanup)
        return cleanup.id

    def start(daemon: SqlCatalog, run_id: str) -> str:
        return daemon.transition(run_id, [RunState.QUEUED], RunState.RUNNING).id

    attempts: list[Callable[[], str]] = [finish]
    attempts += [partial(start, d, r.id) for d, r in zip(daemons[1:], queued, strict=True)]
    won, lost = _split(_race(attempts))

    assert won == [cleanup.id], lost
    assert len(lost) == DAEMONS - 1
    assert all(isinstance(e, TargetBusy) for e in lost), lost
    assert [r.id for r in catalog.list_runs(RunFilter(state=RunState.RUNNING))] == [cleanup.id]
