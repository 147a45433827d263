"""Firings of scheduled jobs (verify jobs, drills) on every backend and on the fake: one claim
per ``(job, scheduled_for)``, the run attached to it, the latest firing, the firing count."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog
from bbr_orchestrator.adapters.catalog.schema import Database
from bbr_orchestrator.adapters.catalog.tables import job_firings
from bbr_orchestrator.core.models import NewRun, RunKind
from bbr_orchestrator.errors import RunNotFound
from bbr_orchestrator.ports import Catalog

NewRunFactory = Callable[..., NewRun]
FIRED = datetime(2026, 3, 1, 6, 0, 0, 250000, tzinfo=UTC)
DAEMONS = 8


def _job() -> str:
    """A job name no other test uses (the session's databases are shared between tests)."""
    return f"verify:nightly-{secrets.token_hex(4)}"


def test_the_first_claim_of_a_firing_wins_and_every_later_one_loses(any_catalog: Catalog) -> None:
    """A firing is claimed once: the same daemon or another asking again gets False."""
    job = _job()
    assert any_catalog.claim_job_firing(job, FIRED, "d1", FIRED) is True
    assert any_catalog.claim_job_firing(job, FIRED, "d2", FIRED + timedelta(seconds=1)) is False
    assert any_catalog.claim_job_firing(job, FIRED, "d1", FIRED + timedelta(seconds=2)) is False


def test_other_firings_and_other_jobs_are_claimed_independently(any_catalog: Catalog) -> None:
    """Another fire time of the same job, or the same time of another job, is its own claim."""
    job, other = _job(), f"drill:nightly:sandbox-{secrets.token_hex(4)}"
    assert any_catalog.claim_job_firing(job, FIRED, "d1", FIRED)
    assert any_catalog.claim_job_firing(job, FIRED + timedelta(minutes=1), "d2", FIRED)
    assert any_catalog.claim_job_firing(other, FIRED, "d2", FIRED)


def test_the_same_instant_in_another_zone_is_the_same_firing(any_catalog: Catalog) -> None:
    """Firings are instants: 07:00:00.25 Berlin (winter) is the 06:00:00.25 UTC firing."""
    job = _job()
    assert any_catalog.claim_job_firing(job, FIRED, "d1", FIRED)
    berlin = FIRED.astimezone(ZoneInfo("Europe/Berlin"))
    assert any_catalog.claim_job_firing(job, berlin, "d2", FIRED) is False


def test_naive_times_are_refused(any_catalog: Catalog) -> None:
    """A firing without a time zone is a bug: ValueError, nothing claimed."""
    job = _job()
    with pytest.raises(ValueError, match="timezone-aware"):
        any_catalog.claim_job_firing(job, FIRED.replace(tzinfo=None), "d1", FIRED)
    assert any_catalog.last_job_firing(job) is None


def test_last_job_firing_is_the_latest_claimed_time_of_that_job(any_catalog: Catalog) -> None:
    """None before any firing; then the newest scheduled_for (as UTC, microseconds kept),
    whatever the order of the claims and whatever other jobs fired."""
    job, other = _job(), _job()
    assert any_catalog.last_job_firing(job) is None
    later = FIRED + timedelta(hours=1)
    any_catalog.claim_job_firing(job, later, "d1", FIRED)
    any_catalog.claim_job_firing(job, FIRED, "d1", FIRED)
    any_catalog.claim_job_firing(other, later + timedelta(days=1), "d1", FIRED)
    last = any_catalog.last_job_firing(job)
    assert last == later and last is not None and last.utcoffset() == timedelta(0)


def test_count_job_firings_counts_the_earlier_firings_of_that_job(any_catalog: Catalog) -> None:
    """The firing number of a rolling verify: firings of the job strictly before the bound."""
    job, other = _job(), _job()
    times = [FIRED + timedelta(minutes=m) for m in (0, 10, 20, 30)]
    for moment in reversed(times):
        any_catalog.claim_job_firing(job, moment, "d1", FIRED)
    any_catalog.claim_job_firing(other, FIRED - timedelta(days=1), "d1", FIRED)
    assert [any_catalog.count_job_firings(job, t) for t in times] == [0, 1, 2, 3]
    assert any_catalog.count_job_firings(job, times[-1] + timedelta(microseconds=1)) == 4
    assert any_catalog.count_job_firings(f"verify:{secrets.token_hex(4)}", times[-1]) == 0


def test_attach_job_run_needs_the_run_and_the_firing(
    any_catalog: Catalog, new_run: NewRunFactory
) -> None:
    """A firing takes the id of the run it started; an unknown run or an unclaimed firing is
    RunNotFound."""
    job = _job()
    run = any_catalog.create_run(new_run(kind=RunKind.VERIFY))
    any_catalog.claim_job_firing(job, FIRED, "d1", FIRED)
    any_catalog.attach_job_run(job, FIRED, run.id)
    any_catalog.attach_job_run(job, FIRED, run.id)  # again: the same value, no error
    with pytest.raises(RunNotFound, match="no such run"):
        any_catalog.attach_job_run(job, FIRED, "20260301T060000Z-00000000")
    with pytest.raises(RunNotFound, match="no firing of job"):
        any_catalog.attach_job_run(job, FIRED + timedelta(minutes=1), run.id)


def test_the_attached_run_is_stored_on_the_firing_row(
    catalog: SqlCatalog, migrated_url: str, new_run: NewRunFactory
) -> None:
    """The row holds who claimed it, when, and (after attach) the run it started."""
    job = _job()
    run = catalog.create_run(new_run(kind=RunKind.DRILL, target="sandbox"))
    claimed = FIRED + timedelta(seconds=2)
    catalog.claim_job_firing(job, FIRED, "jumpbox-7", claimed)
    catalog.attach_job_run(job, FIRED, run.id)
    db = Database(migrated_url)
    try:
        with db.engine.connect() as conn:
            row = conn.execute(select(job_firings).where(job_firings.c.job == job)).one()
    finally:
        db.dispose()
    assert (row.scheduled_for, row.daemon_instance, row.claimed_at, row.run_id) == (
        FIRED,
        "jumpbox-7",
        claimed,
        run.id,
    )


@pytest.fixture
def daemons(catalog: SqlCatalog, migrated_url: str) -> Iterator[list[SqlCatalog]]:
    """Eight catalogs on the test database, each with its own pool (one per simulated daemon)."""
    with ExitStack() as stack:
        yield [stack.enter_context(open_catalog(migrated_url)) for _ in range(DAEMONS)]


def _race(daemons: list[SqlCatalog], job: str) -> list[object]:
    """Every daemon claims ``job`` at ``FIRED`` at once (one thread each, released together)."""
    barrier = threading.Barrier(len(daemons))
    results: list[object] = [None] * len(daemons)

    def claim(i: int) -> None:
        barrier.wait()
        try:
            results[i] = daemons[i].claim_job_firing(job, FIRED, f"d{i}", FIRED)
        except Exception as exc:  # noqa: BLE001 -- every outcome is recorded and checked
            results[i] = exc

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(daemons))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_daemons_racing_for_one_firing_get_exactly_one_true(
    daemons: list[SqlCatalog], catalog: SqlCatalog
) -> None:
    """Eight daemons claiming one firing at the same moment: one True, seven False, no error
    (deadlocks and certification conflicts on MariaDB are retried, not surfaced)."""
    for round_ in range(3):
        job = _job()
        results = _race(daemons, job)
        assert sorted(results, key=str) == [False] * (DAEMONS - 1) + [True], (round_, results)
        assert catalog.last_job_firing(job) == FIRED
        assert catalog.count_job_firings(job, FIRED + timedelta(seconds=1)) == 1
