"""Which firing a plan is on, and what was missed while no daemon ran.

Firings are identified by their cron time (``scheduled_for``): every daemon computes the same
one for the same moment, so the catalog's unique ``(plan, scheduled_for)`` makes a firing run
exactly once however many daemons share the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

#: At most this many missed firings are recorded per plan on start (older ones are summarised).
MAX_MISSED_RECORDED = 100


def fire_times(trigger: CronTrigger, after: datetime, until: datetime) -> list[datetime]:
    """Fire times ``t`` with ``after < t <= until``, oldest first."""
    times: list[datetime] = []
    moment = trigger.get_next_fire_time(None, after)
    while moment is not None and moment <= until:
        if moment > after:
            times.append(moment)
        moment = trigger.get_next_fire_time(moment, moment + timedelta(microseconds=1))
    return times


def current_firing(trigger: CronTrigger, now: datetime, grace: timedelta) -> datetime | None:
    """The latest fire time in ``(now - grace, now]``: the firing a job running now is for
    (APScheduler 3 does not hand the scheduled time to the job; coalescing keeps the latest)."""
    times = fire_times(trigger, now - grace, now)
    return times[-1] if times else None


@dataclass(frozen=True)
class CatchUp:
    """What to do on start about the firings since the last one recorded."""

    due: datetime | None
    """Missed by less than the grace period: run it once now."""
    missed: tuple[datetime, ...]
    """Missed for good (newest ``MAX_MISSED_RECORDED``): record them as missed."""
    not_recorded: int
    """Missed firings older still, counted but not recorded one by one."""


def catch_up(
    trigger: CronTrigger, last: datetime | None, now: datetime, grace: timedelta
) -> CatchUp:
    """Firings after ``last`` (the newest recorded for the plan) up to ``now``. A plan never
    fired before has nothing to catch up on."""
    if last is None:
        return CatchUp(None, (), 0)
    times = fire_times(trigger, last, now)
    due = times[-1] if times and times[-1] > now - grace else None
    missed = [t for t in times if t != due]
    kept = missed[-MAX_MISSED_RECORDED:]
    return CatchUp(due, tuple(kept), len(missed) - len(kept))
