"""Plan schedules: next fire times in each plan's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bbr_orchestrator.config.schema import PlanConfig
from bbr_orchestrator.service.schedule import cron_trigger, plan_schedules, trigger


def plan(schedule: str, timezone: str, *, paused: bool = False) -> PlanConfig:
    return PlanConfig(
        name="nightly",
        targets=["bosh-director"],
        schedule=schedule,
        timezone=timezone,
        paused=paused,
    )


def test_next_fire_is_in_the_plans_zone() -> None:
    """02:00 Europe/Berlin in winter is 01:00 UTC."""
    (item,) = plan_schedules(
        [plan("0 2 * * *", "Europe/Berlin")], datetime(2026, 11, 27, 12, tzinfo=UTC)
    )
    assert item.next_fire is not None
    assert item.next_fire.astimezone(UTC) == datetime(2026, 11, 28, 1, tzinfo=UTC)


def test_summer_time_shifts_the_utc_time() -> None:
    """The same plan fires at 00:00 UTC once Berlin is on summer time."""
    (item,) = plan_schedules(
        [plan("0 2 * * *", "Europe/Berlin")], datetime(2027, 6, 1, 12, tzinfo=UTC)
    )
    assert item.next_fire is not None
    assert item.next_fire.astimezone(UTC) == datetime(2027, 6, 2, 0, tzinfo=UTC)


def test_paused_plan_has_no_next_fire() -> None:
    """A paused plan stays listed, with no next fire time."""
    (item,) = plan_schedules(
        [plan("0 2 * * *", "UTC", paused=True)], datetime(2026, 11, 27, tzinfo=UTC)
    )
    assert item.paused and item.next_fire is None


def test_naive_now_is_refused() -> None:
    """Time is always timezone-aware here."""
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_schedules([plan("0 2 * * *", "UTC")], datetime(2026, 11, 27))


def test_a_job_trigger_has_its_own_schedule_and_zone() -> None:
    """A verify job or drill fires on its own cron line in its own zone, seconds included."""
    cron = cron_trigger("0 6 * * 6", "Europe/Berlin")
    after = datetime(2026, 11, 27, 12, tzinfo=UTC)  # a Friday
    fire = cron.get_next_fire_time(None, after)
    assert fire is not None and fire.astimezone(UTC) == datetime(2026, 11, 28, 5, tzinfo=UTC)
    every5 = cron_trigger("*/5 * * * * *", "UTC")
    fire = every5.get_next_fire_time(None, datetime(2026, 11, 27, 12, 0, 1, tzinfo=UTC))
    assert fire == datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)


def test_a_plans_trigger_is_its_schedule_in_its_zone() -> None:
    """trigger(plan) is cron_trigger(plan.schedule, plan.timezone)."""
    nightly = plan("0 2 * * *", "Europe/Berlin")
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert trigger(nightly).get_next_fire_time(None, now) == cron_trigger(
        "0 2 * * *", "Europe/Berlin"
    ).get_next_fire_time(None, now)


def test_a_plans_verify_job_and_drills_are_listed_with_their_next_fire() -> None:
    """Each plan lists its verify job and drills, each at its own schedule and zone."""
    nightly = PlanConfig.model_validate(
        {
            "name": "nightly",
            "targets": ["bosh-director"],
            "schedule": "0 2 * * *",
            "timezone": "UTC",
            "verify": {
                "schedule": "0 8 * * *",
                "timezone": "Europe/Berlin",
                "mode": "rolling",
                "rolling_percent": 25,
            },
            "drills": [
                {
                    "target": "sandbox",
                    "source": "bosh-director",
                    "schedule": "0 6 * * 6",
                    "timezone": "UTC",
                }
            ],
        }
    )
    (item,) = plan_schedules([nightly], datetime(2026, 11, 27, 12, tzinfo=UTC))
    verify, drill = item.jobs
    assert verify.job == "verify (rolling 25%)"
    assert verify.next_fire is not None
    assert verify.next_fire.astimezone(UTC) == datetime(2026, 11, 28, 7, tzinfo=UTC)
    assert drill.job == "drill bosh-director -> sandbox"
    assert drill.next_fire == datetime(2026, 11, 28, 6, tzinfo=UTC)  # a Saturday
    paused = nightly.model_copy(update={"paused": True})
    assert all(job.next_fire is None for job in plan_schedules([paused], datetime.now(UTC))[0].jobs)
