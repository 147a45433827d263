"""Pins and deletion marks in the catalog (every backend, and the fake): pin and unpin, a
deletion that begins only when not pinned and a pin refused once it has, the deletion marks,
the ``deleted`` filter, and a pin racing a prune."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bbr_orchestrator.core.models import (
    NewRestorePoint,
    NewRun,
    RestorePointState,
    RunFilter,
    RunState,
)
from bbr_orchestrator.core.retention import DeletionConflict
from bbr_orchestrator.errors import RestorePointNotFound, RunConflict, RunNotFound
from bbr_orchestrator.ports import Catalog

NewRunFactory = Callable[..., NewRun]
NewPointFactory = Callable[..., NewRestorePoint]
AT = datetime(2026, 6, 1, 3, 0, 0, 123456, tzinfo=UTC)


def _backup(catalog: Catalog, new_run: NewRunFactory, minutes: int = 0) -> str:
    created = AT + timedelta(minutes=minutes)
    return catalog.create_run(new_run(created_at=created, state=RunState.SUCCEEDED)).id


def test_pin_records_who_why_and_when_and_unpin_clears_it(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A pin reads back with its operator, reason and time; pinning again replaces them;
    unpinning clears all three (and unpinning twice is fine)."""
    run_id = _backup(any_catalog, new_run)

    pinned = any_catalog.pin_run(run_id, "alice@jumpbox", "quarterly audit", AT)

    assert (pinned.pinned_at, pinned.pinned_by, pinned.pin_reason) == (
        AT,
        "alice@jumpbox",
        "quarterly audit",
    )
    assert pinned.pinned and any_catalog.get_run(run_id) == pinned
    again = any_catalog.pin_run(run_id, "bob@jumpbox", None, AT + timedelta(hours=1))
    assert (again.pinned_by, again.pin_reason) == ("bob@jumpbox", None)
    cleared = any_catalog.unpin_run(run_id)
    assert (cleared.pinned_at, cleared.pinned_by, cleared.pin_reason) == (None, None, None)
    assert any_catalog.unpin_run(run_id) == cleared
    with pytest.raises(RunNotFound):
        any_catalog.pin_run("20260601T030000Z-deadbeef", "alice", None, AT)
    with pytest.raises(RunNotFound):
        any_catalog.unpin_run("20260601T030000Z-deadbeef")


