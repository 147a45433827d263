"""Retention planning (``core.retention.plan_prune``): the rules, GFS in the plan's time zone,
the floor of good restore points, pins, and properties that hold for any history."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bbr_orchestrator.core.retention import (
    PointInfo,
    Policy,
    PrunePlan,
    duration_text,
    plan_prune,
)

UTC_TZ = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")


def _nightly(start: datetime, days: int, **fields: object) -> list[PointInfo]:
    return [
        PointInfo(id=f"p{i:04d}", at=start + timedelta(days=i), good=True, **fields)  # type: ignore[arg-type]
        for i in range(days)
    ]


def _kept(plan: PrunePlan) -> set[str]:
    return {d.point.id for d in plan.keep}


def _reasons(plan: PrunePlan, point_id: str) -> tuple[str, ...]:
    return next(d.reasons for d in (*plan.keep, *plan.delete) if d.point.id == point_id)


def test_a_year_of_nightly_backups_keeps_exactly_the_gfs_set() -> None:
    """365 nightly backups at 03:00 UTC (the evening before in New York): daily 7, weekly 5,
    monthly 12, yearly 3 keep exactly the newest backup of the last 7 local days, of the last
    5 ISO weeks, of the last 12 months and of the 2 years that have one — computed here by
    calendar arithmetic, not by bucketing."""
    first = datetime(2025, 11, 15, 3, 0, tzinfo=UTC)
    points = _nightly(first, 365)
    local = {p.id: (p.at - timedelta(days=1)).date() for p in points}  # 22:00/23:00 the day before
    last = max(local.values())
    assert last == date(2026, 11, 13)
    daily = {last - timedelta(days=i) for i in range(7)}
    monday = last - timedelta(days=last.weekday())
    weekly = {last} | {monday - timedelta(days=1 + 7 * j) for j in range(4)}
    monthly = {last}
    year, month = last.year, last.month
    for _ in range(11):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        monthly.add(date(year, month, calendar.monthrange(year, month)[1]))
    yearly = {last, date(2025, 12, 31)}
    expected = {pid for pid, day in local.items() if day in daily | weekly | monthly | yearly}
    policy = Policy(keep_daily=7, keep_weekly=5, keep_monthly=12, keep_yearly=3, min_good=1)

    plan = plan_prune(points, policy, points[-1].at + timedelta(hours=1), NEW_YORK)

    assert _kept(plan) == expected
    # 7 days; Sundays Nov 1, Oct 25, Oct 18 (Nov 8 is a kept day); 11 month ends (Dec 31 is
    # also 2025's newest)
    assert len(expected) == 7 + 3 + 11
    assert len(plan.delete) == 365 - len(expected)
    newest = _reasons(plan, points[-1].id)
    assert newest[0] == "the newest good restore point"
    assert {"daily 2026-11-13", "weekly 2026-W46", "monthly 2026-11", "yearly 2026"} <= set(newest)
    dec31 = next(pid for pid, day in local.items() if day == date(2025, 12, 31))
    assert set(_reasons(plan, dec31)) == {"monthly 2025-12", "yearly 2025"}


def test_the_last_ten_failed_keeps_the_minimum_of_good_ones() -> None:
    """30 good nightly points then 10 failed ones: keep-within 7d alone would leave only the
    newest good point; min_good 3 keeps the 3 newest good ones, and the failed points (newer
    than any good one) all stay."""
    start = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    good = _nightly(start, 30)
    failed = [
        PointInfo(f"f{i:02d}", start + timedelta(days=30 + i), good=False, state="failed")
        for i in range(10)
    ]
    policy = Policy(
        keep_within=timedelta(days=7), min_good=3, incomplete_keep_for=timedelta(days=1)
    )

    plan = plan_prune([*good, *failed], policy, failed[-1].at + timedelta(hours=1), UTC_TZ)

    assert _kept(plan) == {"p0029", "p0028", "p0027"} | {p.id for p in failed}
    assert _reasons(plan, "p0028") == ("needed for min 3 good",)
    assert _reasons(plan, "f00") == ("newer than the newest good restore point",)
    assert plan.delete_ids == {f"p{i:04d}" for i in range(27)}


def test_a_pinned_backup_survives_every_rule() -> None:
    """An old pinned point outside keep-last is kept (reason "pinned"); the rest go."""
    points = _nightly(datetime(2026, 1, 1, 2, 0, tzinfo=UTC), 100)
    points[10] = PointInfo(points[10].id, points[10].at, good=True, pinned=True)

    plan = plan_prune(points, Policy(keep_last=3), points[-1].at, UTC_TZ)

    assert _kept(plan) == {"p0010", "p0097", "p0098", "p0099"}
    assert _reasons(plan, "p0010") == ("pinned",)


def test_damaged_and_incomplete_points_do_not_count_and_go_after_their_own_rule() -> None:
    """keep-last counts good points only; a damaged or partial point older than the newest good
    one goes once older than incomplete_keep_for and stays until then."""
    t0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    points = [
        PointInfo("old-partial", t0, good=False, state="partial"),
        PointInfo("good-1", t0 + timedelta(days=1), good=True),
        PointInfo("damaged", t0 + timedelta(days=2), good=False, state="damaged"),
        PointInfo("good-2", t0 + timedelta(days=3), good=True),
        PointInfo("recent-failed", t0 + timedelta(days=3, hours=1), good=False, state="failed"),
        PointInfo("good-3", t0 + timedelta(days=4), good=True),
    ]
    policy = Policy(keep_last=2, min_good=1, incomplete_keep_for=timedelta(days=2))

    plan = plan_prune(points, policy, t0 + timedelta(days=4, hours=1), UTC_TZ)

    assert _kept(plan) == {"good-3", "good-2", "recent-failed"}
    assert _reasons(plan, "recent-failed") == ("failed, kept for 2d (until 2026-03-06 03:00Z)",)
    assert _reasons(plan, "damaged") == ("damaged, older than 2d",)
    assert _reasons(plan, "good-1") == ("outside keep-last 2; not needed for min 1 good",)


def test_running_points_and_points_without_a_good_one_before_them_stay() -> None:
    """A running point is never deleted; with no good point at all, nothing incomplete goes."""
    t0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    points = [
        PointInfo("failed", t0, good=False, state="failed"),
        PointInfo("running", t0 + timedelta(days=1), good=False, active=True, state="running"),
    ]

    plan = plan_prune(
        points, Policy(incomplete_keep_for=timedelta(hours=1)), t0 + timedelta(days=9), UTC_TZ
    )

    assert plan.delete == ()
    assert _reasons(plan, "running") == ("still running",)
    assert _reasons(plan, "failed") == ("there is no good restore point to fall back on",)


def test_keep_within_keeps_every_good_point_newer_than_the_duration() -> None:
    """keep-within 36h keeps the good points of the last 36 hours, not one older."""
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    points = [PointInfo(f"h{i:02d}", t0 + timedelta(hours=6 * i), good=True) for i in range(12)]
    now = points[-1].at

    plan = plan_prune(points, Policy(keep_within=timedelta(hours=36), min_good=0), now, UTC_TZ)

    assert _kept(plan) == {f"h{i:02d}" for i in range(5, 12)}
    assert "within 36h" in _reasons(plan, "h05")


def test_daily_buckets_are_days_in_the_plan_time_zone() -> None:
    """Two backups on one UTC day but on two New York days fill two daily slots there and one
    in UTC."""
    early = PointInfo("early", datetime(2026, 6, 2, 1, 0, tzinfo=UTC), good=True)  # Jun 1 in NY
    late = PointInfo("late", datetime(2026, 6, 2, 20, 0, tzinfo=UTC), good=True)
    policy = Policy(keep_daily=2, min_good=0)
    now = datetime(2026, 6, 3, tzinfo=UTC)

    assert _kept(plan_prune([early, late], policy, now, NEW_YORK)) == {"early", "late"}
    assert _kept(plan_prune([early, late], policy, now, UTC_TZ)) == {"late"}


def test_bad_inputs_are_refused() -> None:
    """A naive time or an id listed twice is a ValueError; a negative count too."""
    t = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_prune([], Policy(), t.replace(tzinfo=None), UTC_TZ)
    with pytest.raises(ValueError, match="listed twice"):
        plan_prune([PointInfo("a", t, True), PointInfo("a", t, True)], Policy(), t, UTC_TZ)
    with pytest.raises(ValueError, match="keep_daily"):
        Policy(keep_daily=-1)


def test_policy_and_durations_read_as_in_the_config() -> None:
    """The policy summary and durations use the config's units."""
    policy = Policy(keep_last=7, keep_weekly=4, keep_within=timedelta(days=14), min_good=2)
    assert policy.describe() == "keep-last 7, weekly 4, within 14d, min 2 good, incomplete 3d"
    assert [duration_text(timedelta(seconds=s)) for s in (90, 5400, 7200, 45)] == [
        "90s",
        "90m",
        "2h",
        "45s",
    ]


