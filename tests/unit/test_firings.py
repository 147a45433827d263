"""Which firing a plan is on, and what a daemon catches up on at start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from bbr_orchestrator.core.cron import parse_crontab
from bbr_orchestrator.service.firings import MAX_MISSED_RECORDED, catch_up, current_firing

HOURLY = CronTrigger(timezone=UTC, **parse_crontab("0 * * * *").as_kwargs())
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_current_firing_is_the_latest_due_time_within_the_grace() -> None:
    """A job running a little late is for the latest cron time, which every daemon agrees on."""
    assert current_firing(HOURLY, T0 + timedelta(seconds=3), timedelta(minutes=5)) == T0
    assert current_firing(HOURLY, T0, timedelta(minutes=5)) == T0
    assert current_firing(HOURLY, T0 + timedelta(minutes=6), timedelta(minutes=5)) is None


def test_a_plan_never_fired_has_nothing_to_catch_up() -> None:
    """No earlier firing recorded: no backlog of missed firings is invented."""
    result = catch_up(HOURLY, None, T0, timedelta(hours=1))
    assert (result.due, result.missed, result.not_recorded) == (None, (), 0)


def test_recent_firing_runs_once_and_older_ones_are_missed() -> None:
    """Down for 3.5 hours with 1 hour grace: the last firing runs, the two before are missed."""
    now = T0 + timedelta(hours=3, minutes=30)
    result = catch_up(HOURLY, T0, now, timedelta(hours=1))
    assert result.due == T0 + timedelta(hours=3)
    assert result.missed == (T0 + timedelta(hours=1), T0 + timedelta(hours=2))


def test_firings_older_than_the_grace_are_all_missed() -> None:
    """Down for longer than the grace past the last firing: nothing runs, each is missed."""
    now = T0 + timedelta(hours=2, minutes=30)
    result = catch_up(HOURLY, T0, now, timedelta(minutes=10))
    assert result.due is None
    assert result.missed == (T0 + timedelta(hours=1), T0 + timedelta(hours=2))


def test_a_long_outage_records_a_bounded_number_of_misses() -> None:
    """A month offline records the newest misses one by one and counts the rest."""
    now = T0 + timedelta(days=30)
    result = catch_up(HOURLY, T0, now, timedelta(minutes=10))
    assert result.due == now
    assert len(result.missed) == MAX_MISSED_RECORDED
    assert result.missed[-1] == now - timedelta(hours=1)
    assert result.not_recorded + len(result.missed) + 1 == 30 * 24
