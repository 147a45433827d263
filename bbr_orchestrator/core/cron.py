"""Crontab expressions as operators write them, turned into APScheduler 3 cron fields.

Two differences between crontab(5) and APScheduler 3's ``CronTrigger`` would silently move a
backup to another day, so they are settled here, in one place:

* weekday numbers: crontab counts 0 (and 7) as Sunday, APScheduler 3 counts 0 as Monday. Every
  numeric weekday is rewritten as a weekday name, which both read the same way;
* a schedule restricting both day-of-month and weekday fires when *either* matches in crontab
  but when *both* match in APScheduler. Such a schedule is refused with an explanation.

A sixth, leading field (seconds) is accepted for schedules that must fire more often than once
a minute (tests, demos).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMERIC = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")


class CronSyntaxError(ValueError):
    """A crontab expression this module refuses (message says why)."""


@dataclass(frozen=True)
class CronFields:
    """Keyword arguments for APScheduler 3's ``CronTrigger``."""

    second: str
    minute: str
    hour: str
    day: str
    month: str
    day_of_week: str

    def as_kwargs(self) -> dict[str, str]:
        return {
            "second": self.second,
            "minute": self.minute,
            "hour": self.hour,
            "day": self.day,
            "month": self.month,
            "day_of_week": self.day_of_week,
        }


def parse_crontab(expression: str) -> CronFields:
    """``minute hour day month weekday`` (or with a leading ``second``) as cron fields."""
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise CronSyntaxError(
            f"expected 5 fields (minute hour day month weekday) or 6 (with a leading second), "
            f"got {len(fields)}"
        )
    second, minute, hour, day, month, weekday = fields
    if day not in ("*", "?") and weekday not in ("*", "?"):
        raise CronSyntaxError(
            "restricts both day of month and weekday, which crontab reads as 'either' and "
            "the scheduler as 'both'; use only one of them"
        )
    return CronFields(
        second=second,
        minute=minute,
        hour=hour,
        day="*" if day == "?" else day,
        month=month,
        day_of_week=_weekdays("*" if weekday == "?" else weekday),
    )


def _weekdays(field: str) -> str:
    """Numeric crontab weekdays (0 or 7 = Sunday) as names; names pass through unchanged."""
    if field == "*":
        return field
    out: list[str] = []
    for token in field.split(","):
        match = _NUMERIC.match(token)
        if match is None:
            if any(ch.isdigit() for ch in token):
                raise CronSyntaxError(f"weekday {token!r}: use numbers or names, not both")
            out.append(token)
            continue
        span, step_text = match.groups()
        if span == "*":
            low, high = 0, 6
        else:
            low_text, _, high_text = span.partition("-")
            low = int(low_text)
            high = int(high_text) if high_text else (low if step_text is None else 7)
        step = int(step_text) if step_text else 1
        if not (0 <= low <= 7 and 0 <= high <= 7) or low > high or step < 1:
            raise CronSyntaxError(f"weekday {token!r} is out of range (0-7, 0 and 7 are Sunday)")
        for number in range(low, high + 1, step):
            name = WEEKDAYS[number % 7]
            if name not in out:
                out.append(name)
    return ",".join(out)
