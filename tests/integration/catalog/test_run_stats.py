"""run_stats: the per-(plan, target, kind) aggregates behind every metric, on each SQL backend
and on the unit tests' MemoryCatalog (which must give identical values)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.stats import SqlRunStats
from bbr_orchestrator.core.models import (
    NewRun,
    Run,
    RunKind,
    RunState,
    RunStats,
    RunUpdate,
    Trigger,
)
from bbr_orchestrator.ports import Catalog

NewRunFactory = Callable[..., NewRun]
T = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
BOUNDS = (60.0, 300.0, 3600.0)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _record(
    catalog: Catalog,
    new_run: NewRunFactory,
    state: RunState,
    *,
    started: datetime | None = None,
    finished: datetime | None = None,
    outcome: str | None = None,
    bytes_total: int | None = None,
    **fields: object,
) -> Run:
    """A run created queued and moved straight to ``state`` with the given times and results."""
    run = catalog.create_run(new_run(**fields))
    update = RunUpdate(
        started_at=started, finished_at=finished, outcome=outcome, bytes_total=bytes_total
    )
    return catalog.transition(run.id, [RunState.QUEUED], state, update)


def test_empty_catalog_has_no_stats(any_catalog: Catalog) -> None:
    """A catalog without runs gives an empty list."""
    assert any_catalog.run_stats(BOUNDS) == []


def test_mixed_history_gives_the_expected_stats(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """Success, failures, unlock failures, a cancelled run without outcome, a run never started
    and an operator run (plan None) aggregate to exactly these two RunStats."""
    c, n = any_catalog, new_run
    ok, failed, cancelled = RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED
    hour = timedelta(hours=1)
    _record(
        c, n, ok, started=T, finished=T + _seconds(120.5), outcome="succeeded", bytes_total=1000
    )
    _record(c, n, failed, started=T + hour, finished=T + hour + _seconds(300), outcome="failed")
    unlock_ok_at = T + 2 * hour + _seconds(59.75)
    _record(
        c,
        n,
        ok,
        started=T + 2 * hour,
        finished=unlock_ok_at,
        outcome="unlock-failed",
        bytes_total=2000,
    )
    both_failed_at = T + 3 * hour + _seconds(10)
    _record(
        c,
        n,
        failed,
        started=T + 3 * hour,
        finished=both_failed_at,
        outcome="lock-failed+unlock-failed",
    )
    _record(c, n, cancelled, started=T + 4 * hour, finished=T + 4 * hour + _seconds(3600.000001))
    never_started_at = T + 5 * hour + _seconds(30)  # cancelled while queued: no start time
    _record(c, n, cancelled, finished=never_started_at)
    operator_at = T + 6 * hour + timedelta(microseconds=1)
    _record(
        c,
        n,
        ok,
        started=T + 6 * hour,
        finished=operator_at,
        outcome="succeeded",
        bytes_total=500,
        plan=None,
        trigger=Trigger.OPERATOR,
        triggered_by="alice@jumpbox",
    )

    assert c.run_stats(BOUNDS) == [
        RunStats(
            plan=None,
            target="cf",
            kind=RunKind.BACKUP,
            finished=1,
            outcome_counts=(("succeeded", 1),),
            last_attempt_at=operator_at,
            last_outcome="succeeded",
            last_success_at=operator_at,
            last_success_bytes=500,
            bytes_succeeded_total=500,
            last_unlock_failed_at=None,
            duration_count=1,
            duration_sum_seconds=0.000001,
            duration_buckets=(1, 1, 1),
        ),
        RunStats(
            plan="nightly-cf",
            target="cf",
            kind=RunKind.BACKUP,
            finished=6,
            outcome_counts=(
                ("cancelled", 2),
                ("failed", 1),
                ("lock-failed+unlock-failed", 1),
                ("succeeded", 1),
                ("unlock-failed", 1),
            ),
            last_attempt_at=never_started_at,
            last_outcome="cancelled",
            last_success_at=unlock_ok_at,
            last_success_bytes=2000,
            bytes_succeeded_total=3000,
            last_unlock_failed_at=both_failed_at,
            duration_count=5,
            duration_sum_seconds=4090.250001,  # 120.5 + 300 + 59.75 + 10 + 3600.000001
            duration_buckets=(2, 4, 4),
        ),
    ]


def test_durations_land_in_buckets_to_the_microsecond(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A duration equal to a bound counts in its bucket (<=), one microsecond more does not,
    across second, day and month boundaries; the sum is exact to the microsecond."""
    start = datetime(2026, 2, 28, 23, 59, 59, 999_999, tzinfo=UTC)
    micros = [
        250_000,
        500_000,  # == 0.5
        500_001,
        60_000_000,  # == 60
        299_999_999,
        300_000_000,  # == 300
        300_000_001,
        172_800_500_000,  # two days and a half second (into March)
    ]
    for m in micros:
        finished = start + timedelta(microseconds=m)
        _record(any_catalog, new_run, RunState.SUCCEEDED, started=start, finished=finished)

    (stats,) = any_catalog.run_stats((0.5, 60, 300, 86400))

    assert stats.duration_buckets == (2, 4, 6, 7)
    assert stats.duration_count == 8
    assert stats.duration_sum_seconds == 173_761.750001
    assert stats.finished == 8


