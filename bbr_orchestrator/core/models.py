"""Run records as plain values: what the catalog stores and the CLI shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class RunKind(StrEnum):
    """What a run does."""

    PRE_BACKUP_CHECK = "pre-backup-check"
    BACKUP = "backup"
    RESTORE = "restore"
    VERIFY = "verify"
    DRILL = "drill"
    BACKUP_CLEANUP = "backup-cleanup"
    RESTORE_CLEANUP = "restore-cleanup"
    OPSMAN_EXPORT = "opsman-export"


class TargetKind(StrEnum):
    """The two bbr modes."""

    DIRECTOR = "director"
    DEPLOYMENT = "deployment"
    OPSMAN = "opsman"


class Trigger(StrEnum):
    """Who started a run."""

    SCHEDULE = "schedule"
    OPERATOR = "operator"


class RunState(StrEnum):
    """Lifecycle of a run. ``QUEUED`` and ``RUNNING`` are active; the rest are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATES


ACTIVE_STATES = frozenset({RunState.QUEUED, RunState.RUNNING})
TARGET_HOLDING_KINDS = frozenset(RunKind) - {RunKind.VERIFY}
"""Kinds that touch the platform or its jumpbox work dir: one running run per target among
them. A verify reads the object store only and never waits for (or blocks) the target."""
FINAL_STATES = frozenset(RunState) - ACTIVE_STATES


class LogStream(StrEnum):
    """Where a run-log line came from."""

    STDOUT = "stdout"
    STDERR = "stderr"
    EVENT = "event"


@dataclass(frozen=True)
class NewRun:
    """What is known when a run is claimed."""

    id: str
    kind: RunKind
    target: str
    target_kind: TargetKind
    trigger: Trigger
    triggered_by: str
    created_at: datetime
    plan: str | None = None
    daemon_instance: str | None = None
    state: RunState = RunState.QUEUED
    restore_point_id: str | None = None
    step: int | None = None
    subject_run_id: str | None = None
    """The backup run a verify, restore or drill run is about."""


@dataclass(frozen=True)
class Run:
    """A run as the catalog holds it."""

    id: str
    kind: RunKind
    target: str
    target_kind: TargetKind
    trigger: Trigger
    triggered_by: str
    state: RunState
    created_at: datetime
    plan: str | None = None
    daemon_instance: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    exit_code: int | None = None
    outcome: str | None = None
    error_summary: str | None = None
    bytes_total: int | None = None
    log_object_key: str | None = None
    restore_point_id: str | None = None
    step: int | None = None
    subject_run_id: str | None = None
    restorable: bool | None = None
    """For a backup: None until verified; False once a verification found it damaged."""
    verified_at: datetime | None = None
    rto_seconds: float | None = None
    """For a restore or drill: seconds from the run's start until the platform was restored
    (the artifact fetched and ``bbr restore`` done): the recovery time it proved."""
    pinned_at: datetime | None = None
    """For a backup: set while an operator pins it (retention never deletes it)."""
    pinned_by: str | None = None
    pin_reason: str | None = None
    delete_reason: str | None = None
    """For a backup: why retention deletes it, set before its first object is deleted (from
    then on it is never restored, verified or pinned)."""
    deleted_at: datetime | None = None
    """When the last of its stored objects was deleted."""

    @property
    def pinned(self) -> bool:
        return self.pinned_at is not None

    @property
    def deletion_started(self) -> bool:
        """Retention began deleting it (finished or not): it is not a usable backup any more."""
        return self.delete_reason is not None or self.deleted_at is not None

    @property
    def holds_target(self) -> bool:
        """Whether running it claims its target (everything but a verify, which reads only the
        object store)."""
        return self.kind in TARGET_HOLDING_KINDS

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class RunUpdate:
    """Fields a state transition may set; ``None`` means "leave as is"."""

    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    exit_code: int | None = None
    outcome: str | None = None
    error_summary: str | None = None
    bytes_total: int | None = None
    log_object_key: str | None = None
    rto_seconds: float | None = None


