"""The metrics model: families built from catalog aggregates, plan facts and probes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bbr_orchestrator.config import Config
from bbr_orchestrator.config.schema import PlanConfig
from bbr_orchestrator.core.metrics_families import (
    build_families,
    daemon_families,
    possibly_locked,
)
from bbr_orchestrator.core.metrics_model import (
    DURATION_BOUNDS,
    METRIC_NAMES,
    Family,
    MetricType,
    PlanFacts,
    ProbeResult,
    Probes,
    Snapshot,
)
from bbr_orchestrator.core.models import RunKind, RunStats, TargetKind
from bbr_orchestrator.service.metrics_feed import MetricsFeed, plan_facts, run_probes

T0 = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
EXAMPLE_FILE = Path(__file__).resolve().parents[2] / "config" / "bbr-orchestrator.example.yml"


def stats(
    target: str = "bosh-director",
    kind: RunKind = RunKind.BACKUP,
    plan: str | None = "nightly",
    *,
    outcomes: Sequence[tuple[str, int]] = (("succeeded", 1),),
    last_outcome: str | None = "succeeded",
    last_success_at: datetime | None = T0,
    last_attempt_at: datetime | None = T0,
    last_unlock_failed_at: datetime | None = None,
    last_success_bytes: int | None = None,
    bytes_total: int = 0,
    durations: Sequence[float] = (),
) -> RunStats:
    """Aggregates of one series, the histogram derived from ``durations`` as the catalog does."""
    return RunStats(
        plan=plan,
        target=target,
        kind=kind,
        finished=sum(n for _, n in outcomes),
        outcome_counts=tuple(sorted(outcomes)),
        last_attempt_at=last_attempt_at,
        last_outcome=last_outcome,
        last_success_at=last_success_at,
        last_success_bytes=last_success_bytes,
        bytes_succeeded_total=bytes_total,
        last_unlock_failed_at=last_unlock_failed_at,
        duration_count=len(durations),
        duration_sum_seconds=float(sum(durations)),
        duration_buckets=tuple(sum(d <= b for d in durations) for b in DURATION_BOUNDS),
    )


def families(
    items: Iterable[RunStats] = (),
    plans: Iterable[PlanFacts] | None = None,
    lockable: Iterable[str] = (),
    probes: Probes | None = None,
) -> dict[str, Family]:
    """The families of a snapshot; without ``plans``, every series' plan is configured (as a
    paused plan, so no schedule or never-run series are added)."""
    items = tuple(items)
    if plans is None:
        plans = _configuring(items)
    snapshot = Snapshot("1.2.3", items, tuple(plans), tuple(lockable), probes or Probes())
    return {f.name: f for f in build_families(snapshot)}


def _configuring(items: Sequence[RunStats]) -> list[PlanFacts]:
    targets: dict[str, list[tuple[str, TargetKind]]] = {}
    for item in items:
        if item.plan is not None:
            targets.setdefault(item.plan, []).append((item.target, TargetKind.DIRECTOR))
    return [PlanFacts(plan, True, tuple(pairs)) for plan, pairs in sorted(targets.items())]


def values(family: Family, suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
    return {s.labels: s.value for s in family.samples if s.name == family.name + suffix}


def only(family: Family, **labels: str) -> dict[str, float]:
    """``{outcome-or-le: value}`` for a family's samples that carry ``labels``."""
    out = {}
    for sample in family.samples:
        found = dict(sample.labels)
        if all(found.get(k) == v for k, v in labels.items()):
            out[found.get("outcome") or found.get("le") or sample.name] = sample.value
    return out


def key(plan: str, target: str, kind: str) -> tuple[tuple[str, str], ...]:
    return (("plan", plan), ("target", target), ("kind", kind))


NAME = "bbr_orchestrator_"


def test_every_built_family_is_named_in_metric_names() -> None:
    """METRIC_NAMES (what dashboards and alerts are checked against) is exactly what is built."""
    built = families(
        [stats()], [PlanFacts("nightly", False, (("bosh-director", TargetKind.DIRECTOR),))]
    )
    live = {f.name for f in daemon_families(1, 2, 3, 4)}
    assert set(built) | live == METRIC_NAMES
    assert all(name.startswith(NAME) for name in METRIC_NAMES)
    assert built[NAME + "runs_total"].type is MetricType.COUNTER
    assert built[NAME + "uploaded_bytes_total"].type is MetricType.COUNTER
    assert built[NAME + "run_duration_seconds"].type is MetricType.HISTOGRAM


