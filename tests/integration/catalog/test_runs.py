"""Runs: create, get by id or prefix, list with filters, compare-and-set transitions, heartbeats."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.core.models import (
    NewRun,
    Run,
    RunFilter,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.errors import CatalogError, RunConflict, RunNotFound

NewRunFactory = Callable[..., NewRun]
BASE = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _ids(runs: list[Run]) -> list[str]:
    return [r.id for r in runs]


def test_create_run_returns_the_stored_run(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """create_run stores every field of NewRun and returns it as a queued Run."""
    new = new_run(plan=None, trigger=Trigger.OPERATOR, triggered_by="alice@host")

    created = catalog.create_run(new)

    assert created == Run(
        id=new.id,
        kind=RunKind.BACKUP,
        target="cf",
        target_kind=TargetKind.DEPLOYMENT,
        trigger=Trigger.OPERATOR,
        triggered_by="alice@host",
        state=RunState.QUEUED,
        created_at=new.created_at,
        plan=None,
        daemon_instance="jumpbox-1",
    )
    assert catalog.get_run(new.id) == created


def test_create_run_with_an_existing_id_is_a_conflict(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """A second run with the same id raises RunConflict naming the existing run's state."""
    first = catalog.create_run(new_run())
    catalog.transition(first.id, [RunState.QUEUED], RunState.RUNNING)

    with pytest.raises(RunConflict) as caught:
        catalog.create_run(new_run(id=first.id, target="other"))

    assert caught.value.run_id == first.id
    assert caught.value.actual == "running"
    assert catalog.get_run(first.id).target == "cf"


@pytest.mark.parametrize("kind", list(RunKind))
def test_every_run_kind_can_be_stored(
    catalog: SqlCatalog, new_run: NewRunFactory, kind: RunKind
) -> None:
    """Each RunKind value passes the kind CHECK constraint and round-trips."""
    assert catalog.create_run(new_run(kind=kind)).kind is kind


