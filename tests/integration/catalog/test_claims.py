"""Run claims: one RUNNING run per target, successors handed the target in the same transaction,
heartbeats by owner, stale runs and the reaper's interrupt (every backend, and the fake)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import runs
from bbr_orchestrator.core.models import (
    FINAL_STATES,
    NewRestorePoint,
    NewRun,
    RestorePointState,
    RunFilter,
    RunKind,
    RunState,
    RunUpdate,
)
from bbr_orchestrator.errors import RestorePointNotFound, RunConflict, RunNotFound, TargetBusy
from bbr_orchestrator.ports import Catalog

NewRunFactory = Callable[..., NewRun]
NewPointFactory = Callable[..., NewRestorePoint]
BASE = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _running(catalog: Catalog, new_run: NewRunFactory, **fields: object) -> str:
    return catalog.create_run(new_run(state=RunState.RUNNING, **fields)).id


def _active_target(url: str, run_id: str) -> str | None:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            value = conn.scalar(select(runs.c.active_target).where(runs.c.id == run_id))
    finally:
        db.dispose()
    return None if value is None else str(value)


# -- claiming the target ---------------------------------------------------------------------


def test_create_running_run_starts_it_at_creation(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A run created RUNNING has started_at = heartbeat_at = created_at."""
    new = new_run(created_at=BASE, state=RunState.RUNNING)

    created = any_catalog.create_run(new)

    assert (created.state, created.started_at, created.heartbeat_at) == (
        RunState.RUNNING,
        BASE,
        BASE,
    )
    assert any_catalog.get_run(new.id) == created