def test_a_pinned_backup_cannot_begin_deletion_and_a_deleting_one_cannot_be_pinned(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """begin_deletion refuses a pinned run (nothing changes); once unpinned it begins, a pin is
    then refused, and beginning again keeps the first reason."""
    run_id = _backup(any_catalog, new_run)
    any_catalog.pin_run(run_id, "alice", "keep", AT)

    with pytest.raises(DeletionConflict, match="pinned by alice") as refused:
        any_catalog.begin_deletion(run_id, "outside keep-last 7")
    assert isinstance(refused.value, RunConflict)
    assert any_catalog.get_run(run_id).delete_reason is None

    any_catalog.unpin_run(run_id)
    begun = any_catalog.begin_deletion(run_id, "outside keep-last 7")
    assert (begun.delete_reason, begun.deleted_at, begun.deletion_started) == (
        "outside keep-last 7",
        None,
        True,
    )
    with pytest.raises(DeletionConflict, match="retention is deleting it"):
        any_catalog.pin_run(run_id, "alice", "too late", AT)
    assert any_catalog.get_run(run_id).pinned_at is None
    assert any_catalog.begin_deletion(run_id, "another reason").delete_reason == (
        "outside keep-last 7"
    )


def test_mark_deleted_needs_a_begun_deletion_and_keeps_its_first_time(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """mark_deleted before begin_deletion is a DeletionConflict; after it the time is set, and
    a second mark keeps the first time."""
    run_id = _backup(any_catalog, new_run)
    with pytest.raises(DeletionConflict, match="never begun"):
        any_catalog.mark_deleted(run_id, AT)
    any_catalog.begin_deletion(run_id, "outside daily 7")

    done = any_catalog.mark_deleted(run_id, AT + timedelta(minutes=1))

    assert done.deleted_at == AT + timedelta(minutes=1)
    assert any_catalog.mark_deleted(run_id, AT + timedelta(hours=1)).deleted_at == done.deleted_at
    assert any_catalog.get_run(run_id).state is RunState.SUCCEEDED
    with pytest.raises(RunNotFound):
        any_catalog.mark_deleted("20260601T030000Z-deadbeef", AT)


def test_the_deleted_filter_passes_over_backups_whose_deletion_began(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """deleted=False lists backups retention has not touched; True those it began or ended
    deleting; None all, newest first."""
    kept = _backup(any_catalog, new_run, 0)
    deleting = _backup(any_catalog, new_run, 1)
    deleted = _backup(any_catalog, new_run, 2)
    any_catalog.begin_deletion(deleting, "r")
    any_catalog.begin_deletion(deleted, "r")
    any_catalog.mark_deleted(deleted, AT)

    def ids(flag: bool | None) -> list[str]:
        return [r.id for r in any_catalog.list_runs(RunFilter(deleted=flag, limit=10))]

    assert ids(False) == [kept]
    assert ids(True) == [deleted, deleting]
    assert ids(None) == [deleted, deleting, kept]
    newest_alive = any_catalog.list_runs(
        RunFilter(state=RunState.SUCCEEDED, deleted=False, limit=1)
    )
    assert [r.id for r in newest_alive] == [kept]


def test_a_restore_point_is_marked_deleted_once_and_never_while_active(
    any_catalog: Catalog, new_point: NewPointFactory
) -> None:
    """A finished point is marked with its reason and time (a second mark keeps the first);
    an active one is refused; an unknown one is RestorePointNotFound."""
    done = any_catalog.create_restore_point(new_point(state=RestorePointState.COMPLETE))
    running = any_catalog.create_restore_point(
        new_point(scheduled_for=AT, state=RestorePointState.RUNNING)
    )

    marked = any_catalog.mark_restore_point_deleted(done.id, "outside keep-last 7", AT)

    assert (marked.deleted_at, marked.delete_reason) == (AT, "outside keep-last 7")
    assert any_catalog.get_restore_point(done.id) == marked
    listed = {p.id: p for p in any_catalog.list_restore_points(plan=done.plan)}
    assert listed[done.id] == marked
    again = any_catalog.mark_restore_point_deleted(done.id, "other", AT + timedelta(days=1))
    assert again == marked
    with pytest.raises(RunConflict):
        any_catalog.mark_restore_point_deleted(running.id, "r", AT)
    assert any_catalog.get_restore_point(running.id).deleted_at is None
    with pytest.raises(RestorePointNotFound):
        any_catalog.mark_restore_point_deleted("20260601T030000Z-deadbeef", "r", AT)


def test_a_pin_and_a_prune_racing_for_the_same_backups_never_both_win(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """Two threads, one pinning and one beginning deletions of the same 12 backups: each
    backup ends pinned or being deleted, never both, and every loser was told so."""
    ids = [_backup(any_catalog, new_run, i) for i in range(12)]
    start = threading.Barrier(2)
    lost: dict[str, list[str]] = {"pin": [], "delete": []}

    def pin() -> None:
        start.wait()
        for run_id in ids:
            try:
                any_catalog.pin_run(run_id, "alice", None, AT)
            except DeletionConflict:
                lost["pin"].append(run_id)

    def delete() -> None:
        start.wait()
        for run_id in reversed(ids):
            try:
                any_catalog.begin_deletion(run_id, "outside keep-last 1")
            except DeletionConflict:
                lost["delete"].append(run_id)

    threads = [threading.Thread(target=pin), threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    for run_id in ids:
        run = any_catalog.get_run(run_id)
        assert run.pinned != run.deletion_started, run_id
        assert (run_id in lost["pin"]) == run.deletion_started
        assert (run_id in lost["delete"]) == run.pinned
