"""Retention planning: which restore points of a plan to keep, which to delete, and why.

Pure: :func:`plan_prune` sees only the points, the policy, the time and the plan's time zone,
and gives the same answer for the same inputs (whatever their order).

The unit is a restore point (one firing of a plan: every backup step). Only *good* points
count: complete, not found damaged by a verification, not being deleted. Among them the rules
keep:

* the newest good point, always;
* ``keep_last`` newest;
* everything newer than ``keep_within``;
* the newest good point of each of the last ``keep_daily`` days, ``keep_weekly`` ISO weeks,
  ``keep_monthly`` months and ``keep_yearly`` years *that have one* (grandfather-father-son,
  calendar periods in the plan's time zone, as restic and borg count them);
* then, if fewer than ``min_good`` good points are kept, the newest of the others until there
  are (the floor that holds even when every newer backup fails).

A pinned point is never deleted. A point that is not good (failed, partial, interrupted,
cancelled, damaged) goes once it is older than ``incomplete_keep_for`` — but never one newer
than the newest good point (it may hold the only recent backup of some target), nor one
still running.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from bbr_orchestrator.errors import OrchestratorError, RunConflict


@dataclass(frozen=True)
class Policy:
    """What to keep (see the module docstring); zero (or None) turns a rule off."""

    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: timedelta | None = None
    min_good: int = 1
    incomplete_keep_for: timedelta = timedelta(days=3)

    def __post_init__(self) -> None:
        counts = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
        for name in (*counts, "min_good"):
            if getattr(self, name) < 0:
                raise ValueError(f"Policy.{name} must be >= 0, got {getattr(self, name)}")

    def describe(self) -> str:
        """``keep-last 7, daily 7, weekly 4, within 14d, min 2 good, incomplete 3d``."""
        parts = [f"keep-last {self.keep_last}"] if self.keep_last else []
        for name, count in self.periods():
            if count:
                parts.append(f"{name} {count}")
        if self.keep_within is not None:
            parts.append(f"within {duration_text(self.keep_within)}")
        parts.append(f"min {self.min_good} good")
        parts.append(f"incomplete {duration_text(self.incomplete_keep_for)}")
        return ", ".join(parts)

    def periods(self) -> tuple[tuple[str, int], ...]:
        return (
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        )


@dataclass(frozen=True)
class PointInfo:
    """What retention needs to know of one restore point."""

    id: str
    at: datetime
    """Its age: the cron fire time, or when it was created (started by hand). Aware."""
    good: bool
    """Complete, not found damaged, not being deleted."""
    pinned: bool = False
    """Some backup of it is pinned."""
    active: bool = False
    """Still queued or running."""
    state: str = "complete"
    """What it is, for the reasons (``complete``, ``failed``, ``damaged`` …)."""


@dataclass(frozen=True)
class Decision:
    """One point and why it is kept (or deleted); never without a reason."""

    point: PointInfo
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class PrunePlan:
    """Every point once: in ``keep`` or in ``delete``, each newest first."""

    keep: tuple[Decision, ...]
    delete: tuple[Decision, ...]

    @property
    def delete_ids(self) -> frozenset[str]:
        return frozenset(d.point.id for d in self.delete)


class DeletionConflict(RunConflict):
    """A backup cannot be pinned (its deletion has begun) or deleted (it is pinned)."""

    def __init__(self, run_id: str, reason: str) -> None:
        OrchestratorError.__init__(self, f"run {run_id}: {reason}")
        self.run_id = run_id
        self.expected = ()
        self.actual = None
        self.reason = reason


def plan_prune(points: Sequence[PointInfo], policy: Policy, now: datetime, tz: tzinfo) -> PrunePlan:
    """Decide, for every point, keep or delete, with the reasons (see the module docstring).

    ``ValueError`` for a naive time or a repeated id."""
    _check(points, now)
    ordered = sorted(points, key=_newest_key, reverse=True)
    reasons: dict[str, list[str]] = {p.id: [] for p in ordered}
    good = [p for p in ordered if p.good and not p.active]
    for point in ordered:
        if point.pinned:
            reasons[point.id].append("pinned")
    if good:
        reasons[good[0].id].append("the newest good restore point")
    for point in good[: policy.keep_last]:
        reasons[point.id].append(f"keep-last {policy.keep_last}")
    if policy.keep_within is not None:
        for point in good:
            if point.at >= now - policy.keep_within:
                reasons[point.id].append(f"within {duration_text(policy.keep_within)}")
    for name, count in policy.periods():
        for point, label in _period_slots(good, count, _PERIODS[name], tz):
            reasons[point.id].append(f"{name} {label}")
    kept_good = sum(1 for p in good if reasons[p.id])
    for point in good:
        if kept_good >= policy.min_good:
            break
        if not reasons[point.id]:
            reasons[point.id].append(f"needed for min {policy.min_good} good")
            kept_good += 1
    newest = good[0] if good else None
    good_ids = {p.id for p in good}
    for point in ordered:
        if point.id in good_ids:
            continue
        reasons[point.id].extend(_incomplete_keep(point, newest, policy, now))
    keep = tuple(Decision(p, tuple(reasons[p.id])) for p in ordered if reasons[p.id])
    delete = tuple(Decision(p, (_why_delete(p, policy),)) for p in ordered if not reasons[p.id])
    return PrunePlan(keep, delete)


def duration_text(value: timedelta) -> str:
    """``14d``, ``36h``, ``90m``, ``45s``: the largest whole unit."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _check(points: Sequence[PointInfo], now: datetime) -> None:
    if now.utcoffset() is None:
        raise ValueError("plan_prune needs a timezone-aware now")
    seen: set[str] = set()
    for point in points:
        if point.at.utcoffset() is None:
            raise ValueError(f"restore point {point.id}: its time must be timezone-aware")
        if point.id in seen:
            raise ValueError(f"restore point {point.id} is listed twice")
        seen.add(point.id)