@dataclass(frozen=True)
class Artifact:
    """One stored object of a run's backup."""

    run_id: str
    object_key: str
    size_bytes: int
    sha256: str
    member_checksums: int = 0


@dataclass(frozen=True)
class LogLine:
    """One line of a run's log, in arrival order."""

    run_id: str
    seq: int
    at: datetime
    stream: LogStream
    text: str


@dataclass(frozen=True)
class RunFilter:
    """Filters for listing runs; every field is optional and they combine with AND."""

    plan: str | None = None
    target: str | None = None
    kind: RunKind | None = None
    state: RunState | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    restore_point_id: str | None = None
    states: frozenset[RunState] | None = None
    """Any of these states (combines with ``state`` by AND when both are set)."""
    deleted: bool | None = None
    """False: only runs retention has not begun to delete; True: only those it has."""


class RestorePointState(StrEnum):
    """Lifecycle of a restore point (one plan firing: all its steps as one unit)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETE = "complete"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    MISSED = "missed"

    @property
    def active(self) -> bool:
        return self in (RestorePointState.QUEUED, RestorePointState.RUNNING)


@dataclass(frozen=True)
class NewRestorePoint:
    """A plan firing being claimed. ``scheduled_for`` is the cron fire time (None when an
    operator started the plan by hand); the catalog allows one restore point per
    ``(plan, scheduled_for)``."""

    id: str
    plan: str
    trigger: Trigger
    triggered_by: str
    created_at: datetime
    scheduled_for: datetime | None = None
    daemon_instance: str | None = None
    state: RestorePointState = RestorePointState.QUEUED
    summary: str | None = None


@dataclass(frozen=True)
class RestorePoint:
    """A restore point as the catalog holds it; its steps are runs with its id."""

    id: str
    plan: str
    trigger: Trigger
    triggered_by: str
    state: RestorePointState
    created_at: datetime
    scheduled_for: datetime | None = None
    daemon_instance: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    summary: str | None = None
    deleted_at: datetime | None = None
    """When retention deleted the last stored object of its backups."""
    delete_reason: str | None = None


@dataclass(frozen=True)
class RestorePointUpdate:
    """Fields a restore point transition may set; ``None`` means "leave as is"."""

    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    summary: str | None = None


def new_run_id(now: datetime, token: str) -> str:
    """A sortable, readable run id: ``20261127T035353Z-3f9a2c1b`` (UTC time, 8 hex of randomness).

    It also names the run's working directory on the jumpbox, so it holds only ``[0-9A-Za-z-]``.
    """
    if now.tzinfo is None:
        raise ValueError("run ids need a timezone-aware time")
    if len(token) != 8 or any(c not in "0123456789abcdef" for c in token):
        raise ValueError("token must be 8 lowercase hex characters")
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{token}"


@dataclass(frozen=True)
class RunStats:
    """What the catalog knows about the finished runs of one ``(plan, target, kind)``: the
    source of every metric, so a restart (or another daemon) exports the same values."""

    plan: str | None
    target: str
    kind: RunKind
    finished: int
    """Finished runs (every final state)."""
    outcome_counts: tuple[tuple[str, int], ...]
    """``(outcome, count)`` over finished runs, sorted by outcome (``state`` when no outcome)."""
    last_attempt_at: datetime | None
    last_outcome: str | None
    last_success_at: datetime | None
    last_success_bytes: int | None
    bytes_succeeded_total: int
    """Sum of ``bytes_total`` over succeeded runs (bytes stored by them)."""
    last_unlock_failed_at: datetime | None
    """Finish time of the latest run whose outcome includes ``unlock-failed``."""
    duration_count: int
    duration_sum_seconds: float
    duration_buckets: tuple[int, ...]
    """Cumulative counts of durations ``<=`` each requested bound, in the bounds' order."""
