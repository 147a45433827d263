"""The metrics model: catalog aggregates, schedule facts and probe results in, metric families
out. Pure (stdlib only); the Prometheus adapter only renders what this module builds.

Every value is derived from the catalog (``RunStats``), the loaded config (``PlanFacts``) and
the latest probes, never from counters kept in memory: a restarted daemon exports the same."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bbr_orchestrator.core.models import RunKind, RunStats, TargetKind

PREFIX = "bbr_orchestrator"

METRIC_NAMES: frozenset[str] = frozenset(
    f"{PREFIX}_{name}"
    for name in (
        "build_info",
        "last_success_timestamp_seconds",
        "last_attempt_timestamp_seconds",
        "last_outcome",
        "runs_total",
        "run_duration_seconds",
        "artifact_bytes",
        "uploaded_bytes_total",
        "platform_possibly_locked",
        "last_verified_timestamp_seconds",
        "last_drill_success_timestamp_seconds",
        "schedule_expected_interval_seconds",
        "next_run_timestamp_seconds",
        "plan_paused",
        "storage_up",
        "jumpbox_up",
        "catalog_up",
        "probe_timestamp_seconds",
        "daemon_steps",
        "daemon_plans",
    )
)
"""Every exported metric family name as exposed (counters with ``_total``; the histogram by
its base name, whose series are ``_bucket``, ``_sum`` and ``_count``)."""

DURATION_BOUNDS: tuple[float, ...] = (
    60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400,
)  # fmt: skip
"""Upper bounds (seconds) of the run duration histogram's buckets; +Inf comes on top."""

#: Kinds whose successful run unlocks the platform's jobs again (bbr runs every unlock script).
UNLOCKING_KINDS = frozenset(
    {RunKind.BACKUP, RunKind.BACKUP_CLEANUP, RunKind.RESTORE, RunKind.RESTORE_CLEANUP}
)
#: Kinds that store an artifact (their bytes are the artifact metrics).
STORING_KINDS = frozenset({RunKind.BACKUP, RunKind.OPSMAN_EXPORT})

Labels = tuple[tuple[str, str], ...]


class MetricType(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Sample:
    """One series' value. ``name`` is the full sample name (``…_bucket`` for a histogram)."""

    name: str
    labels: Labels
    value: float

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


@dataclass(frozen=True)
class Family:
    """One metric family as exposed: ``name`` with ``_total`` for a counter, the base name
    for a histogram."""

    name: str
    type: MetricType
    help: str
    samples: tuple[Sample, ...] = ()


@dataclass(frozen=True)
class PlanFacts:
    """What the loaded config says about one plan's schedule and targets."""

    plan: str
    paused: bool
    targets: tuple[tuple[str, TargetKind], ...]
    """``(target, kind)`` for each of the plan's targets."""
    expected_interval_seconds: float | None = None
    """Gap between the plan's next two firings (None when paused or never firing again)."""
    next_run_at: datetime | None = None


@dataclass(frozen=True)
class ProbeResult:
    """Whether a dependency answered, and when that was found out."""

    up: bool
    at: datetime


@dataclass(frozen=True)
class Probes:
    """The latest probe of each dependency (None: not probed yet)."""

    storage: ProbeResult | None = None
    catalog: ProbeResult | None = None
    jumpboxes: tuple[tuple[str, ProbeResult], ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Everything the exporter shows besides the daemon's own live gauges."""

    version: str
    stats: tuple[RunStats, ...] = ()
    plans: tuple[PlanFacts, ...] = ()
    lockable_targets: tuple[str, ...] = ()
    """Configured director and deployment targets (one possibly-locked series each)."""
    probes: Probes = field(default_factory=Probes)


def metric_name(short: str) -> str:
    """The full name of ``short``; refuses one missing from ``METRIC_NAMES``."""
    name = f"{PREFIX}_{short}"
    if name not in METRIC_NAMES:
        raise ValueError(f"{name} is not in METRIC_NAMES")
    return name


def family(short: str, kind: MetricType, text: str, samples: Iterable[Sample]) -> Family:
    return Family(metric_name(short), kind, text, tuple(samples))


def gauge(short: str, text: str, series: Iterable[tuple[Labels, float]]) -> Family:
    name = metric_name(short)
    return Family(name, MetricType.GAUGE, text, tuple(Sample(name, lb, v) for lb, v in series))


def timestamp(moment: datetime | None) -> float:
    return 0.0 if moment is None else moment.timestamp()


def series_labels(stats: RunStats) -> Labels:
    return (("plan", stats.plan or ""), ("target", stats.target), ("kind", stats.kind.value))


def plan_target_labels(stats: RunStats) -> Labels:
    return (("plan", stats.plan or ""), ("target", stats.target))
