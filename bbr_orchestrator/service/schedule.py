"""When plans and their jobs fire: APScheduler cron triggers, each in its own time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bbr_orchestrator.config.schema import PlanConfig
from bbr_orchestrator.core.cron import parse_crontab


@dataclass(frozen=True)
class JobSchedule:
    """A plan's verify job or restore drill and its next firing (None when the plan is paused)."""

    job: str
    """``verify (latest)``, ``verify (rolling 10%)`` or ``drill SOURCE -> DRILL_TARGET``."""
    schedule: str
    timezone: str
    next_fire: datetime | None


@dataclass(frozen=True)
class PlanSchedule:
    """A plan's schedule and its next firing (None when paused), with its jobs."""

    plan: str
    targets: tuple[str, ...]
    schedule: str
    timezone: str
    paused: bool
    next_fire: datetime | None
    jobs: tuple[JobSchedule, ...] = ()


def cron_trigger(schedule: str, timezone: str) -> CronTrigger:
    """A cron trigger for ``schedule`` (crontab weekdays: 0 = Sunday; 6 fields: seconds
    first), evaluated in ``timezone`` (DST handled by APScheduler). Plans, verify jobs and
    drills all fire through this."""
    fields = parse_crontab(schedule).as_kwargs()
    return CronTrigger(timezone=ZoneInfo(timezone), **fields)


def trigger(plan: PlanConfig) -> CronTrigger:
    """The plan's cron trigger, in the plan's time zone."""
    return cron_trigger(plan.schedule, plan.timezone)


def plan_schedules(plans: list[PlanConfig], now: datetime) -> list[PlanSchedule]:
    """Every plan with its next fire time after ``now`` (aware), in the plan's zone."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    out = []
    for plan in plans:

        def next_fire(schedule: str, timezone: str, paused: bool = plan.paused) -> datetime | None:
            return (
                None if paused else cron_trigger(schedule, timezone).get_next_fire_time(None, now)
            )

        jobs = []
        if plan.verify is not None:
            verify = plan.verify
            mode = "latest" if verify.mode == "latest" else f"rolling {verify.rolling_percent}%"
            when = next_fire(verify.schedule, verify.timezone)
            jobs.append(JobSchedule(f"verify ({mode})", verify.schedule, verify.timezone, when))
        for drill in plan.drills:
            when = next_fire(drill.schedule, drill.timezone)
            label = f"drill {drill.source} -> {drill.target}"
            jobs.append(JobSchedule(label, drill.schedule, drill.timezone, when))
        out.append(
            PlanSchedule(
                plan=plan.name,
                targets=tuple(plan.targets),
                schedule=plan.schedule,
                timezone=plan.timezone,
                paused=plan.paused,
                next_fire=next_fire(plan.schedule, plan.timezone),
                jobs=tuple(jobs),
            )
        )
    return out
