"""The metric families, built from a ``Snapshot`` of the catalog's aggregates, the config's
plan facts and the latest probes. Pure: the Prometheus adapter renders them as they are."""

from __future__ import annotations

from collections.abc import Sequence

from bbr_orchestrator.core.metrics_model import (
    DURATION_BOUNDS,
    STORING_KINDS,
    UNLOCKING_KINDS,
    Family,
    Labels,
    MetricType,
    PlanFacts,
    ProbeResult,
    Probes,
    Sample,
    Snapshot,
    family,
    gauge,
    metric_name,
    plan_target_labels,
    series_labels,
    timestamp,
)
from bbr_orchestrator.core.models import RunKind, RunStats, TargetKind


def build_families(snapshot: Snapshot) -> list[Family]:
    """Every family of ``snapshot``, in a stable order (samples sorted by labels)."""
    stats = sorted(snapshot.stats, key=series_labels)
    return [
        gauge("build_info", "Version of the daemon.", [((("version", snapshot.version),), 1)]),
        *run_families(stats, snapshot.plans),
        duration_family(stats),
        *artifact_families(stats),
        locked_family(stats, snapshot.lockable_targets),
        *assurance_families(stats),
        *schedule_families(snapshot.plans),
        *probe_families(snapshot.probes),
    ]


def _never_run(stats: Sequence[RunStats], plans: Sequence[PlanFacts]) -> list[Labels]:
    """``(plan, target, kind)`` of every backup (or Ops Manager export) a non-paused plan
    expects that the catalog has no run of yet."""
    known = {series_labels(s) for s in stats}
    out = []
    for plan in plans:
        if plan.paused:
            continue
        for target, kind in plan.targets:
            run_kind = RunKind.OPSMAN_EXPORT if kind is TargetKind.OPSMAN else RunKind.BACKUP
            labels = (("plan", plan.plan), ("target", target), ("kind", run_kind.value))
            if labels not in known:
                out.append(labels)
    return sorted(set(out))


def configured(stats: Sequence[RunStats], plans: Sequence[PlanFacts]) -> list[RunStats]:
    """Series a plan of the loaded config still runs, and operator runs (no plan): the state
    gauges of a target taken out of a plan would otherwise alert (stale) forever."""
    pairs = {(plan.plan, target) for plan in plans for target, _ in plan.targets}
    return [s for s in stats if s.plan is None or (s.plan, s.target) in pairs]


def run_families(stats: Sequence[RunStats], plans: Sequence[PlanFacts]) -> list[Family]:
    """Last success (0: none yet, including expected backups never run), last attempt and
    the last outcome one-hot over the outcomes seen, for configured series; the runs per
    outcome (a counter: history, never filtered) for all."""
    current = configured(stats, plans)
    success = [(series_labels(s), timestamp(s.last_success_at)) for s in current]
    success += [(labels, 0.0) for labels in _never_run(stats, plans)]
    outcome_name, runs_name = metric_name("last_outcome"), metric_name("runs_total")
    one_hot, runs = [], []
    for s in stats:
        seen = {outcome for outcome, _ in s.outcome_counts}
        if s.last_outcome is not None and s in current:
            for outcome in sorted(seen | {s.last_outcome}):
                value = 1.0 if outcome == s.last_outcome else 0.0
                one_hot.append(
                    Sample(outcome_name, (*series_labels(s), ("outcome", outcome)), value)
                )
        for outcome, count in s.outcome_counts:
            runs.append(Sample(runs_name, (*series_labels(s), ("outcome", outcome)), count))
    return [
        gauge(
            "last_success_timestamp_seconds",
            "Finish time of the last succeeded run (0: none yet).",
            sorted(success),
        ),
        gauge(
            "last_attempt_timestamp_seconds",
            "Finish time of the last finished run, whatever its outcome.",
            [(series_labels(s), timestamp(s.last_attempt_at)) for s in current],
        ),
        family(
            "last_outcome",
            MetricType.GAUGE,
            "1 for the outcome of the last finished run, 0 for other outcomes seen before.",
            one_hot,
        ),
        family("runs_total", MetricType.COUNTER, "Finished runs, by outcome.", runs),
    ]


def duration_family(stats: Sequence[RunStats]) -> Family:
    """The run duration histogram from the catalog's cumulative bucket counts."""
    name = metric_name("run_duration_seconds")
    samples = []
    for s in stats:
        if len(s.duration_buckets) != len(DURATION_BOUNDS):
            raise ValueError(f"{series_labels(s)}: {len(s.duration_buckets)} duration buckets")
        bounds = [*(_bound(b) for b in DURATION_BOUNDS), "+Inf"]
        counts = [*s.duration_buckets, s.duration_count]
        for bound, count in zip(bounds, counts, strict=True):
            samples.append(Sample(f"{name}_bucket", (*series_labels(s), ("le", bound)), count))
        samples.append(Sample(f"{name}_count", series_labels(s), s.duration_count))
        samples.append(Sample(f"{name}_sum", series_labels(s), s.duration_sum_seconds))
    return Family(name, MetricType.HISTOGRAM, "Duration of finished runs.", tuple(samples))


def _bound(value: float) -> str:
    """A bucket bound as Prometheus clients write it (``60.0``)."""
    return repr(float(value))