def test_active_runs_are_ignored(any_catalog: Catalog, new_run: NewRunFactory) -> None:
    """Queued and running runs count nowhere, and a group with only active runs is absent."""
    done = _record(any_catalog, new_run, RunState.SUCCEEDED, started=T, finished=T + _seconds(30))
    any_catalog.create_run(new_run(T + timedelta(days=1), state=RunState.RUNNING))
    any_catalog.create_run(new_run(T + timedelta(days=2)))
    any_catalog.create_run(new_run(kind=RunKind.VERIFY, state=RunState.RUNNING, target="bosh"))

    (stats,) = any_catalog.run_stats(BOUNDS)

    assert (stats.plan, stats.target, stats.kind, stats.finished) == (
        "nightly-cf",
        "cf",
        RunKind.BACKUP,
        1,
    )
    assert stats.last_attempt_at == done.finished_at
    assert stats.outcome_counts == (("succeeded", 1),)
    assert stats.duration_buckets == (1, 1, 1)


def test_groups_stay_separate_and_are_ordered(any_catalog: Catalog, new_run: NewRunFactory) -> None:
    """Each (plan, target, kind) is its own RunStats; the list is ordered by plan, target, kind."""
    for plan, target, kind, state in [
        ("other", "cf", RunKind.BACKUP, RunState.FAILED),
        ("nightly-cf", "cf", RunKind.VERIFY, RunState.SUCCEEDED),
        ("nightly-cf", "cf", RunKind.BACKUP, RunState.CANCELLED),
        ("nightly-cf", "bosh", RunKind.BACKUP, RunState.INTERRUPTED),
        ("nightly-cf", "cf", RunKind.BACKUP, RunState.SUCCEEDED),
    ]:
        _record(
            any_catalog,
            new_run,
            state,
            started=T,
            finished=T + _seconds(1),
            bytes_total=7,
            plan=plan,
            target=target,
            kind=kind,
        )

    stats = any_catalog.run_stats(BOUNDS)

    assert [(s.plan, s.target, s.kind, s.finished, s.outcome_counts) for s in stats] == [
        ("nightly-cf", "bosh", RunKind.BACKUP, 1, (("interrupted", 1),)),
        ("nightly-cf", "cf", RunKind.BACKUP, 2, (("cancelled", 1), ("succeeded", 1))),
        ("nightly-cf", "cf", RunKind.VERIFY, 1, (("succeeded", 1),)),
        ("other", "cf", RunKind.BACKUP, 1, (("failed", 1),)),
    ]
    assert [s.bytes_succeeded_total for s in stats] == [0, 7, 7, 0]
    assert [s.last_success_bytes for s in stats] == [None, 7, 7, None]


def test_latest_run_ties_break_by_id_and_runs_without_finish_time_are_never_latest(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """Equal finish times: the larger id is the latest (attempt and success); a final run
    without finished_at counts (and its bytes), but is never the latest attempt or success,
    not even when alone."""
    same = T + _seconds(90)
    for token, size in (("0000000b", 2), ("0000000a", 1)):
        _record(
            any_catalog,
            new_run,
            RunState.SUCCEEDED,
            started=T,
            finished=same,
            outcome="succeeded",
            bytes_total=size,
            id=f"20260301T010000Z-{token}",
        )
    _record(any_catalog, new_run, RunState.INTERRUPTED, id="20260301T010000Z-0000000c")
    _record(any_catalog, new_run, RunState.SUCCEEDED, bytes_total=5, target="bosh")

    bosh, cf = any_catalog.run_stats(BOUNDS)

    assert (cf.finished, cf.last_attempt_at, cf.last_outcome) == (3, same, "succeeded")
    assert (cf.last_success_at, cf.last_success_bytes) == (same, 2)
    assert (cf.duration_count, cf.duration_buckets) == (2, (0, 2, 2))
    assert (bosh.finished, bosh.last_attempt_at, bosh.last_outcome) == (1, None, None)
    assert (bosh.bytes_succeeded_total, bosh.last_success_bytes) == (5, None)
    assert (bosh.last_success_at, bosh.duration_count, bosh.duration_buckets) == (
        None,
        0,
        (0, 0, 0),
    )


def test_no_bounds_give_no_buckets_and_a_nan_bound_is_refused(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """Without bounds the buckets are empty (count and sum still there); a NaN bound is a
    ValueError."""
    _record(any_catalog, new_run, RunState.SUCCEEDED, started=T, finished=T + _seconds(2.5))

    (stats,) = any_catalog.run_stats(())

    assert (stats.duration_buckets, stats.duration_count, stats.duration_sum_seconds) == (
        (),
        1,
        2.5,
    )
    with pytest.raises(ValueError, match="nan"):
        any_catalog.run_stats((60, float("nan")))


def _history(catalog: Catalog, new_run: NewRunFactory) -> None:
    """Twelve finished runs over three targets and two kinds, some finishing at the same time."""
    states = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)
    for i in range(12):
        finished = T + timedelta(minutes=i // 2)
        _record(
            catalog,
            new_run,
            states[i % 3],
            started=T,
            finished=finished,
            bytes_total=i,
            target=f"target-{i % 3}",
            kind=(RunKind.BACKUP, RunKind.VERIFY)[i % 2],
        )


def test_latest_runs_fetched_in_several_statements_give_the_same_stats(
    catalog: SqlCatalog, migrated_url: str, new_run: NewRunFactory
) -> None:
    """When the latest finish times exceed the bind-parameter budget they are looked up in
    batches, with the same result as one statement."""
    _history(catalog, new_run)
    db = Database(migrated_url)
    try:
        batched = SqlRunStats(db, max_params=1).run_stats(BOUNDS)
    finally:
        db.dispose()

    assert batched == catalog.run_stats(BOUNDS)
    assert len(batched) == 6


def test_another_catalog_on_the_same_database_sees_the_same_stats(
    catalog: SqlCatalog, migrated_url: str, new_run: NewRunFactory
) -> None:
    """Stats come from the catalog alone: a second daemon (or a restarted one) gets them equal."""
    _history(catalog, new_run)

    with open_catalog(migrated_url) as other:
        assert other.run_stats(BOUNDS) == catalog.run_stats(BOUNDS)