def test_build_info_carries_only_the_version() -> None:
    """Build info has no per-process label, so a restarted daemon scrapes the same."""
    (sample,) = families()[NAME + "build_info"].samples
    assert sample.labels == (("version", "1.2.3"),) and sample.value == 1


def test_last_outcome_is_one_hot_over_the_outcomes_seen() -> None:
    """1 for the last outcome, 0 for every other outcome of the series' history."""
    item = stats(
        outcomes=(("failed", 2), ("succeeded", 5), ("unlock-failed", 1)),
        last_outcome="unlock-failed",
    )
    hot = only(families([item])[NAME + "last_outcome"], kind="backup")
    assert hot == {"failed": 0, "succeeded": 0, "unlock-failed": 1}


def test_last_outcome_missing_from_the_counts_still_gets_its_series() -> None:
    """Defensive: a last outcome the counts do not list still shows as the hot one."""
    item = stats(outcomes=(("succeeded", 1),), last_outcome="interrupted")
    hot = only(families([item])[NAME + "last_outcome"])
    assert hot == {"interrupted": 1, "succeeded": 0}


def test_runs_total_counts_every_outcome() -> None:
    """runs_total mirrors the catalog's counts per outcome (never reset by a restart)."""
    item = stats(outcomes=(("failed", 2), ("succeeded", 5)))
    assert only(families([item])[NAME + "runs_total"]) == {"failed": 2, "succeeded": 5}


def test_never_succeeded_series_exports_zero() -> None:
    """Attempts but no success: last success is 0 (stale from the start), last attempt is set."""
    item = stats(outcomes=(("failed", 3),), last_outcome="failed", last_success_at=None)
    built = families([item])
    assert values(built[NAME + "last_success_timestamp_seconds"]) == {
        key("nightly", "bosh-director", "backup"): 0.0
    }
    assert values(built[NAME + "last_attempt_timestamp_seconds"]) == {
        key("nightly", "bosh-director", "backup"): T0.timestamp()
    }


def test_configured_targets_without_history_export_zero() -> None:
    """Every target of an active plan without runs yet shows last success 0 (backup for bbr
    targets, opsman-export for Ops Managers); a paused plan's targets do not."""
    plans = [
        PlanFacts(
            "nightly",
            False,
            (
                ("om", TargetKind.OPSMAN),
                ("bosh-director", TargetKind.DIRECTOR),
                ("cf", TargetKind.DEPLOYMENT),
            ),
        ),
        PlanFacts("old", True, (("legacy", TargetKind.DIRECTOR),)),
    ]
    built = families([stats("bosh-director")], plans)
    assert values(built[NAME + "last_success_timestamp_seconds"]) == {
        key("nightly", "bosh-director", "backup"): T0.timestamp(),
        key("nightly", "cf", "backup"): 0.0,
        key("nightly", "om", "opsman-export"): 0.0,
    }
    assert values(built[NAME + "last_attempt_timestamp_seconds"]) == {
        key("nightly", "bosh-director", "backup"): T0.timestamp()
    }


def test_operator_runs_without_a_plan_get_an_empty_plan_label() -> None:
    """A run with no plan is labelled plan="" (labels stay bounded: never a run id)."""
    built = families([stats(plan=None, last_success_bytes=10, bytes_total=10)])
    assert set(values(built[NAME + "last_success_timestamp_seconds"])) == {
        key("", "bosh-director", "backup")
    }
    assert set(values(built[NAME + "artifact_bytes"])) == {
        (("plan", ""), ("target", "bosh-director"))
    }
    labels = {k for f in built.values() for s in f.samples for k, _ in s.labels}
    assert labels <= {"plan", "target", "kind", "outcome", "le", "version", "probe", "jumpbox"}


def test_histogram_comes_from_the_cumulative_buckets() -> None:
    """Duration buckets up to 24 h plus +Inf (the count), with _sum and _count."""
    item = stats(durations=[30, 200, 4000, 90000])
    family = families([item])[NAME + "run_duration_seconds"]
    buckets = only(family)
    assert buckets == {
        "60.0": 1,
        "300.0": 2,
        "900.0": 2,
        "1800.0": 2,
        "3600.0": 2,
        "7200.0": 3,
        "14400.0": 3,
        "28800.0": 3,
        "43200.0": 3,
        "86400.0": 3,
        "+Inf": 4,
        NAME + "run_duration_seconds_count": 4,
        NAME + "run_duration_seconds_sum": 94230.0,
    }


def test_runs_without_a_duration_are_not_in_the_histogram() -> None:
    """+Inf is the count of timed runs, not of every finished run."""
    item = replace(stats(durations=[10]), finished=3)
    assert only(families([item])[NAME + "run_duration_seconds"])["+Inf"] == 1