def artifact_families(stats: Sequence[RunStats]) -> list[Family]:
    """Size of the last stored artifact, and bytes stored in total, per plan and target."""
    storing = [s for s in stats if s.kind in STORING_KINDS]
    uploaded = metric_name("uploaded_bytes_total")
    return [
        gauge(
            "artifact_bytes",
            "Bytes of the artifact of the last succeeded backup or Ops Manager export.",
            [
                (plan_target_labels(s), s.last_success_bytes or 0)
                for s in storing
                if s.last_success_bytes is not None
            ],
        ),
        family(
            "uploaded_bytes_total",
            MetricType.COUNTER,
            "Bytes stored by succeeded backups and Ops Manager exports.",
            [
                Sample(
                    uploaded,
                    plan_target_labels(s),
                    s.bytes_succeeded_total,
                )
                for s in storing
            ],
        ),
    ]


def possibly_locked(stats: Sequence[RunStats], target: str) -> bool:
    """The target's latest unlock failure is later than its latest succeeded run that unlocks
    (backup, restore or one of their cleanups): its jobs may still be locked."""
    mine = [s for s in stats if s.target == target]
    failed = [s.last_unlock_failed_at for s in mine if s.last_unlock_failed_at is not None]
    if not failed:
        return False
    unlocked = [s.last_success_at for s in mine if s.kind in UNLOCKING_KINDS and s.last_success_at]
    # ">=": a run recorded as succeeded despite its unlock failure does not clear itself.
    return not unlocked or max(failed) >= max(unlocked)


def locked_family(stats: Sequence[RunStats], targets: Sequence[str]) -> Family:
    return gauge(
        "platform_possibly_locked",
        "1 when an unlock failed on the target and no backup, restore or cleanup succeeded "
        "since: its jobs may still be locked (run backup-cleanup).",
        [((("target", t),), float(possibly_locked(stats, t))) for t in sorted(set(targets))],
    )


def assurance_families(stats: Sequence[RunStats]) -> list[Family]:
    """When a verification / a restore drill last succeeded (0: runs, but no success yet)."""

    def last(kind: RunKind) -> list[tuple[Labels, float]]:
        return [
            (plan_target_labels(s), timestamp(s.last_success_at)) for s in stats if s.kind is kind
        ]

    return [
        gauge(
            "last_verified_timestamp_seconds",
            "Finish time of the last succeeded verification of a stored backup (0: none yet).",
            last(RunKind.VERIFY),
        ),
        gauge(
            "last_drill_success_timestamp_seconds",
            "Finish time of the last succeeded restore drill (0: none yet).",
            last(RunKind.DRILL),
        ),
    ]


def schedule_families(plans: Sequence[PlanFacts]) -> list[Family]:
    """Each active plan's expected gap between firings and next firing; paused or not."""
    ordered = sorted(plans, key=lambda p: p.plan)
    active = [p for p in ordered if not p.paused]

    def key(plan: PlanFacts) -> Labels:
        return (("plan", plan.plan),)

    return [
        gauge(
            "schedule_expected_interval_seconds",
            "Seconds between the plan's next two firings.",
            [
                (key(p), p.expected_interval_seconds)
                for p in active
                if p.expected_interval_seconds is not None
            ],
        ),
        gauge(
            "next_run_timestamp_seconds",
            "When the plan fires next.",
            [(key(p), timestamp(p.next_run_at)) for p in active if p.next_run_at is not None],
        ),
        gauge("plan_paused", "1 when the plan is paused.", [(key(p), p.paused) for p in ordered]),
    ]


def probe_families(probes: Probes) -> list[Family]:
    """Up/down of the object store, each jumpbox and the catalog, and when each was probed."""
    jumpboxes = sorted(probes.jumpboxes)
    stamps: list[tuple[Labels, float]] = [
        ((("probe", name),), timestamp(result.at))
        for name, result in (("catalog", probes.catalog), ("storage", probes.storage))
        if result is not None
    ]
    stamps += [((("probe", f"jumpbox:{name}"),), timestamp(r.at)) for name, r in jumpboxes]

    def up(result: ProbeResult | None) -> list[tuple[Labels, float]]:
        return [] if result is None else [((), float(result.up))]

    return [
        gauge("storage_up", "1 when the bucket answered a listing under the prefix.",
               up(probes.storage)),
        gauge("jumpbox_up", "1 when the jumpbox accepted an SSH connection (host key verified).",
               [((("jumpbox", name),), float(r.up)) for name, r in jumpboxes]),
        gauge("catalog_up", "1 when the catalog answered the metrics query.", up(probes.catalog)),
        gauge("probe_timestamp_seconds", "When each dependency was last probed.", sorted(stamps)),
    ]  # fmt: skip


def daemon_families(running: int, waiting: int, scheduled: int, paused: int) -> list[Family]:
    """What this daemon is doing now (steps by state) and its plans by status."""
    return [
        gauge(
            "daemon_steps",
            "Restore point steps this daemon drives now, by state (running or waiting).",
            [((("state", "running"),), running), ((("state", "waiting"),), waiting)],
        ),
        gauge(
            "daemon_plans",
            "Plans in the loaded config, by whether they are scheduled or paused.",
            [((("status", "paused"),), paused), ((("status", "scheduled"),), scheduled)],
        ),
    ]
