"""When plans fire: APScheduler cron triggers in each plan's own time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bbr_orchestrator.config.schema import PlanConfig
from bbr_orchestrator.core.cron import parse_crontab


@dataclass(frozen=True)
class PlanSchedule:
    """A plan's schedule and its next firing (None when paused)."""

    plan: str
    targets: tuple[str, ...]
    schedule: str
    timezone: str
    paused: bool
    next_fire: datetime | None


def trigger(plan: PlanConfig) -> CronTrigger:
    """The plan's cron trigger (crontab weekdays: 0 = Sunday), evaluated in the plan's time
    zone (DST handled by APScheduler)."""
    fields = parse_crontab(plan.schedule).as_kwargs()
    return CronTrigger(timezone=ZoneInfo(plan.timezone), **fields)


def plan_schedules(plans: list[PlanConfig], now: datetime) -> list[PlanSchedule]:
    """Every plan with its next fire time after ``now`` (aware), in the plan's zone."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    out = []
    for plan in plans:
        upcoming = None if plan.paused else trigger(plan).get_next_fire_time(None, now)
        out.append(
            PlanSchedule(
                plan=plan.name,
                targets=tuple(plan.targets),
                schedule=plan.schedule,
                timezone=plan.timezone,
                paused=plan.paused,
                next_fire=upcoming,
            )
        )
    return out