# -- properties -------------------------------------------------------------------------------

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Europe/Berlin"]

point_lists = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=600 * 24),  # hours after T0
        st.booleans(),  # good
        st.integers(min_value=0, max_value=9),  # 0: pinned
        st.integers(min_value=0, max_value=14),  # 0: active
        st.sampled_from(["failed", "partial", "interrupted", "damaged"]),
    ),
    max_size=60,
).map(
    lambda rows: [
        PointInfo(
            id=f"p{i:03d}",
            at=T0 + timedelta(hours=hours),
            good=good,
            pinned=pin == 0,
            active=act == 0,
            state="complete" if good else state,
        )
        for i, (hours, good, pin, act, state) in enumerate(rows)
    ]
)
policies = st.builds(
    Policy,
    keep_last=st.integers(0, 6),
    keep_daily=st.integers(0, 6),
    keep_weekly=st.integers(0, 4),
    keep_monthly=st.integers(0, 4),
    keep_yearly=st.integers(0, 2),
    keep_within=st.none() | st.integers(0, 40).map(lambda d: timedelta(days=d)),
    min_good=st.integers(0, 8),
    incomplete_keep_for=st.integers(0, 20).map(lambda d: timedelta(days=d)),
)
nows = st.integers(min_value=0, max_value=700 * 24).map(lambda h: T0 + timedelta(hours=h))