def _newest_key(point: PointInfo) -> tuple[datetime, str]:
    return point.at, point.id


_PERIODS: dict[str, Callable[[datetime], tuple[Hashable, str]]] = {
    "daily": lambda t: (t.date(), t.strftime("%Y-%m-%d")),
    "weekly": lambda t: (
        t.isocalendar()[:2],
        f"{t.isocalendar()[0]}-W{t.isocalendar()[1]:02d}",
    ),
    "monthly": lambda t: ((t.year, t.month), t.strftime("%Y-%m")),
    "yearly": lambda t: (t.year, f"{t.year:04d}"),
}


def _period_slots(
    good: Sequence[PointInfo],
    count: int,
    period: Callable[[datetime], tuple[Hashable, str]],
    tz: tzinfo,
) -> list[tuple[PointInfo, str]]:
    """The newest good point of each of the newest ``count`` periods that have one."""
    slots: list[tuple[PointInfo, str]] = []
    seen: set[Hashable] = set()
    for point in good:  # newest first
        if len(slots) >= count:
            break
        bucket, label = period(point.at.astimezone(tz))
        if bucket not in seen:
            seen.add(bucket)
            slots.append((point, label))
    return slots


def _incomplete_keep(
    point: PointInfo, newest: PointInfo | None, policy: Policy, now: datetime
) -> list[str]:
    """Why a point that is not good stays (empty: it may go)."""
    if point.active:
        return [f"still {point.state}"]
    if newest is None:
        return ["there is no good restore point to fall back on"]
    if _newest_key(point) > _newest_key(newest):
        return ["newer than the newest good restore point"]
    until = point.at + policy.incomplete_keep_for
    if until > now:
        keep_for = duration_text(policy.incomplete_keep_for)
        return [
            f"{point.state}, kept for {keep_for} (until {until.astimezone(UTC):%Y-%m-%d %H:%M}Z)"
        ]
    return []


def _why_delete(point: PointInfo, policy: Policy) -> str:
    if not point.good:
        return f"{point.state}, older than {duration_text(policy.incomplete_keep_for)}"
    rules = [f"keep-last {policy.keep_last}"] if policy.keep_last else []
    rules += [f"{name} {count}" for name, count in policy.periods() if count]
    if policy.keep_within is not None:
        rules.append(f"within {duration_text(policy.keep_within)}")
    if not rules:
        return f"no rule keeps it; not needed for min {policy.min_good} good"
    return f"outside {', '.join(rules)}; not needed for min {policy.min_good} good"
