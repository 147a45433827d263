"""Restore points: the one-per-firing claim, compare-and-set, listing, staleness, last firing
(every backend, and the fake)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.core.models import (
    NewRestorePoint,
    RestorePoint,
    RestorePointState,
    RestorePointUpdate,
    Trigger,
)
from bbr_orchestrator.errors import CatalogError, FiringTaken, RestorePointNotFound, RunConflict
from bbr_orchestrator.ports import Catalog

NewPointFactory = Callable[..., NewRestorePoint]
BASE = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
MISSING = "20260101T000000Z-00000000"


def _ids(points: list[RestorePoint]) -> list[str]:
    return [p.id for p in points]


def test_create_returns_the_stored_restore_point(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """create_restore_point stores every field of NewRestorePoint and get returns it."""
    new = new_point(trigger=Trigger.OPERATOR, triggered_by="alice@host", summary="3 steps")

    created = any_catalog.create_restore_point(new)

    assert created == RestorePoint(
        id=new.id,
        plan="nightly-cf",
        trigger=Trigger.OPERATOR,
        triggered_by="alice@host",
        state=RestorePointState.QUEUED,
        created_at=new.created_at,
        scheduled_for=new.scheduled_for,
        daemon_instance="jumpbox-1",
        summary="3 steps",
    )
    assert any_catalog.get_restore_point(new.id) == created


def test_create_running_restore_point_starts_it_at_creation(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """A restore point created RUNNING has started_at = heartbeat_at = created_at."""
    created = any_catalog.create_restore_point(
        new_point(created_at=BASE, state=RestorePointState.RUNNING)
    )

    assert (created.started_at, created.heartbeat_at) == (BASE, BASE)


def test_every_restore_point_state_can_be_stored(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """Each RestorePointState value passes the state CHECK constraint and round-trips."""
    for state in RestorePointState:
        assert any_catalog.create_restore_point(
            new_point(state=state, scheduled_for=None)
        ).state is (state)


def test_second_claim_of_a_firing_is_firing_taken(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """The same (plan, scheduled_for) again raises FiringTaken naming the holder; not stored."""
    fired = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    first = any_catalog.create_restore_point(new_point(scheduled_for=fired))
    second = new_point(scheduled_for=fired, daemon_instance="jumpbox-2")

    with pytest.raises(FiringTaken) as caught:
        any_catalog.create_restore_point(second)

    assert (caught.value.plan, caught.value.scheduled_for, caught.value.holder) == (
        "nightly-cf",
        fired.isoformat(),
        first.id,
    )
    with pytest.raises(RestorePointNotFound):
        any_catalog.get_restore_point(second.id)


def test_a_firing_is_the_same_instant_in_any_time_zone(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """02:00 UTC and 03:00+01:00 are one firing: the second claim is FiringTaken."""
    any_catalog.create_restore_point(new_point(scheduled_for=datetime(2026, 3, 1, 2, tzinfo=UTC)))
    plus_one = datetime(2026, 3, 1, 3, tzinfo=timezone(timedelta(hours=1)))

    with pytest.raises(FiringTaken):
        any_catalog.create_restore_point(new_point(scheduled_for=plus_one))


def test_firings_are_per_plan_and_manual_starts_repeat(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """The same time in another plan is another firing; scheduled_for None may repeat."""
    fired = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    any_catalog.create_restore_point(new_point(scheduled_for=fired))
    any_catalog.create_restore_point(new_point(scheduled_for=fired, plan="hourly-director"))
    any_catalog.create_restore_point(new_point(scheduled_for=None))
    any_catalog.create_restore_point(new_point(scheduled_for=None))

    assert len(any_catalog.list_restore_points()) == 4


def test_duplicate_restore_point_id_is_run_conflict(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """A second restore point with the same id (any firing) is RunConflict, not FiringTaken."""
    first = any_catalog.create_restore_point(new_point())

    for scheduled_for in (first.scheduled_for, None, BASE):
        with pytest.raises(RunConflict) as caught:
            any_catalog.create_restore_point(new_point(id=first.id, scheduled_for=scheduled_for))
        assert (caught.value.run_id, caught.value.actual) == (first.id, "queued")


def test_get_unknown_restore_point_is_not_found(any_catalog: Catalog) -> None:
    """An unknown id raises RestorePointNotFound carrying it."""
    with pytest.raises(RestorePointNotFound) as caught:
        any_catalog.get_restore_point(MISSING)
    assert caught.value.restore_point_id == MISSING


def test_list_restore_points_newest_first_filtered_and_limited(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """Newest first (ties by id, descending), by plan and by any of the states, at most limit."""
    plans = ["nightly-cf", "hourly-director"]
    states = [RestorePointState.COMPLETE, RestorePointState.FAILED, RestorePointState.RUNNING]
    made = [
        any_catalog.create_restore_point(
            new_point(
                created_at=BASE + timedelta(hours=i // 2),
                scheduled_for=BASE + timedelta(hours=i),
                plan=plans[i % 2],
                state=states[i % 3],
            )
        )
        for i in range(8)
    ]
    newest = sorted(made, key=lambda p: (p.created_at, p.id), reverse=True)

    assert _ids(any_catalog.list_restore_points()) == _ids(newest)
    assert _ids(any_catalog.list_restore_points(limit=3)) == _ids(newest)[:3]
    assert _ids(any_catalog.list_restore_points(plan="hourly-director")) == [
        p.id for p in newest if p.plan == "hourly-director"
    ]
    wanted = {RestorePointState.FAILED, RestorePointState.RUNNING}
    assert _ids(any_catalog.list_restore_points(plan="nightly-cf", states=wanted)) == [
        p.id for p in newest if p.plan == "nightly-cf" and p.state in wanted
    ]
    assert any_catalog.list_restore_points(states=[]) == []
    with pytest.raises(ValueError, match="limit"):
        any_catalog.list_restore_points(limit=0)


def test_transition_restore_point_sets_state_and_given_fields(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """A transition sets the new state and the non-None update fields and keeps the rest."""
    point = any_catalog.create_restore_point(new_point(summary="planned"))
    any_catalog.transition_restore_point(
        point.id,
        [RestorePointState.QUEUED],
        RestorePointState.RUNNING,
        RestorePointUpdate(started_at=BASE),
    )

    done = any_catalog.transition_restore_point(
        point.id,
        [RestorePointState.RUNNING],
        RestorePointState.PARTIAL,
        RestorePointUpdate(finished_at=BASE + timedelta(hours=1), summary="2 of 3 steps"),
    )

    assert (done.state, done.started_at, done.finished_at, done.summary) == (
        RestorePointState.PARTIAL,
        BASE,
        BASE + timedelta(hours=1),
        "2 of 3 steps",
    )
    assert any_catalog.get_restore_point(point.id) == done


def test_transition_restore_point_compare_and_set(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """Not in expected: RunConflict(id, expected, actual); unknown: RestorePointNotFound."""
    point = any_catalog.create_restore_point(new_point(state=RestorePointState.MISSED))

    with pytest.raises(RunConflict) as caught:
        any_catalog.transition_restore_point(
            point.id,
            [RestorePointState.QUEUED, RestorePointState.RUNNING],
            RestorePointState.CANCELLED,
        )
    assert (caught.value.run_id, caught.value.expected, caught.value.actual) == (
        point.id,
        ("queued", "running"),
        "missed",
    )
    assert any_catalog.get_restore_point(point.id) == point
    with pytest.raises(RestorePointNotFound):
        any_catalog.transition_restore_point(
            MISSING, [RestorePointState.QUEUED], RestorePointState.RUNNING
        )
    with pytest.raises(ValueError, match="expected state"):
        any_catalog.transition_restore_point(point.id, [], RestorePointState.RUNNING)


def test_stale_restore_points(any_catalog: Catalog, new_point: NewPointFactory) -> None:
    """Active restore points silent (heartbeat, else creation) before the bound, oldest first."""
    bound = BASE + timedelta(hours=1)

    def make(created: datetime, state: RestorePointState = RestorePointState.RUNNING) -> str:
        point = new_point(created_at=created, scheduled_for=None, state=state)
        return any_catalog.create_restore_point(point).id

    queued = make(BASE, RestorePointState.QUEUED)
    running = make(BASE - timedelta(minutes=5))
    make(BASE, RestorePointState.COMPLETE)
    make(bound)
    beating = make(BASE - timedelta(hours=9))
    any_catalog.transition_restore_point(
        beating,
        [RestorePointState.RUNNING],
        RestorePointState.RUNNING,
        RestorePointUpdate(heartbeat_at=bound),
    )

    assert _ids(any_catalog.stale_restore_points(bound)) == [running, queued]


def test_last_scheduled_for_is_the_latest_firing_of_the_plan(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """The latest scheduled_for of the plan, missed firings included; None when there is none."""
    for hours, state in ((1, RestorePointState.COMPLETE), (3, RestorePointState.MISSED)):
        any_catalog.create_restore_point(
            new_point(scheduled_for=BASE + timedelta(hours=hours), state=state)
        )
    any_catalog.create_restore_point(
        new_point(scheduled_for=None, created_at=BASE + timedelta(hours=9))
    )
    any_catalog.create_restore_point(
        new_point(plan="other", scheduled_for=BASE + timedelta(hours=7))
    )

    assert any_catalog.last_scheduled_for("nightly-cf") == BASE + timedelta(hours=3)
    assert any_catalog.last_scheduled_for("unknown") is None
    any_catalog.create_restore_point(new_point(plan="manual-only", scheduled_for=None))
    assert any_catalog.last_scheduled_for("manual-only") is None


def test_restore_point_times_round_trip_as_utc(
    catalog: SqlCatalog, new_point: NewPointFactory
) -> None:
    """Aware datetimes in any zone come back UTC-aware, same instant, microseconds kept."""
    plus_five = timezone(timedelta(hours=5, minutes=30))
    fired = datetime(2026, 7, 1, 23, 59, 58, 999999, tzinfo=plus_five)

    point = catalog.create_restore_point(new_point(scheduled_for=fired))

    assert point.scheduled_for == fired
    assert point.scheduled_for is not None and point.scheduled_for.tzinfo is UTC
    assert catalog.last_scheduled_for("nightly-cf") == fired


def test_restore_point_values_are_checked(catalog: SqlCatalog, new_point: NewPointFactory) -> None:
    """Naive datetimes are a ValueError, too-long names a CatalogError; nothing is stored."""
    with pytest.raises(ValueError, match="timezone-aware"):
        catalog.create_restore_point(new_point(scheduled_for=datetime(2026, 1, 1)))
    with pytest.raises(CatalogError, match=r"restore_points\.plan is 300 characters long"):
        catalog.create_restore_point(new_point(plan="p" * 300))
    with pytest.raises(ValueError, match="timezone-aware"):
        catalog.stale_restore_points(datetime(2026, 1, 1))
    assert catalog.list_restore_points() == []