@settings(max_examples=300, deadline=None)
@given(point_lists, policies, nows, st.sampled_from(ZONES), st.randoms())
def test_properties_hold_for_any_history(
    points: list[PointInfo], policy: Policy, now: datetime, zone: str, rnd: object
) -> None:
    """For any history, policy and clock: every point is decided once with a reason; never a
    pinned, running or newest good point, nor an incomplete one newer than it, is deleted;
    never fewer than min_good good points (or all there are) stay; and the answer is the same
    for the same inputs, whatever their order."""
    tz = ZoneInfo(zone)
    plan = plan_prune(points, policy, now, tz)

    kept, deleted = _kept(plan), plan.delete_ids
    assert kept | deleted == {p.id for p in points} and not kept & deleted
    assert all(d.reasons for d in (*plan.keep, *plan.delete))
    assert not {p.id for p in points if p.pinned or p.active} & deleted
    good = sorted((p for p in points if p.good and not p.active), key=lambda p: (p.at, p.id))
    if good:
        newest = good[-1]
        assert newest.id in kept
        newer_bad = {p.id for p in points if not p.good and (p.at, p.id) > (newest.at, newest.id)}
        assert not newer_bad & deleted
    else:
        assert not {p.id for p in points if not p.good} & deleted
    assert sum(1 for p in good if p.id in kept) >= min(policy.min_good, len(good))
    shuffled = list(points)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert plan_prune(shuffled, policy, now, tz) == plan
