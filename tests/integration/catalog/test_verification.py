"""Verification in the catalog: a run's subject, a backup's recorded verification, and verifies
that never claim their target (every backend, and the fake)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import runs
from bbr_orchestrator.core.models import (
    TARGET_HOLDING_KINDS,
    NewRun,
    RunFilter,
    RunKind,
    RunState,
    RunUpdate,
)
from bbr_orchestrator.errors import RunNotFound, TargetBusy
from bbr_orchestrator.ports import Catalog

NewRunFactory = Callable[..., NewRun]
BASE = datetime(2026, 4, 1, 12, 0, 0, tzinfo=UTC)


def _backup(catalog: Catalog, new_run: NewRunFactory, **fields: object) -> str:
    """A succeeded backup of ``cf`` (the subject of the verifies below); its id."""
    values: dict[str, object] = {"created_at": BASE, "state": RunState.SUCCEEDED, **fields}
    return catalog.create_run(new_run(**values)).id


def _verify(new_run: NewRunFactory, subject: str, **fields: object) -> NewRun:
    values: dict[str, object] = {
        "kind": RunKind.VERIFY,
        "created_at": BASE + timedelta(hours=1),
        "subject_run_id": subject,
        "state": RunState.RUNNING,
        **fields,
    }
    return new_run(**values)


def _active_target(url: str, run_id: str) -> str | None:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            value = conn.scalar(select(runs.c.active_target).where(runs.c.id == run_id))
    finally:
        db.dispose()
    return None if value is None else str(value)


# -- the subject of a run --------------------------------------------------------------------


def test_verify_is_the_only_kind_that_holds_no_target() -> None:
    """TARGET_HOLDING_KINDS is every kind but VERIFY."""
    assert set(RunKind) - TARGET_HOLDING_KINDS == {RunKind.VERIFY}


def test_new_runs_have_no_subject_and_no_verification(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A run created without a subject reads back with subject, restorable, verified_at None."""
    created = any_catalog.create_run(new_run())

    assert (created.subject_run_id, created.restorable, created.verified_at) == (None, None, None)
    assert any_catalog.get_run(created.id) == created


def test_subject_run_id_round_trips(any_catalog: Catalog, new_run: NewRunFactory) -> None:
    """A run's subject_run_id is stored and read back by create_run, get_run and list_runs."""
    backup = _backup(any_catalog, new_run)

    created = any_catalog.create_run(_verify(new_run, backup))

    assert created.subject_run_id == backup
    assert any_catalog.get_run(created.id) == created
    assert any_catalog.list_runs(RunFilter(kind=RunKind.VERIFY)) == [created]
    assert any_catalog.get_run(backup).subject_run_id is None


def test_subject_run_id_filters_nothing_else(any_catalog: Catalog, new_run: NewRunFactory) -> None:
    """Runs with a subject are listed by every filter exactly like runs without one."""
    backup = _backup(any_catalog, new_run)
    verify = any_catalog.create_run(_verify(new_run, backup)).id
    restore = any_catalog.create_run(
        new_run(
            kind=RunKind.RESTORE,
            created_at=BASE + timedelta(hours=2),
            subject_run_id=backup,
            state=RunState.QUEUED,
        )
    ).id

    def ids(run_filter: RunFilter) -> list[str]:
        return [r.id for r in any_catalog.list_runs(run_filter)]

    assert ids(RunFilter()) == [restore, verify, backup]
    assert ids(RunFilter(target="cf", plan="nightly-cf")) == [restore, verify, backup]
    assert ids(RunFilter(kind=RunKind.BACKUP)) == [backup]
    assert ids(RunFilter(state=RunState.RUNNING)) == [verify]
    assert ids(RunFilter(since=BASE + timedelta(minutes=30))) == [restore, verify]