def test_create_running_run_on_a_held_target_is_target_busy(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A second RUNNING run on the target raises TargetBusy naming the holder; nothing is stored."""
    holder = _running(any_catalog, new_run)
    second = new_run(state=RunState.RUNNING)

    with pytest.raises(TargetBusy) as caught:
        any_catalog.create_run(second)

    assert (caught.value.run_id, caught.value.target, caught.value.holder) == (
        second.id,
        "cf",
        holder,
    )
    with pytest.raises(RunNotFound):
        any_catalog.get_run(second.id)


def test_queued_and_final_runs_hold_nothing(any_catalog: Catalog, new_run: NewRunFactory) -> None:
    """QUEUED and final runs on a held target are stored; they do not hold it."""
    _running(any_catalog, new_run)

    for state in [RunState.QUEUED, *sorted(FINAL_STATES)]:
        assert any_catalog.create_run(new_run(state=state)).state is state


def test_duplicate_id_is_run_conflict_not_target_busy(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """Re-inserting a RUNNING run's id (same target) is a plain RunConflict, not TargetBusy."""
    first = any_catalog.create_run(new_run(state=RunState.RUNNING))

    with pytest.raises(RunConflict) as caught:
        any_catalog.create_run(new_run(id=first.id, state=RunState.RUNNING))

    assert type(caught.value) is RunConflict
    assert caught.value.actual == "running"


def test_targets_are_claimed_independently_and_exactly(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """Different targets (also ones differing only in case) each get their own running run."""
    for target in ("cf", "CF", "director", "cf-2"):
        _running(any_catalog, new_run, target=target)

    assert len(any_catalog.list_runs(RunFilter(state=RunState.RUNNING))) == 4


def test_start_on_a_held_target_is_target_busy_and_leaves_the_run_queued(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """QUEUED -> RUNNING on a held target raises TargetBusy(run, target, holder); run unchanged."""
    holder = _running(any_catalog, new_run)
    queued = any_catalog.create_run(new_run())

    with pytest.raises(TargetBusy) as caught:
        any_catalog.transition(
            queued.id, [RunState.QUEUED], RunState.RUNNING, RunUpdate(started_at=BASE)
        )

    assert (caught.value.run_id, caught.value.target, caught.value.holder) == (
        queued.id,
        "cf",
        holder,
    )
    assert any_catalog.get_run(queued.id) == queued


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_a_final_state_releases_the_target(
    any_catalog: Catalog, new_run: NewRunFactory, final: RunState
) -> None:
    """Moving the holder to any final state lets another run start on the target."""
    holder = _running(any_catalog, new_run)
    queued = any_catalog.create_run(new_run())

    any_catalog.transition(holder, [RunState.RUNNING], final)

    assert any_catalog.transition(queued.id, [RunState.QUEUED], RunState.RUNNING).state is (
        RunState.RUNNING
    )


def test_running_again_keeps_the_claim(any_catalog: Catalog, new_run: NewRunFactory) -> None:
    """RUNNING -> RUNNING (a plain update) keeps holding the target."""
    holder = _running(any_catalog, new_run)

    any_catalog.transition(holder, [RunState.RUNNING], RunState.RUNNING, RunUpdate(exit_code=0))

    with pytest.raises(TargetBusy):
        _running(any_catalog, new_run)


def test_active_target_is_the_target_only_while_running(
    catalog: SqlCatalog, migrated_url: str, new_run: NewRunFactory
) -> None:
    """runs.active_target is NULL while queued, the target while running, NULL once final."""
    run = catalog.create_run(new_run(target="cf-2"))
    seen = [_active_target(migrated_url, run.id)]
    for expected, new_state in (
        (RunState.QUEUED, RunState.QUEUED),
        (RunState.QUEUED, RunState.RUNNING),
        (RunState.RUNNING, RunState.SUCCEEDED),
    ):
        catalog.transition(run.id, [expected], new_state)
        seen.append(_active_target(migrated_url, run.id))

    assert seen == [None, None, "cf-2", None]
    created_running = _running(catalog, new_run, target="cf-3")
    assert _active_target(migrated_url, created_running) == "cf-3"


# -- successors ------------------------------------------------------------------------------


def test_successor_takes_over_the_target_in_the_same_transition(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A finished run hands its target to a RUNNING successor (its cleanup) in one step."""
    run = _running(any_catalog, new_run)
    cleanup = new_run(
        kind=RunKind.BACKUP_CLEANUP, state=RunState.RUNNING, created_at=BASE + timedelta(hours=1)
    )

    finished = any_catalog.transition(
        run, [RunState.RUNNING], RunState.FAILED, RunUpdate(exit_code=1), successor=cleanup
    )

    assert (finished.state, finished.exit_code) == (RunState.FAILED, 1)
    stored = any_catalog.get_run(cleanup.id)
    assert (stored.kind, stored.state, stored.started_at) == (
        RunKind.BACKUP_CLEANUP,
        RunState.RUNNING,
        cleanup.created_at,
    )
    with pytest.raises(TargetBusy) as caught:
        _running(any_catalog, new_run)
    assert caught.value.holder == cleanup.id


def test_lost_compare_and_set_inserts_no_successor(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """When the transition loses (RunConflict), its successor is not inserted."""
    run = any_catalog.create_run(new_run(state=RunState.SUCCEEDED))
    cleanup = new_run(kind=RunKind.BACKUP_CLEANUP, state=RunState.RUNNING)

    with pytest.raises(RunConflict):
        any_catalog.transition(run.id, [RunState.RUNNING], RunState.FAILED, successor=cleanup)

    with pytest.raises(RunNotFound):
        any_catalog.get_run(cleanup.id)


def test_refused_successor_undoes_the_transition(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A successor whose target is held raises TargetBusy for it, and the run stays as it was."""
    run = _running(any_catalog, new_run)
    other_holder = _running(any_catalog, new_run, target="director")
    successor = new_run(target="director", state=RunState.RUNNING)

    with pytest.raises(TargetBusy) as caught:
        any_catalog.transition(run, [RunState.RUNNING], RunState.SUCCEEDED, successor=successor)

    assert (caught.value.run_id, caught.value.holder) == (successor.id, other_holder)
    assert any_catalog.get_run(run).state is RunState.RUNNING
    with pytest.raises(RunNotFound):
        any_catalog.get_run(successor.id)


def test_successor_with_a_known_id_undoes_the_transition(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A successor whose id exists raises RunConflict (for that id); the run stays as it was."""
    run = _running(any_catalog, new_run)
    existing = any_catalog.create_run(new_run(target="other"))

    with pytest.raises(RunConflict) as caught:
        any_catalog.transition(
            run, [RunState.RUNNING], RunState.SUCCEEDED, successor=new_run(id=existing.id)
        )

    assert type(caught.value) is RunConflict
    assert caught.value.run_id == existing.id
    assert any_catalog.get_run(run).state is RunState.RUNNING


# -- restore point steps ---------------------------------------------------------------------


def test_runs_carry_their_restore_point_and_step(
    any_catalog: Catalog, new_run: NewRunFactory, new_point: NewPointFactory
) -> None:
    """restore_point_id and step round-trip, and list_runs filters by restore point."""
    point = any_catalog.create_restore_point(new_point())
    steps = [
        any_catalog.create_run(
            new_run(restore_point_id=point.id, step=i, created_at=BASE + timedelta(minutes=i))
        )
        for i in range(3)
    ]
    any_catalog.create_run(new_run())

    listed = any_catalog.list_runs(RunFilter(restore_point_id=point.id))

    assert [(r.id, r.step, r.restore_point_id) for r in listed] == [
        (s.id, s.step, point.id) for s in reversed(steps)
    ]


def test_run_of_an_unknown_restore_point_is_refused(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A run naming a restore point that does not exist raises RestorePointNotFound."""
    with pytest.raises(RestorePointNotFound) as caught:
        any_catalog.create_run(new_run(restore_point_id="20260101T000000Z-00000000"))

    assert caught.value.restore_point_id == "20260101T000000Z-00000000"
    assert any_catalog.list_runs(RunFilter()) == []


def test_list_runs_by_any_of_several_states(any_catalog: Catalog, new_run: NewRunFactory) -> None:
    """RunFilter.states matches any of them, ANDs with state, and an empty set matches nothing."""
    made = {
        state: any_catalog.create_run(
            new_run(state=state, target=state.value, created_at=BASE + timedelta(minutes=i))
        ).id
        for i, state in enumerate(RunState)
    }

    def ids(run_filter: RunFilter) -> list[str]:
        return [r.id for r in any_catalog.list_runs(run_filter)]

    active = frozenset({RunState.QUEUED, RunState.RUNNING})
    assert ids(RunFilter(states=active)) == [made[RunState.RUNNING], made[RunState.QUEUED]]
    assert ids(RunFilter(states=active, state=RunState.QUEUED)) == [made[RunState.QUEUED]]
    assert ids(RunFilter(states=active, state=RunState.FAILED)) == []
    assert ids(RunFilter(states=frozenset())) == []


# -- heartbeats and staleness ----------------------------------------------------------------


def test_heartbeat_owner_touches_only_the_owners_active_rows(
    any_catalog: Catalog, new_run: NewRunFactory, new_point: NewPointFactory
) -> None:
    """heartbeat_owner stamps the owner's QUEUED/RUNNING runs and restore points, counts them."""
    mine = [
        any_catalog.create_run(new_run()).id,
        _running(any_catalog, new_run),
        any_catalog.create_run(new_run(state=RunState.SUCCEEDED)).id,
        any_catalog.create_run(new_run(daemon_instance="jumpbox-2")).id,
    ]
    points = [
        any_catalog.create_restore_point(new_point(scheduled_for=None)).id,
        any_catalog.create_restore_point(
            new_point(scheduled_for=None, state=RestorePointState.COMPLETE)
        ).id,
    ]
    beat = BASE + timedelta(days=1)

    assert any_catalog.heartbeat_owner("jumpbox-1", beat) == 3

    assert [any_catalog.get_run(i).heartbeat_at == beat for i in mine] == [
        True,
        True,
        False,
        False,
    ]
    assert [any_catalog.get_restore_point(i).heartbeat_at == beat for i in points] == [True, False]
    assert any_catalog.heartbeat_owner("nobody", beat) == 0


def test_stale_runs_are_active_runs_silent_since_the_bound(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """stale_runs: active, heartbeat (else created_at) strictly before the bound, oldest first."""
    bound = BASE + timedelta(hours=1)
    old_queued = any_catalog.create_run(new_run(created_at=BASE))
    old_running = _running(any_catalog, new_run, created_at=BASE - timedelta(hours=1))
    beating = any_catalog.create_run(new_run(created_at=BASE - timedelta(hours=2)))
    any_catalog.heartbeat(beating.id, bound)  # at the bound: not stale
    any_catalog.create_run(new_run(created_at=BASE, state=RunState.FAILED))
    any_catalog.create_run(new_run(created_at=bound + timedelta(seconds=1)))
    silent_beat = _running(any_catalog, new_run, target="d", created_at=BASE)
    any_catalog.heartbeat(silent_beat, bound - timedelta(microseconds=1))

    stale = any_catalog.stale_runs(bound)

    assert [r.id for r in stale] == [old_running, *sorted([old_queued.id, silent_beat])]


def test_interrupt_run_marks_a_stale_run_and_releases_the_target(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A stale RUNNING run becomes INTERRUPTED with the update applied; its target is free."""
    run = _running(any_catalog, new_run, created_at=BASE)
    reaped_at = BASE + timedelta(hours=2)

    interrupted = any_catalog.interrupt_run(
        run,
        BASE + timedelta(hours=1),
        RunUpdate(finished_at=reaped_at, outcome="interrupted", error_summary="owner died"),
    )

    assert interrupted is not None
    assert (interrupted.state, interrupted.finished_at, interrupted.error_summary) == (
        RunState.INTERRUPTED,
        reaped_at,
        "owner died",
    )
    assert any_catalog.get_run(run) == interrupted
    _running(any_catalog, new_run)


def test_interrupt_run_leaves_live_final_and_unknown_runs_alone(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A run with a fresh heartbeat, a final run, or no run: None, and nothing changes."""
    bound = BASE + timedelta(hours=1)
    alive = _running(any_catalog, new_run, created_at=BASE)
    any_catalog.heartbeat(alive, bound + timedelta(seconds=5))
    done = any_catalog.create_run(new_run(created_at=BASE, state=RunState.SUCCEEDED))
    successor = new_run(kind=RunKind.BACKUP_CLEANUP, state=RunState.RUNNING, target="x")
    update = RunUpdate(finished_at=bound)

    for run_id in (alive, done.id, "20260101T000000Z-00000000"):
        assert any_catalog.interrupt_run(run_id, bound, update, successor=successor) is None

    assert any_catalog.get_run(alive).state is RunState.RUNNING
    assert any_catalog.get_run(done.id) == done
    with pytest.raises(RunNotFound):
        any_catalog.get_run(successor.id)


def test_interrupt_run_hands_the_target_to_its_successor(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """With a successor, the interrupted run's cleanup is inserted RUNNING on the same target."""
    run = _running(any_catalog, new_run, created_at=BASE)
    cleanup = new_run(kind=RunKind.BACKUP_CLEANUP, state=RunState.RUNNING, created_at=BASE)

    reaped = any_catalog.interrupt_run(
        run, BASE + timedelta(minutes=1), RunUpdate(finished_at=BASE), successor=cleanup
    )

    assert reaped is not None and reaped.state is RunState.INTERRUPTED
    assert any_catalog.get_run(cleanup.id).state is RunState.RUNNING
    with pytest.raises(TargetBusy) as caught:
        _running(any_catalog, new_run)
    assert caught.value.holder == cleanup.id