def test_buckets_that_do_not_match_the_bounds_are_refused() -> None:
    """A catalog answering for other bounds is a bug, not something to export."""
    with pytest.raises(ValueError, match="duration buckets"):
        families([replace(stats(), duration_buckets=(1, 2))])


def test_artifact_metrics_cover_backups_and_exports_only() -> None:
    """Last artifact size and bytes stored come from backups and Ops Manager exports."""
    built = families(
        [
            stats("cf", last_success_bytes=500, bytes_total=1500),
            stats("om", RunKind.OPSMAN_EXPORT, last_success_bytes=70, bytes_total=70),
            stats("cf", RunKind.PRE_BACKUP_CHECK),
            stats("dir", outcomes=(("failed", 1),), last_success_at=None, last_outcome="failed"),
        ]
    )
    assert values(built[NAME + "artifact_bytes"]) == {
        (("plan", "nightly"), ("target", "cf")): 500,
        (("plan", "nightly"), ("target", "om")): 70,
    }
    assert values(built[NAME + "uploaded_bytes_total"]) == {
        (("plan", "nightly"), ("target", "cf")): 1500,
        (("plan", "nightly"), ("target", "dir")): 0,
        (("plan", "nightly"), ("target", "om")): 70,
    }


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("history", "locked"),
    [
        ([], False),
        ([stats(last_success_at=at(0))], False),
        ([stats(last_unlock_failed_at=at(5), last_success_at=at(0))], True),
        ([stats(last_unlock_failed_at=at(5), last_success_at=None)], True),
        ([stats(last_unlock_failed_at=at(5), last_success_at=at(5))], True),
        (
            [
                stats(last_unlock_failed_at=at(5), last_success_at=at(0)),
                stats(kind=RunKind.BACKUP_CLEANUP, last_success_at=at(6)),
            ],
            False,
        ),
        (
            [
                stats(last_unlock_failed_at=at(5), last_success_at=at(0)),
                stats(
                    kind=RunKind.BACKUP_CLEANUP, last_success_at=None, last_unlock_failed_at=at(6)
                ),
            ],
            True,
        ),
        (
            [
                stats(last_unlock_failed_at=at(5), last_success_at=at(0)),
                stats(kind=RunKind.PRE_BACKUP_CHECK, last_success_at=at(9)),
            ],
            True,
        ),
        (
            [
                stats(last_unlock_failed_at=at(5), last_success_at=at(0)),
                stats(plan=None, kind=RunKind.RESTORE_CLEANUP, last_success_at=at(7)),
            ],
            False,
        ),
        (
            [
                stats(kind=RunKind.RESTORE, last_unlock_failed_at=at(5), last_success_at=None),
                stats(plan="weekly", last_success_at=at(8)),
            ],
            False,
        ),
        (
            [
                stats(last_unlock_failed_at=at(5), last_success_at=at(0)),
                stats("other-target", kind=RunKind.BACKUP_CLEANUP, last_success_at=at(9)),
            ],
            True,
        ),
    ],
    ids=[
        "no-history",
        "only-successes",
        "unlock-failed-after-success",
        "unlock-failed-never-succeeded",
        "succeeded-despite-its-own-unlock-failure",
        "cleanup-succeeded-after",
        "cleanup-failed-to-unlock-too",
        "pre-backup-check-does-not-unlock",
        "operator-restore-cleanup-unlocks",
        "backup-of-another-plan-unlocks",
        "other-targets-do-not-count",
    ],
)
def test_possibly_locked_until_a_run_that_unlocks_succeeds(
    history: list[RunStats], locked: bool
) -> None:
    """Locked when the target's latest unlock failure is later than its latest succeeded
    backup, restore, backup-cleanup or restore-cleanup (any plan, operator runs too)."""
    assert possibly_locked(history, "bosh-director") is locked


def test_every_lockable_target_gets_a_possibly_locked_series() -> None:
    """One series per configured director/deployment target, 0 without history."""
    history = [stats("cf", last_unlock_failed_at=at(5), last_success_at=at(0))]
    family = families(history, lockable=["cf", "bosh-director"])[NAME + "platform_possibly_locked"]
    assert values(family) == {(("target", "bosh-director"),): 0, (("target", "cf"),): 1}


