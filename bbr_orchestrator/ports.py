"""The interfaces actions depend on. Adapters implement them; unit tests fake them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bbr_orchestrator.core.models import (
    Artifact,
    LogLine,
    LogStream,
    NewRestorePoint,
    NewRun,
    RestorePoint,
    RestorePointState,
    RestorePointUpdate,
    Run,
    RunFilter,
    RunState,
    RunStats,
    RunUpdate,
)


class Clock(Protocol):
    """Source of the current time (UTC-aware)."""

    def now(self) -> datetime: ...


LineSink = Callable[[LogStream, str], None]
"""Receives each line of a remote command's output as it arrives."""


class CancelToken(Protocol):
    """Set when the operator or the daemon asks a run to stop (``threading.Event`` fits)."""

    def is_set(self) -> bool: ...


PID_FILE = ".bbr-orchestrator.pid"
"""A command run with a ``cwd`` records its pid in this file there (to be sent SIGTERM later,
by this process or, after a crash, by the recovery of another)."""


class RemoteShell(Protocol):
    """A shell on the jumpbox."""

    @property
    def host(self) -> str: ...

    def run(
        self,
        argv: Sequence[str],
        *,
        on_line: LineSink,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> int:
        """Run ``argv`` (joined with ``shlex.join``), streaming each output line to ``on_line``.

        ``env`` (secrets included) travels in a script on stdin, never in the command line.
        When ``cancel`` is set, the command gets SIGTERM (bbr asks for confirmation on SIGINT).
        Returns the exit status (negative when the command died without one).
        """
        ...

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Create ``path`` with ``mode`` (set before any byte is written) holding ``data``."""
        ...

    def close(self) -> None: ...


class ReadStream(Protocol):
    """Bytes of one remote file, in order, from a starting offset."""

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` as far as the data goes; returns 0 only at the end of the file."""
        ...

    def close(self) -> None: ...


class WriteStream(Protocol):
    """Bytes into one remote file, appended in order."""

    def write(self, data: memoryview | bytes) -> None: ...

    def close(self) -> None:
        """Flush and close; raises if the remote side did not take every byte."""
        ...


class FileTransfer(Protocol):
    """Streaming file access on the jumpbox (for artifacts of many GiB)."""

    def open_read(self, path: str, offset: int = 0) -> ReadStream: ...

    def open_write(self, path: str, mode: int = 0o600) -> WriteStream: ...

    def list_files(self, directory: str) -> list[tuple[str, int]]:
        """``(name, size)`` of the regular files in ``directory`` (an artifact: no subdirs)."""
        ...

    def list_dirs(self, directory: str) -> list[str]:
        """Names of the subdirectories of ``directory``."""
        ...

    def sha256(self, path: str) -> str:
        """SHA-256 of a file, computed on the jumpbox."""
        ...


class Jumpbox(RemoteShell, FileTransfer, Protocol):
    """A connected jumpbox: commands and files."""


ShellFactory = Callable[[], Jumpbox]
"""Opens a connection to a jumpbox (raises ``SshError`` naming the host when it cannot)."""


@dataclass(frozen=True)
class StoredObject:
    """An object in the store."""

    key: str
    size: int
    retain_until: datetime | None = None
    """S3 Object Lock: the object cannot be deleted before this (from ``head``; None: not
    locked, or not known from a listing)."""


class MultipartUpload(Protocol):
    """One object being written in parts (each part but the last >= 5 MiB)."""

    key: str

    def upload_part(self, number: int, data: memoryview | bytes) -> None:
        """Store part ``number`` (1-based); transient errors are retried inside, with backoff."""
        ...

    def complete(self) -> None: ...

    def abort(self) -> None:
        """Discard every stored part (no orphan parts left billing); safe to call twice."""
        ...


class ObjectStore(Protocol):
    """The S3-compatible bucket, under the configured prefix.

    Every object is written once and never rewritten (a bucket under S3 Object Lock may refuse
    an overwrite): state changes go to the catalog or to new objects."""

    def start_upload(self, key: str) -> MultipartUpload: ...

    def put(self, key: str, data: bytes) -> None:
        """Write a small object in one request (the manifest)."""
        ...

    def open_read(self, key: str, offset: int = 0) -> ReadStream: ...

    def head(self, key: str) -> StoredObject | None:
        """The object (with its ``retain_until`` under object lock); None when there is none."""
        ...

    def list(self, prefix: str) -> Iterator[StoredObject]: ...

    def delete(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` in the order given (missing ones are fine); ``DeleteFailed`` maps
        each key not deleted to the reason, "retained until <date> ..." when its object lock
        keeps it (delete it again after that date)."""
        ...

    def abort_incomplete_uploads(self, prefix: str) -> int:
        """Abort multipart uploads left open under ``prefix``; returns how many."""
        ...


class Catalog(Protocol):
    """The run catalog: the record of every run, its artifacts and its log."""

    def create_run(self, run: NewRun) -> Run:
        """Insert a new run; raises ``RunConflict`` if the id exists.

        A run created ``RUNNING`` holds its target (except a verify, which reads the store only):
        ``TargetBusy`` (naming the holder) when another running run already holds it. ``QUEUED``
        runs hold nothing. ``RunNotFound`` when ``subject_run_id`` names no run."""
        ...

    def get_run(self, run_id: str) -> Run:
        """Return one run by full id or unique id prefix; raises ``RunNotFound``."""
        ...

    def list_runs(self, run_filter: RunFilter) -> list[Run]:
        """Runs matching the filter, newest first, at most ``run_filter.limit``."""
        ...

    def transition(
        self,
        run_id: str,
        expected: Sequence[RunState],
        new_state: RunState,
        update: RunUpdate | None = None,
        successor: NewRun | None = None,
    ) -> Run:
        """Compare-and-set the state; raises ``RunConflict`` when the run is not in ``expected``.

        Moving to ``RUNNING`` claims the target (``TargetBusy`` when another running run holds
        it; the run then stays as it was) — except for kinds that do not hold targets
        (``TARGET_HOLDING_KINDS``: a verify); moving to a final state releases it. With
        ``successor``, that new run is inserted in the same transaction, so a finished (or
        interrupted) run can hand its target straight to its cleanup run."""
        ...

    def heartbeat(self, run_id: str, at: datetime) -> None:
        """Record that the owner of an active run is alive."""
        ...

    def heartbeat_owner(self, daemon_instance: str, at: datetime) -> int:
        """Set ``heartbeat_at`` of every active run and restore point of this owner; returns
        how many rows were touched."""
        ...

    def stale_runs(self, heartbeat_before: datetime) -> list[Run]:
        """Active runs whose heartbeat (or, without one, creation) is older than the bound."""
        ...

    def interrupt_run(
        self,
        run_id: str,
        heartbeat_before: datetime,
        update: RunUpdate,
        successor: NewRun | None = None,
    ) -> Run | None:
        """Mark an active run ``INTERRUPTED`` only if its heartbeat is still older than the
        bound (so two reapers, or a run that came back to life, cannot both win); inserts
        ``successor`` in the same transaction. ``None`` when the run was not stale any more."""
        ...

    def record_verification(self, run_id: str, restorable: bool, at: datetime) -> Run:
        """Set a backup run's ``restorable`` and ``verified_at`` (any state; a later
        verification overwrites an earlier one); ``RunNotFound`` when absent."""
        ...

    def run_stats(self, duration_bounds: Sequence[float]) -> list[RunStats]:
        """Aggregates of finished runs per ``(plan, target, kind)`` (runs without a start time
        count everywhere but in the durations), with duration histogram buckets at
        ``duration_bounds`` seconds (ascending). One round of queries, whatever the history."""
        ...

    # -- restore points (plan firings) ----------------------------------------------------

    def create_restore_point(self, point: NewRestorePoint) -> RestorePoint:
        """Claim a plan firing; raises ``FiringTaken`` when ``(plan, scheduled_for)`` has one."""
        ...

    def get_restore_point(self, restore_point_id: str) -> RestorePoint:
        """One restore point by id; raises ``RestorePointNotFound``."""
        ...

    def list_restore_points(
        self,
        plan: str | None = None,
        states: Iterable[RestorePointState] | None = None,
        limit: int = 50,
    ) -> list[RestorePoint]:
        """Restore points, newest (by ``created_at``, then id) first."""
        ...

    def transition_restore_point(
        self,
        restore_point_id: str,
        expected: Sequence[RestorePointState],
        new_state: RestorePointState,
        update: RestorePointUpdate | None = None,
    ) -> RestorePoint:
        """Compare-and-set the state; ``RunConflict`` (with the id) when not in ``expected``."""
        ...

    def stale_restore_points(self, heartbeat_before: datetime) -> list[RestorePoint]:
        """Active restore points whose heartbeat (or creation) is older than the bound."""
        ...

    def last_scheduled_for(self, plan: str) -> datetime | None:
        """The latest ``scheduled_for`` recorded for the plan (missed firings included)."""
        ...

    # -- job firings (scheduled verify jobs and restore drills) -----------------------------

    def claim_job_firing(
        self, job: str, scheduled_for: datetime, daemon_instance: str, claimed_at: datetime
    ) -> bool:
        """Claim one firing of a scheduled job (``verify:nightly``, ``drill:nightly:sandbox``):
        True when this claim won it; False when the firing was already claimed (by another
        daemon, or earlier by this one). The catalog's unique ``(job, scheduled_for)``
        arbitrates, so however many daemons race, exactly one gets True."""
        ...

    def attach_job_run(self, job: str, scheduled_for: datetime, run_id: str) -> None:
        """Record the run a claimed firing started; ``RunNotFound`` when the run or the
        firing is unknown."""
        ...

    def last_job_firing(self, job: str) -> datetime | None:
        """The latest ``scheduled_for`` claimed for the job (None: it never fired)."""
        ...

    def count_job_firings(self, job: str, before: datetime) -> int:
        """How many firings of the job were claimed with ``scheduled_for`` before ``before``
        (the firing number of a rolling verify: which slice it checks)."""
        ...

    # -- retention: pins and deletions ----------------------------------------------------

    def pin_run(self, run_id: str, by: str, reason: str | None, at: datetime) -> Run:
        """Pin a backup: retention never deletes it. Pinning again replaces who, why and when.
        ``DeletionConflict`` (a ``RunConflict``) once its deletion has begun; ``RunNotFound``."""
        ...

    def unpin_run(self, run_id: str) -> Run:
        """Remove the pin (a run not pinned is returned as it is); ``RunNotFound``."""
        ...

    def begin_deletion(self, run_id: str, reason: str) -> Run:
        """Compare-and-set, before the first object of a backup is deleted: record why, unless
        it is pinned (``DeletionConflict``). From then on the run is never pinned, restored or
        verified again. A run whose deletion already began is returned as it is."""
        ...

    def mark_deleted(self, run_id: str, at: datetime) -> Run:
        """Record that the last stored object of a run whose deletion began is gone (a run
        already marked keeps its first time); ``DeletionConflict`` when it never began."""
        ...

    def mark_restore_point_deleted(
        self, restore_point_id: str, reason: str, at: datetime
    ) -> RestorePoint:
        """Record that every stored object of the point's backups is gone (a point already
        marked keeps its first mark); ``RunConflict`` while it is still active."""
        ...

    # -- artifacts and log ----------------------------------------------------------------

    def add_artifacts(self, artifacts: Iterable[Artifact]) -> None:
        """Record stored objects of a run."""
        ...

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        """Objects recorded for a run, ordered by object key."""
        ...

    def append_log(self, run_id: str, lines: Iterable[tuple[datetime, LogStream, str]]) -> int:
        """Append lines to a run's log in order; returns the number appended."""
        ...

    def read_log(self, run_id: str, after_seq: int = 0) -> Iterator[LogLine]:
        """Stream a run's log lines with ``seq > after_seq`` in order."""
        ...
