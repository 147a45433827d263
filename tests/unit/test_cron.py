"""Crontab expressions as operators mean them, under APScheduler 3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger

from bbr_orchestrator.core.cron import CronSyntaxError, parse_crontab

FRIDAY = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _next(expression: str, after: datetime = FRIDAY) -> datetime:
    trigger = CronTrigger(timezone=UTC, **parse_crontab(expression).as_kwargs())
    moment = trigger.get_next_fire_time(None, after)
    assert moment is not None
    return moment


@pytest.mark.parametrize(
    ("weekday", "expected"),
    [("0", "Sunday"), ("7", "Sunday"), ("1", "Monday"), ("6", "Saturday"), ("sat", "Saturday")],
)
def test_weekday_numbers_follow_crontab(weekday: str, expected: str) -> None:
    """Weekday 0 and 7 are Sunday, 6 Saturday (APScheduler 3 alone would say 0 = Monday)."""
    assert _next(f"0 2 * * {weekday}").strftime("%A") == expected


def test_weekday_ranges_lists_and_steps_are_translated() -> None:
    """Ranges, lists and steps of numeric weekdays become the same days by name."""
    assert parse_crontab("0 2 * * 1-5").day_of_week == "mon,tue,wed,thu,fri"
    assert parse_crontab("0 2 * * 0,3").day_of_week == "sun,wed"
    assert parse_crontab("0 2 * * */2").day_of_week == "sun,tue,thu,sat"
    assert parse_crontab("0 2 * * 5-7").day_of_week == "fri,sat,sun"


def test_five_fields_fire_on_the_minute_and_six_take_seconds() -> None:
    """Five fields fire at second 0; a sixth, leading field sets the seconds."""
    assert _next("30 2 * * *") == datetime(2026, 11, 28, 2, 30, tzinfo=UTC)
    later = FRIDAY + timedelta(seconds=1)
    assert _next("*/15 * * * * *", later) == datetime(2026, 11, 27, 12, 0, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("0 2 1 * 1", "both day of month and weekday"),
        ("0 2 * *", "expected 5 fields"),
        ("0 2 * * 8", "out of range"),
        ("0 2 * * mon-5", "numbers or names"),
    ],
)
def test_ambiguous_or_malformed_schedules_are_refused(expression: str, reason: str) -> None:
    """Schedules crontab and APScheduler would read differently, or malformed, are refused."""
    with pytest.raises(CronSyntaxError, match=reason):
        parse_crontab(expression)