def test_verify_and_drill_series_exist_only_where_such_runs_do() -> None:
    """Last verification and drill success per plan and target, 0 while none succeeded."""
    built = families(
        [
            stats("cf", RunKind.VERIFY, last_success_at=at(3)),
            stats(
                "sandbox",
                RunKind.DRILL,
                outcomes=(("failed", 1),),
                last_outcome="failed",
                last_success_at=None,
            ),
            stats("bosh-director"),
        ]
    )
    assert values(built[NAME + "last_verified_timestamp_seconds"]) == {
        (("plan", "nightly"), ("target", "cf")): at(3).timestamp()
    }
    assert values(built[NAME + "last_drill_success_timestamp_seconds"]) == {
        (("plan", "nightly"), ("target", "sandbox")): 0.0
    }


def test_paused_plans_show_paused_and_no_schedule() -> None:
    """plan_paused for every plan; interval and next run only for the active ones."""
    plans = [
        PlanFacts("nightly", False, (), 86400.0, at(60)),
        PlanFacts("old", True, ()),
    ]
    built = families(plans=plans)
    assert values(built[NAME + "plan_paused"]) == {(("plan", "nightly"),): 0, (("plan", "old"),): 1}
    assert values(built[NAME + "schedule_expected_interval_seconds"]) == {
        (("plan", "nightly"),): 86400.0
    }
    assert values(built[NAME + "next_run_timestamp_seconds"]) == {
        (("plan", "nightly"),): at(60).timestamp()
    }


def berlin(schedule: str = "30 1 * * *", *, paused: bool = False) -> PlanConfig:
    return PlanConfig(
        name="nightly",
        targets=["bosh-director", "om"],
        schedule=schedule,
        timezone="Europe/Berlin",
        paused=paused,
    )


KINDS = {"bosh-director": TargetKind.DIRECTOR, "om": TargetKind.OPSMAN}


@pytest.mark.parametrize(
    ("now", "hours"),
    [
        (datetime(2026, 3, 28, 12, tzinfo=UTC), 23),  # clocks go forward on 29 March
        (datetime(2026, 10, 24, 12, tzinfo=UTC), 25),  # and back on 25 October
        (datetime(2026, 6, 1, 12, tzinfo=UTC), 24),
    ],
    ids=["spring-forward", "fall-back", "summer"],
)
def test_expected_interval_is_elapsed_time_across_dst(now: datetime, hours: int) -> None:
    """The gap between the next two 01:30 Europe/Berlin firings is real elapsed time."""
    facts = plan_facts(berlin(), KINDS, now)
    assert facts.expected_interval_seconds == hours * 3600
    assert facts.next_run_at is not None and facts.next_run_at > now
    assert facts.targets == (("bosh-director", TargetKind.DIRECTOR), ("om", TargetKind.OPSMAN))


def test_paused_plan_facts_have_no_schedule() -> None:
    """A paused plan has no next run and no expected interval."""
    facts = plan_facts(berlin(paused=True), KINDS, T0)
    assert facts.paused and facts.next_run_at is None and facts.expected_interval_seconds is None


def test_weekday_schedule_interval_is_the_gap_between_the_next_two_firings() -> None:
    """Mon-Fri at 02:00 UTC seen on a Thursday afternoon: Friday then Monday, 3 days apart."""
    plan = berlin("0 2 * * 1-5").model_copy(update={"timezone": "UTC"})
    facts = plan_facts(plan, KINDS, datetime(2026, 5, 7, 15, tzinfo=UTC))  # a Thursday
    assert facts.next_run_at == datetime(2026, 5, 8, 2, tzinfo=UTC)
    assert facts.expected_interval_seconds == 3 * 86400


def test_probes_show_up_down_and_when() -> None:
    """Storage, catalog and each jumpbox: 1/0 plus the probe time; nothing before a probe."""
    assert all(not families()[NAME + n].samples for n in ("storage_up", "catalog_up"))
    probes = Probes(
        storage=ProbeResult(True, at(1)),
        catalog=ProbeResult(False, at(2)),
        jumpboxes=(("jb-2", ProbeResult(False, at(1))), ("jb-1", ProbeResult(True, at(1)))),
    )
    built = families(probes=probes)
    assert values(built[NAME + "storage_up"]) == {(): 1}
    assert values(built[NAME + "catalog_up"]) == {(): 0}
    assert values(built[NAME + "jumpbox_up"]) == {
        (("jumpbox", "jb-1"),): 1,
        (("jumpbox", "jb-2"),): 0,
    }
    assert values(built[NAME + "probe_timestamp_seconds"]) == {
        (("probe", "catalog"),): at(2).timestamp(),
        (("probe", "jumpbox:jb-1"),): at(1).timestamp(),
        (("probe", "jumpbox:jb-2"),): at(1).timestamp(),
        (("probe", "storage"),): at(1).timestamp(),
    }