def test_unknown_subject_is_run_not_found_and_nothing_is_stored(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A subject_run_id naming no run raises RunNotFound with that id; the run is not stored."""
    verify = _verify(new_run, "20260101T000000Z-deadbeef")

    with pytest.raises(RunNotFound) as caught:
        any_catalog.create_run(verify)

    assert caught.value.run_id == "20260101T000000Z-deadbeef"
    assert any_catalog.list_runs(RunFilter()) == []


# -- record_verification ---------------------------------------------------------------------


def test_record_verification_sets_restorable_and_verified_at(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """record_verification returns the run with restorable and verified_at set, all else kept."""
    backup = _backup(any_catalog, new_run)
    before = any_catalog.get_run(backup)
    at = BASE + timedelta(hours=1, microseconds=250)

    recorded = any_catalog.record_verification(backup, False, at)

    assert recorded.restorable is False
    assert recorded.verified_at == at
    assert recorded == dataclasses.replace(before, restorable=False, verified_at=at)
    assert any_catalog.get_run(backup) == recorded


def test_record_verification_overwrites_an_earlier_one(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A later verification replaces both fields (restorable may go either way, or repeat)."""
    backup = _backup(any_catalog, new_run)

    for hours, restorable in ((1, True), (2, False), (3, True), (4, True)):
        at = BASE + timedelta(hours=hours)
        any_catalog.record_verification(backup, restorable, at)

        got = any_catalog.get_run(backup)
        assert (got.restorable, got.verified_at) == (restorable, at)
        assert type(got.restorable) is bool


def test_record_verification_in_any_state_changes_nothing_else(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """An active run can be marked too; it keeps its state and its claim on the target."""
    running = any_catalog.create_run(new_run(created_at=BASE, state=RunState.RUNNING)).id
    queued = any_catalog.create_run(new_run(target="director", state=RunState.QUEUED)).id

    any_catalog.record_verification(running, False, BASE + timedelta(minutes=1))
    any_catalog.record_verification(queued, True, BASE + timedelta(minutes=1))

    assert any_catalog.get_run(running).state is RunState.RUNNING
    assert any_catalog.get_run(queued).state is RunState.QUEUED
    with pytest.raises(TargetBusy):
        any_catalog.create_run(new_run(state=RunState.RUNNING))


def test_record_verification_of_an_unknown_run_is_run_not_found(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """An unknown id (or a mere prefix of a known one) raises RunNotFound and changes nothing."""
    backup = _backup(any_catalog, new_run)

    for run_id in ("20260101T000000Z-deadbeef", backup[:12]):
        with pytest.raises(RunNotFound) as caught:
            any_catalog.record_verification(run_id, False, BASE)
        assert caught.value.run_id == run_id
    assert any_catalog.get_run(backup).restorable is None


# -- verifies hold no target -----------------------------------------------------------------


def test_running_verify_does_not_block_a_backup(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """With a verify of cf RUNNING, a backup of cf is created RUNNING, or started from QUEUED."""
    subject = _backup(any_catalog, new_run)
    any_catalog.create_run(_verify(new_run, subject))

    first = any_catalog.create_run(new_run(state=RunState.RUNNING))
    any_catalog.transition(first.id, [RunState.RUNNING], RunState.SUCCEEDED)
    queued = any_catalog.create_run(new_run()).id
    second = any_catalog.transition(queued, [RunState.QUEUED], RunState.RUNNING)

    assert (first.state, second.state) == (RunState.RUNNING, RunState.RUNNING)


def test_running_backup_does_not_block_a_verify(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """With a backup of cf RUNNING, a verify of cf is created RUNNING, or started from QUEUED."""
    subject = _backup(any_catalog, new_run)
    any_catalog.create_run(new_run(state=RunState.RUNNING))

    created = any_catalog.create_run(_verify(new_run, subject))
    queued = any_catalog.create_run(_verify(new_run, subject, state=RunState.QUEUED)).id
    started = any_catalog.transition(
        queued, [RunState.QUEUED], RunState.RUNNING, RunUpdate(started_at=BASE)
    )

    assert (created.state, started.state) == (RunState.RUNNING, RunState.RUNNING)


def test_two_verifies_of_one_target_run_together(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """Verifies of the same target (and the same backup) run at once, however they start."""
    subject = _backup(any_catalog, new_run)
    any_catalog.create_run(_verify(new_run, subject))
    any_catalog.create_run(_verify(new_run, subject))
    queued = any_catalog.create_run(_verify(new_run, subject, state=RunState.QUEUED)).id
    any_catalog.transition(queued, [RunState.QUEUED], RunState.RUNNING)

    running = any_catalog.list_runs(RunFilter(kind=RunKind.VERIFY, state=RunState.RUNNING))
    assert len(running) == 3


def test_a_backup_still_conflicts_with_a_backup(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """Among running verifies, a second backup of cf is TargetBusy naming the first backup —
    also after a verify finishes (a verify releases nothing it did not hold)."""
    subject = _backup(any_catalog, new_run)
    verify = any_catalog.create_run(_verify(new_run, subject)).id
    holder = any_catalog.create_run(new_run(state=RunState.RUNNING)).id
    any_catalog.create_run(_verify(new_run, subject))

    with pytest.raises(TargetBusy) as created:
        any_catalog.create_run(new_run(state=RunState.RUNNING))
    any_catalog.transition(verify, [RunState.RUNNING], RunState.SUCCEEDED)
    queued = any_catalog.create_run(new_run()).id
    with pytest.raises(TargetBusy) as started:
        any_catalog.transition(queued, [RunState.QUEUED], RunState.RUNNING)

    assert (created.value.target, created.value.holder) == ("cf", holder)
    assert started.value.holder == holder
    assert any_catalog.get_run(queued).state is RunState.QUEUED


def test_other_kinds_still_hold_their_target(any_catalog: Catalog, new_run: NewRunFactory) -> None:
    """Every target-holding kind other than backup (restore, drill, cleanups, …) still blocks."""
    for n, kind in enumerate(sorted(TARGET_HOLDING_KINDS - {RunKind.BACKUP})):
        target = f"t{n}"
        holder = any_catalog.create_run(new_run(kind=kind, target=target, state=RunState.RUNNING))
        with pytest.raises(TargetBusy) as caught:
            any_catalog.create_run(new_run(target=target, state=RunState.RUNNING))
        assert caught.value.holder == holder.id


# -- SQL only: what the rows hold ------------------------------------------------------------


def test_a_verify_never_sets_active_target(
    catalog: SqlCatalog, migrated_url: str, new_run: NewRunFactory
) -> None:
    """active_target stays NULL for a verify created RUNNING or moved to RUNNING; a backup's is
    set and released as before."""
    subject = _backup(catalog, new_run)
    created = catalog.create_run(_verify(new_run, subject)).id
    queued = catalog.create_run(_verify(new_run, subject, state=RunState.QUEUED)).id
    catalog.transition(queued, [RunState.QUEUED], RunState.RUNNING)
    backup = catalog.create_run(new_run(state=RunState.RUNNING)).id

    assert [_active_target(migrated_url, r) for r in (created, queued, backup)] == [
        None,
        None,
        "cf",
    ]
    catalog.transition(backup, [RunState.RUNNING], RunState.SUCCEEDED)
    assert _active_target(migrated_url, backup) is None


def test_deleting_a_subject_sets_null_and_bulk_deletes_work(
    catalog: SqlCatalog, migrated_url: str, new_run: NewRunFactory
) -> None:
    """Deleting a backup row leaves the runs about it with subject_run_id NULL (ON DELETE SET
    NULL), and one DELETE of a backup with its verifies succeeds on every backend."""
    first = _backup(catalog, new_run)
    about_first = catalog.create_run(_verify(new_run, first, state=RunState.SUCCEEDED)).id
    second = _backup(catalog, new_run)
    about_second = catalog.create_run(_verify(new_run, second, state=RunState.SUCCEEDED)).id

    db = Database(migrated_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(delete(runs).where(runs.c.id == first))
        with db.engine.begin() as conn:
            conn.execute(delete(runs).where(runs.c.id.in_([second, about_second])))
    finally:
        db.dispose()

    assert catalog.get_run(about_first).subject_run_id is None
    assert [r.id for r in catalog.list_runs(RunFilter())] == [about_first]