def test_every_state_trigger_and_target_kind_can_be_stored(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """Each RunState, Trigger and TargetKind value passes its CHECK constraint and round-trips."""
    for state in RunState:
        for trigger in Trigger:
            for target_kind in TargetKind:
                target = f"{state}-{trigger}-{target_kind}"  # one RUNNING run a target
                run = catalog.create_run(
                    new_run(state=state, trigger=trigger, target_kind=target_kind, target=target)
                )
                assert (run.state, run.trigger, run.target_kind) == (state, trigger, target_kind)


def test_get_run_by_unique_prefix(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """A unique prefix of at least six characters finds the run; the full id always does."""
    run = catalog.create_run(new_run(id="20260301T120000Z-aaaa1111"))
    catalog.create_run(new_run(id="20260301T120000Z-bbbb2222"))

    assert catalog.get_run("20260301T120000Z-a").id == run.id
    assert catalog.get_run(run.id).id == run.id


def test_get_run_with_ambiguous_prefix_says_how_many_match(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """A prefix matching several runs raises RunNotFound 'ambiguous prefix: N runs match'."""
    for token in ("aaaa1111", "aaaa2222", "aaab3333"):
        catalog.create_run(new_run(id=f"20260301T120000Z-{token}"))

    with pytest.raises(RunNotFound, match="ambiguous prefix: 3 runs match"):
        catalog.get_run("20260301T120000Z-aa")
    with pytest.raises(RunNotFound, match="ambiguous prefix: 2 runs match"):
        catalog.get_run("20260301T120000Z-aaaa")


def test_get_run_prefix_rules(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """Prefixes under six characters, other case, wildcards and unknown ids find nothing."""
    catalog.create_run(new_run(id="20260301T120000Z-abcd1234"))

    for probe in ("20260", "20260301t120000z", "2026%", "2026030_T", "20270101T000000Z-00000000"):
        with pytest.raises(RunNotFound) as caught:
            catalog.get_run(probe)
        assert caught.value.run_id == probe
    with pytest.raises(RunNotFound, match="at least 6 characters"):
        catalog.get_run("20260")


def test_list_runs_newest_first_with_limit(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """Without filters: newest first (ties broken by id, descending), at most `limit` runs."""
    created = [catalog.create_run(new_run(created_at=BASE + timedelta(hours=i))) for i in range(5)]
    twin = catalog.create_run(new_run(created_at=BASE + timedelta(hours=4)))

    listed = catalog.list_runs(RunFilter(limit=3))

    newest_two = sorted([created[4].id, twin.id], reverse=True)
    assert _ids(listed) == [*newest_two, created[3].id]
    assert len(catalog.list_runs(RunFilter(limit=50))) == 6


def _mixed_runs(catalog: SqlCatalog, new_run: NewRunFactory) -> list[Run]:
    """Twelve runs over three plans, two targets, three kinds, three states, twelve hours.

    None is RUNNING: a target holds one running run at a time."""
    plans = ["nightly-cf", "hourly-director", None]
    targets = ["cf", "director"]
    kinds = [RunKind.BACKUP, RunKind.PRE_BACKUP_CHECK, RunKind.RESTORE]
    states = [RunState.SUCCEEDED, RunState.FAILED, RunState.QUEUED]
    return [
        catalog.create_run(
            new_run(
                created_at=BASE + timedelta(hours=i),
                plan=plans[i % 3],
                target=targets[i % 2],
                kind=kinds[(i // 2) % 3],
                state=states[(i // 3) % 3],
            )
        )
        for i in range(12)
    ]


FILTERS: dict[str, tuple[RunFilter, Callable[[Run], bool]]] = {
    "plan": (RunFilter(plan="nightly-cf"), lambda r: r.plan == "nightly-cf"),
    "target": (RunFilter(target="director"), lambda r: r.target == "director"),
    "kind": (RunFilter(kind=RunKind.RESTORE), lambda r: r.kind is RunKind.RESTORE),
    "state": (RunFilter(state=RunState.FAILED), lambda r: r.state is RunState.FAILED),
    "since": (
        RunFilter(since=BASE + timedelta(hours=7)),
        lambda r: r.created_at >= BASE + timedelta(hours=7),
    ),
    "until": (
        RunFilter(until=BASE + timedelta(hours=3)),
        lambda r: r.created_at < BASE + timedelta(hours=3),
    ),
    "time range": (
        RunFilter(since=BASE + timedelta(hours=2), until=BASE + timedelta(hours=6)),
        lambda r: BASE + timedelta(hours=2) <= r.created_at < BASE + timedelta(hours=6),
    ),
    "plan+state": (
        RunFilter(plan="nightly-cf", state=RunState.SUCCEEDED),
        lambda r: r.plan == "nightly-cf" and r.state is RunState.SUCCEEDED,
    ),
    "target+kind+since": (
        RunFilter(target="cf", kind=RunKind.BACKUP, since=BASE + timedelta(hours=1)),
        lambda r: (
            r.target == "cf"
            and r.kind is RunKind.BACKUP
            and r.created_at >= BASE + timedelta(hours=1)
        ),
    ),
    "no match": (RunFilter(plan="nightly-cf", kind=RunKind.RESTORE), lambda r: False),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_list_runs_filters(catalog: SqlCatalog, new_run: NewRunFactory, name: str) -> None:
    """Each filter (and combinations, AND-ed) returns exactly the matching runs, newest first."""
    run_filter, matches = FILTERS[name]
    runs = _mixed_runs(catalog, new_run)
    expected = [r.id for r in sorted(runs, key=lambda r: r.created_at, reverse=True) if matches(r)]

    assert _ids(catalog.list_runs(run_filter)) == expected


def test_list_runs_filter_with_limit(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """A filter and a limit together give the newest matching runs only."""
    runs = _mixed_runs(catalog, new_run)
    cf = [r.id for r in sorted(runs, key=lambda r: r.created_at, reverse=True) if r.target == "cf"]

    assert _ids(catalog.list_runs(RunFilter(target="cf", limit=2))) == cf[:2]


def test_list_runs_matches_plan_and_target_exactly(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """Filters compare exactly: other case or a wildcard does not match (also on MariaDB)."""
    catalog.create_run(new_run(plan="Nightly", target="CF"))

    assert catalog.list_runs(RunFilter(plan="nightly")) == []
    assert catalog.list_runs(RunFilter(target="cf")) == []
    assert catalog.list_runs(RunFilter(target="C%")) == []
    assert len(catalog.list_runs(RunFilter(plan="Nightly", target="CF"))) == 1


def test_list_runs_refuses_a_non_positive_limit(catalog: SqlCatalog) -> None:
    """limit < 1 is a ValueError naming RunFilter.limit."""
    with pytest.raises(ValueError, match=r"RunFilter\.limit"):
        catalog.list_runs(RunFilter(limit=0))


def test_timestamps_round_trip_as_utc(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """Aware datetimes in any zone come back UTC-aware, same instant, microseconds kept."""
    plus_five = timezone(timedelta(hours=5, minutes=30))
    created = datetime(2026, 7, 1, 23, 59, 58, 999999, tzinfo=plus_five)
    run = catalog.create_run(new_run(created_at=created))
    started = datetime(2026, 7, 2, 0, 0, 1, 1, tzinfo=timezone(timedelta(hours=-7)))

    updated = catalog.transition(
        run.id, [RunState.QUEUED], RunState.RUNNING, RunUpdate(started_at=started)
    )

    for got, sent in ((updated.created_at, created), (updated.started_at, started)):
        assert got == sent
        assert got is not None and got.tzinfo is UTC
        assert got.microsecond == sent.microsecond
    assert catalog.list_runs(RunFilter(since=created, until=created + timedelta(microseconds=1)))


def test_naive_datetimes_are_refused(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """A naive datetime is a ValueError before anything is written."""
    with pytest.raises(ValueError, match="timezone-aware"):
        catalog.create_run(new_run(created_at=datetime(2026, 1, 1)))
    assert catalog.list_runs(RunFilter()) == []
    with pytest.raises(ValueError, match=r"RunFilter\.since"):
        catalog.list_runs(RunFilter(since=datetime(2026, 1, 1)))


def test_too_long_values_name_the_column(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """A value longer than its column is a CatalogError naming table.column and the limit."""
    with pytest.raises(CatalogError, match=r"runs\.target is 300 characters long.*at most 255"):
        catalog.create_run(new_run(target="t" * 300))
    assert catalog.list_runs(RunFilter()) == []


def test_transition_sets_state_and_given_fields_only(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """A transition sets the new state and the non-None update fields and keeps the rest."""
    run = catalog.create_run(new_run())
    started = BASE + timedelta(minutes=1)
    catalog.transition(run.id, [RunState.QUEUED], RunState.RUNNING, RunUpdate(started_at=started))

    finished = catalog.transition(
        run.id,
        [RunState.RUNNING],
        RunState.SUCCEEDED,
        RunUpdate(
            finished_at=BASE + timedelta(minutes=9),
            exit_code=0,
            outcome="succeeded",
            bytes_total=5 * 2**40,
            log_object_key="runs/cf/x/log.txt",
            error_summary="",
        ),
    )

    assert finished.state is RunState.SUCCEEDED
    assert finished.started_at == started
    assert finished.duration_seconds == 480.0
    assert (finished.exit_code, finished.outcome, finished.bytes_total) == (0, "succeeded", 5 << 40)
    assert finished.log_object_key == "runs/cf/x/log.txt"
    assert finished.error_summary == ""
    assert catalog.get_run(run.id) == finished


def test_transition_compare_and_set_loses_with_run_conflict(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """The second transition from the same state loses with RunConflict(expected, actual)."""
    run = catalog.create_run(new_run())
    catalog.transition(run.id, [RunState.QUEUED], RunState.RUNNING)

    with pytest.raises(RunConflict) as caught:
        catalog.transition(run.id, [RunState.QUEUED], RunState.CANCELLED)

    assert caught.value.expected == ("queued",)
    assert caught.value.actual == "running"
    assert catalog.get_run(run.id).state is RunState.RUNNING


def test_transition_to_the_same_values_still_wins(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """A transition that changes no column is still a win (matched rows, not changed rows)."""
    run = catalog.create_run(new_run())

    again = catalog.transition(run.id, [RunState.QUEUED, RunState.RUNNING], RunState.QUEUED)

    assert again.state is RunState.QUEUED


def test_concurrent_transitions_have_exactly_one_winner(
    catalog: SqlCatalog, new_run: NewRunFactory
) -> None:
    """Eight threads racing QUEUED -> RUNNING: one wins, seven get RunConflict."""
    run = catalog.create_run(new_run())
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def claim() -> None:
        barrier.wait()
        try:
            catalog.transition(run.id, [RunState.QUEUED], RunState.RUNNING)
            result = "won"
        except RunConflict:
            result = "lost"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(outcomes) == ["lost"] * 7 + ["won"]


def test_transition_of_unknown_run_is_run_not_found(catalog: SqlCatalog) -> None:
    """Transitioning an id that is not in the catalog raises RunNotFound."""
    with pytest.raises(RunNotFound):
        catalog.transition("20260101T000000Z-00000000", [RunState.QUEUED], RunState.RUNNING)


def test_transition_needs_an_expected_state(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """An empty `expected` is a ValueError (it could never match)."""
    run = catalog.create_run(new_run())
    with pytest.raises(ValueError, match="expected state"):
        catalog.transition(run.id, [], RunState.RUNNING)


def test_heartbeat_only_for_active_runs(catalog: SqlCatalog, new_run: NewRunFactory) -> None:
    """heartbeat stamps an active run; a final run is RunConflict, a missing one RunNotFound."""
    run = catalog.create_run(new_run())
    beat = BASE + timedelta(seconds=30)

    catalog.heartbeat(run.id, beat)
    assert catalog.get_run(run.id).heartbeat_at == beat

    catalog.transition(run.id, [RunState.QUEUED], RunState.INTERRUPTED)
    with pytest.raises(RunConflict) as caught:
        catalog.heartbeat(run.id, beat + timedelta(seconds=30))
    assert caught.value.actual == "interrupted"
    assert catalog.get_run(run.id).heartbeat_at == beat
    with pytest.raises(RunNotFound):
        catalog.heartbeat("20260101T000000Z-00000000", beat)


def test_get_run_of_unknown_id_is_run_not_found(catalog: SqlCatalog) -> None:
    """An unknown full id raises RunNotFound carrying that id."""
    with pytest.raises(RunNotFound) as caught:
        catalog.get_run("20260101T000000Z-00000000")
    assert caught.value.run_id == "20260101T000000Z-00000000"