def test_run_probes_counts_failures_and_slow_probes_as_down() -> None:
    """A probe that raises or does not answer within the timeout is down; none holds us up."""
    release = threading.Event()

    def boom() -> None:
        raise OSError("connection refused")

    started = time.monotonic()
    up = run_probes(
        {"ok": lambda: None, "boom": boom, "slow": lambda: release.wait(5) and None}, 0.3
    )
    release.set()
    assert up == {"ok": True, "boom": False, "slow": False}
    assert time.monotonic() - started < 2


class _Clock:
    def now(self) -> datetime:
        return T0


class _Catalog:
    def __init__(self, answers: list[list[RunStats] | Exception]) -> None:
        self.answers = answers
        self.bounds: list[Sequence[float]] = []

    def run_stats(self, duration_bounds: Sequence[float]) -> list[RunStats]:
        self.bounds.append(duration_bounds)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def example_config() -> Config:
    return Config.model_validate(yaml.safe_load(EXAMPLE_FILE.read_text(encoding="utf-8")))


def feed(catalog: _Catalog, config: Config, published: list[dict[str, Family]]) -> MetricsFeed:
    return MetricsFeed(
        catalog,  # type: ignore[arg-type]  # only run_stats is used
        _Clock(),
        config,
        lambda fams: published.append({f.name: f for f in fams}),
        "1.2.3",
        probes=lambda config: {"storage": lambda: None, "jumpbox:jumpbox-1": lambda: None},
    )


def test_feed_keeps_the_last_stats_when_the_catalog_fails() -> None:
    """A failed refresh marks the catalog down but keeps exporting the last known runs."""
    published: list[dict[str, Family]] = []
    catalog = _Catalog([[stats("bosh-director")], RuntimeError("database is gone")])
    metrics = feed(catalog, example_config(), published)
    metrics.probe()
    metrics.refresh()
    assert catalog.bounds == [DURATION_BOUNDS]
    assert values(published[-1][NAME + "catalog_up"]) == {(): 1}
    assert values(published[-1][NAME + "storage_up"]) == {(): 1}
    metrics.refresh()
    assert values(published[-1][NAME + "catalog_up"]) == {(): 0}
    assert key("nightly", "bosh-director", "backup") in values(
        published[-1][NAME + "last_success_timestamp_seconds"]
    )


def test_feed_follows_a_reloaded_config_at_once() -> None:
    """use_config republishes with the new plans (here: every plan paused)."""
    published: list[dict[str, Family]] = []
    config = example_config()
    metrics = feed(_Catalog([[]]), config, published)
    metrics.refresh()
    assert values(published[-1][NAME + "schedule_expected_interval_seconds"])
    paused = [p.model_copy(update={"paused": True}) for p in config.plans]
    metrics.use_config(config.model_copy(update={"plans": paused}))
    assert not values(published[-1][NAME + "schedule_expected_interval_seconds"])
    assert set(values(published[-1][NAME + "plan_paused"]).values()) == {1}


def test_a_target_taken_out_of_a_plan_loses_its_state_gauges_but_keeps_its_counts() -> None:
    """Last success/attempt/outcome only for (plan, target) pairs the config still has (and
    operator runs); runs_total keeps the history of every series."""
    from datetime import UTC, datetime

    from bbr_orchestrator.core.metrics_families import run_families
    from bbr_orchestrator.core.metrics_model import PlanFacts
    from bbr_orchestrator.core.models import RunKind, RunStats, TargetKind

    at = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)

    def stats(plan: str | None, target: str) -> RunStats:
        return RunStats(
            plan,
            target,
            RunKind.BACKUP,
            1,
            (("succeeded", 1),),
            at,
            "succeeded",
            at,
            10,
            10,
            None,
            1,
            60.0,
            (1,) * 10,
        )

    plans = [PlanFacts("nightly", False, (("cf", TargetKind.DEPLOYMENT),))]
    families = {
        f.name: f
        for f in run_families(
            [stats("nightly", "cf"), stats("nightly", "removed"), stats(None, "adhoc")], plans
        )
    }
    targets = {
        name: sorted(dict(sample.labels)["target"] for sample in families[name].samples)
        for name in families
    }
    assert targets["bbr_orchestrator_last_success_timestamp_seconds"] == ["adhoc", "cf"]
    assert targets["bbr_orchestrator_last_attempt_timestamp_seconds"] == ["adhoc", "cf"]
    assert targets["bbr_orchestrator_last_outcome"] == ["adhoc", "cf"]
    assert targets["bbr_orchestrator_runs_total"] == ["adhoc", "cf", "removed"]
