"""In-memory fakes of our own ports, for unit tests of actions."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bbr_orchestrator.core.models import (
    ACTIVE_STATES,
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
from bbr_orchestrator.core.retention import DeletionConflict
from bbr_orchestrator.errors import (
    FiringTaken,
    RestorePointNotFound,
    RunConflict,
    RunNotFound,
    StorageUnavailable,
    TargetBusy,
    TransferInterrupted,
)
from bbr_orchestrator.ports import CancelToken, LineSink


class FakeClock:
    """A clock that moves one second per reading."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 27, 2, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


class MemoryCatalog:
    """The Catalog port in dicts, with the SQL catalog's semantics: compare-and-set states, one
    RUNNING run per target among the kinds that hold targets (``TargetBusy``; a verify holds
    none), one restore point per ``(plan, scheduled_for)`` (``FiringTaken``), successors
    inserted atomically with the transition. Thread-safe."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.restore_points: dict[str, RestorePoint] = {}
        self.artifacts: list[Artifact] = []
        self.logs: dict[str, list[LogLine]] = {}
        self.job_firings: dict[tuple[str, datetime], JobFiringRow] = {}
        self._lock = threading.RLock()

    # -- runs ----------------------------------------------------------------------------

    def create_run(self, run: NewRun) -> Run:
        with self._lock:
            return self._insert(run)

    def _insert(self, run: NewRun) -> Run:
        if run.id in self.runs:
            raise RunConflict(run.id, ("absent",), self.runs[run.id].state.value)
        if run.restore_point_id is not None and run.restore_point_id not in self.restore_points:
            raise RestorePointNotFound(run.restore_point_id)
        if run.subject_run_id is not None and run.subject_run_id not in self.runs:
            raise RunNotFound(run.subject_run_id, f"no such run (the subject of run {run.id})")
        stored = Run(**dataclasses.asdict(run))
        if run.state is RunState.RUNNING:
            if stored.holds_target:
                self._claim_target(run.id, run.target)
            stored = dataclasses.replace(
                stored, started_at=run.created_at, heartbeat_at=run.created_at
            )
        self.runs[run.id] = stored
        return stored

    def _claim_target(self, run_id: str, target: str) -> None:
        """``TargetBusy`` when another running run holds ``target`` (a verify never does)."""
        for other in self.runs.values():
            if (
                other.id != run_id
                and other.target == target
                and other.state is RunState.RUNNING
                and other.holds_target
            ):
                raise TargetBusy(run_id, target, other.id)

    def get_run(self, run_id: str) -> Run:
        with self._lock:
            if run_id in self.runs:
                return self.runs[run_id]
            matches = [r for r in self.runs.values() if r.id.startswith(run_id)]
            if len(run_id) < 6 or len(matches) != 1:
                raise RunNotFound(run_id)
            return matches[0]

    def list_runs(self, run_filter: RunFilter) -> list[Run]:
        if run_filter.limit < 1:
            raise ValueError(f"RunFilter.limit must be at least 1, got {run_filter.limit}")
        with self._lock:
            runs = sorted(self.runs.values(), key=lambda r: (r.created_at, r.id), reverse=True)
        wanted = [r for r in runs if _matches(run_filter, r)]
        return wanted[: run_filter.limit]

    def transition(
        self,
        run_id: str,
        expected: Sequence[RunState],
        new_state: RunState,
        update: RunUpdate | None = None,
        successor: NewRun | None = None,
    ) -> Run:
        if not expected:
            raise ValueError("transition needs at least one expected state")
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                raise RunNotFound(run_id)
            if run.state not in expected:
                raise RunConflict(run_id, [RunState(s).value for s in expected], run.state.value)
            if new_state is RunState.RUNNING and run.holds_target:
                self._claim_target(run_id, run.target)
            changed = dataclasses.replace(run, state=new_state, **_changes(update))
            return self._commit(changed, successor)

    def _commit(self, changed: Run, successor: NewRun | None) -> Run:
        """Store ``changed`` and insert ``successor``: both or (on error) neither."""
        before = self.runs[changed.id]
        self.runs[changed.id] = changed
        try:
            if successor is not None:
                self._insert(successor)
        except BaseException:
            self.runs[changed.id] = before
            raise
        return changed

    def heartbeat(self, run_id: str, at: datetime) -> None:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                raise RunNotFound(run_id)
            if not run.state.active:
                raise RunConflict(run_id, sorted(s.value for s in ACTIVE_STATES), run.state.value)
            self.runs[run_id] = dataclasses.replace(run, heartbeat_at=at)

    def heartbeat_owner(self, daemon_instance: str, at: datetime) -> int:
        with self._lock:
            runs = [
                r
                for r in self.runs.values()
                if r.daemon_instance == daemon_instance and r.state.active
            ]
            points = [
                p
                for p in self.restore_points.values()
                if p.daemon_instance == daemon_instance and p.state.active
            ]
            for r in runs:
                self.runs[r.id] = dataclasses.replace(r, heartbeat_at=at)
            for p in points:
                self.restore_points[p.id] = dataclasses.replace(p, heartbeat_at=at)
            return len(runs) + len(points)

    def stale_runs(self, heartbeat_before: datetime) -> list[Run]:
        with self._lock:
            stale = [r for r in self.runs.values() if _stale(r, heartbeat_before)]
        return sorted(stale, key=lambda r: (r.created_at, r.id))

    def interrupt_run(
        self,
        run_id: str,
        heartbeat_before: datetime,
        update: RunUpdate,
        successor: NewRun | None = None,
    ) -> Run | None:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None or not _stale(run, heartbeat_before):
                return None
            changed = dataclasses.replace(run, state=RunState.INTERRUPTED, **_changes(update))
            return self._commit(changed, successor)

    def record_verification(self, run_id: str, restorable: bool, at: datetime) -> Run:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                raise RunNotFound(run_id)
            changed = dataclasses.replace(run, restorable=restorable, verified_at=at)
            self.runs[run_id] = changed
            return changed

    def run_stats(self, duration_bounds: Sequence[float]) -> list[RunStats]:
        """The SQL catalog's aggregates, computed over the dict (same order, same values)."""
        bounds = [float(b) for b in duration_bounds]
        if any(math.isnan(b) for b in bounds):
            raise ValueError("run_stats: a duration bound must be a number, got nan")
        groups: dict[tuple[str | None, str, str], list[Run]] = {}
        with self._lock:
            for run in self.runs.values():
                if not run.state.active:
                    groups.setdefault((run.plan, run.target, run.kind.value), []).append(run)
        stats = [self._group_stats(group, bounds) for group in groups.values()]
        return sorted(
            stats, key=lambda s: (s.plan or "", s.target, s.kind.value, s.plan is not None)
        )

    @staticmethod
    def _group_stats(runs: list[Run], bounds: list[float]) -> RunStats:
        """One group's ``RunStats``; durations in whole microseconds, as the SQL catalog."""

        def latest(of: list[Run]) -> Run | None:  # by finished_at, ties by id; None: never
            return max(
                (r for r in of if r.finished_at), key=lambda r: (r.finished_at, r.id), default=None
            )

        def label(run: Run) -> str:
            return run.outcome if run.outcome is not None else run.state.value

        last, ok = latest(runs), latest([r for r in runs if r.state is RunState.SUCCEEDED])
        labels = [label(r) for r in runs]
        micros = [
            (r.finished_at - r.started_at) // timedelta(microseconds=1)
            for r in runs
            if r.started_at is not None and r.finished_at is not None
        ]
        unlock_failed = [
            r.finished_at for r in runs if "unlock-failed" in label(r) and r.finished_at
        ]
        return RunStats(
            plan=runs[0].plan,
            target=runs[0].target,
            kind=runs[0].kind,
            finished=len(runs),
            outcome_counts=tuple(sorted((x, labels.count(x)) for x in set(labels))),
            last_attempt_at=None if last is None else last.finished_at,
            last_outcome=None if last is None else label(last),
            last_success_at=None if ok is None else ok.finished_at,
            last_success_bytes=None if ok is None else ok.bytes_total,
            bytes_succeeded_total=sum(
                r.bytes_total or 0 for r in runs if r.state is RunState.SUCCEEDED
            ),
            last_unlock_failed_at=max(unlock_failed, default=None),
            duration_count=len(micros),
            duration_sum_seconds=sum(micros) / 1_000_000,
            duration_buckets=tuple(sum(m / 1_000_000 <= b for m in micros) for b in bounds),
        )

    # -- restore points ------------------------------------------------------------------

    def create_restore_point(self, point: NewRestorePoint) -> RestorePoint:
        with self._lock:
            if point.id in self.restore_points:
                raise RunConflict(point.id, ("absent",), self.restore_points[point.id].state.value)
            if point.scheduled_for is not None:
                for other in self.restore_points.values():
                    if (other.plan, other.scheduled_for) == (point.plan, point.scheduled_for):
                        raise FiringTaken(point.plan, point.scheduled_for.isoformat(), other.id)
            stored = RestorePoint(**dataclasses.asdict(point))
            if point.state is RestorePointState.RUNNING:
                stored = dataclasses.replace(
                    stored, started_at=point.created_at, heartbeat_at=point.created_at
                )
            self.restore_points[point.id] = stored
            return stored

    def get_restore_point(self, restore_point_id: str) -> RestorePoint:
        with self._lock:
            if restore_point_id not in self.restore_points:
                raise RestorePointNotFound(restore_point_id)
            return self.restore_points[restore_point_id]

    def list_restore_points(
        self,
        plan: str | None = None,
        states: Iterable[RestorePointState] | None = None,
        limit: int = 50,
    ) -> list[RestorePoint]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        wanted = None if states is None else set(states)
        with self._lock:
            points = sorted(
                self.restore_points.values(), key=lambda p: (p.created_at, p.id), reverse=True
            )
        return [
            p for p in points if plan in (None, p.plan) and (wanted is None or p.state in wanted)
        ][:limit]

    def transition_restore_point(
        self,
        restore_point_id: str,
        expected: Sequence[RestorePointState],
        new_state: RestorePointState,
        update: RestorePointUpdate | None = None,
    ) -> RestorePoint:
        if not expected:
            raise ValueError("transition_restore_point needs at least one expected state")
        with self._lock:
            point = self.get_restore_point(restore_point_id)
            if point.state not in expected:
                allowed = [RestorePointState(s).value for s in expected]
                raise RunConflict(restore_point_id, allowed, point.state.value)
            changes = {
                k: v
                for k, v in dataclasses.asdict(update or RestorePointUpdate()).items()
                if v is not None
            }
            changed = dataclasses.replace(point, state=new_state, **changes)
            self.restore_points[restore_point_id] = changed
            return changed

    def stale_restore_points(self, heartbeat_before: datetime) -> list[RestorePoint]:
        with self._lock:
            stale = [
                p
                for p in self.restore_points.values()
                if p.state.active and (p.heartbeat_at or p.created_at) < heartbeat_before
            ]
        return sorted(stale, key=lambda p: (p.created_at, p.id))

    def last_scheduled_for(self, plan: str) -> datetime | None:
        with self._lock:
            times = [
                p.scheduled_for
                for p in self.restore_points.values()
                if p.plan == plan and p.scheduled_for is not None
            ]
        return max(times, default=None)

    # -- job firings ---------------------------------------------------------------------

    def claim_job_firing(
        self, job: str, scheduled_for: datetime, daemon_instance: str, claimed_at: datetime
    ) -> bool:
        if scheduled_for.tzinfo is None or claimed_at.tzinfo is None:
            raise ValueError("claim_job_firing: the catalog needs timezone-aware datetimes")
        with self._lock:
            if (job, scheduled_for) in self.job_firings:
                return False
            self.job_firings[(job, scheduled_for)] = JobFiringRow(
                job, scheduled_for, daemon_instance, claimed_at
            )
            return True

    def attach_job_run(self, job: str, scheduled_for: datetime, run_id: str) -> None:
        with self._lock:
            if run_id not in self.runs:
                raise RunNotFound(run_id)
            firing = self.job_firings.get((job, scheduled_for))
            if firing is None:
                at = scheduled_for.isoformat()
                raise RunNotFound(run_id, f"no firing of job {job} at {at} to attach it to")
            firing.run_id = run_id

    def last_job_firing(self, job: str) -> datetime | None:
        with self._lock:
            return max((at for name, at in self.job_firings if name == job), default=None)

    def count_job_firings(self, job: str, before: datetime) -> int:
        with self._lock:
            return sum(1 for name, at in self.job_firings if name == job and at < before)

    # -- retention: pins and deletions ---------------------------------------------------

    def pin_run(self, run_id: str, by: str, reason: str | None, at: datetime) -> Run:
        with self._lock:
            run = self._run(run_id)
            if run.deletion_started:
                raise DeletionConflict(
                    run_id, f"cannot pin: retention is deleting it ({run.delete_reason})"
                )
            return self._put(
                dataclasses.replace(run, pinned_at=at, pinned_by=by, pin_reason=reason)
            )

    def unpin_run(self, run_id: str) -> Run:
        with self._lock:
            run = self._run(run_id)
            return self._put(
                dataclasses.replace(run, pinned_at=None, pinned_by=None, pin_reason=None)
            )

    def begin_deletion(self, run_id: str, reason: str) -> Run:
        if not reason:
            raise ValueError("begin_deletion needs a reason")
        with self._lock:
            run = self._run(run_id)
            if run.deletion_started:
                return run
            if run.pinned:
                raise DeletionConflict(run_id, f"cannot delete: pinned by {run.pinned_by}")
            return self._put(dataclasses.replace(run, delete_reason=reason))

    def mark_deleted(self, run_id: str, at: datetime) -> Run:
        with self._lock:
            run = self._run(run_id)
            if run.delete_reason is None:
                raise DeletionConflict(run_id, "cannot mark deleted: its deletion was never begun")
            if run.deleted_at is not None:
                return run
            return self._put(dataclasses.replace(run, deleted_at=at))

    def mark_restore_point_deleted(
        self, restore_point_id: str, reason: str, at: datetime
    ) -> RestorePoint:
        with self._lock:
            point = self.get_restore_point(restore_point_id)
            if point.deleted_at is not None:
                return point
            if point.state.active:
                final = [s.value for s in RestorePointState if not s.active]
                raise RunConflict(restore_point_id, final, point.state.value)
            changed = dataclasses.replace(point, deleted_at=at, delete_reason=reason)
            self.restore_points[restore_point_id] = changed
            return changed

    def _run(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    def _put(self, run: Run) -> Run:
        self.runs[run.id] = run
        return run

    # -- artifacts and log ---------------------------------------------------------------

    def add_artifacts(self, artifacts: Iterable[Artifact]) -> None:
        with self._lock:
            self.artifacts.extend(artifacts)

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        with self._lock:
            found = [a for a in self.artifacts if a.run_id == run_id]
        return sorted(found, key=lambda a: a.object_key)

    def append_log(self, run_id: str, lines: Iterable[tuple[datetime, LogStream, str]]) -> int:
        with self._lock:
            log = self.logs.setdefault(run_id, [])
            added = [
                LogLine(run_id, len(log) + i + 1, at, s, t) for i, (at, s, t) in enumerate(lines)
            ]
            log.extend(added)
            return len(added)

    def read_log(self, run_id: str, after_seq: int = 0) -> Iterator[LogLine]:
        with self._lock:
            return iter([line for line in self.logs.get(run_id, []) if line.seq > after_seq])


@dataclasses.dataclass
class JobFiringRow:
    """One claimed firing of a scheduled job (a row of ``job_firings``)."""

    job: str
    scheduled_for: datetime
    daemon_instance: str
    claimed_at: datetime
    run_id: str | None = None


def _changes(update: RunUpdate | None) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(update or RunUpdate()).items() if v is not None}


def _stale(run: Run, heartbeat_before: datetime) -> bool:
    return run.state.active and (run.heartbeat_at or run.created_at) < heartbeat_before


def _matches(f: RunFilter, run: Run) -> bool:
    return (
        f.plan in (None, run.plan)
        and f.target in (None, run.target)
        and f.kind in (None, run.kind)
        and f.state in (None, run.state)
        and (f.states is None or run.state in f.states)
        and f.restore_point_id in (None, run.restore_point_id)
        and (f.since is None or run.created_at >= f.since)
        and (f.until is None or run.created_at < f.until)
        and f.deleted in (None, run.deletion_started)
    )


Responder = Callable[[Sequence[str], LineSink], int]


class ScriptedShell:
    """A RemoteShell whose commands are answered by a function; records every call."""

    host = "jumpbox.test"

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.calls: list[tuple[tuple[str, ...], str | None, dict[str, str]]] = []
        self.files: dict[str, tuple[bytes, int]] = {}
        self.closed = 0

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
        self.calls.append((tuple(argv), cwd, dict(env or {})))
        return self.respond(argv, on_line)

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        self.files[path] = (data, mode)

    def close(self) -> None:
        self.closed += 1


class MemoryReadStream:
    """A ReadStream over bytes that breaks (TransferInterrupted) after ``fail_at`` bytes."""

    def __init__(self, data: bytes, offset: int, fail_at: int | None, chunk: int) -> None:
        self._data, self._pos, self._fail_at, self._chunk = data, offset, fail_at, chunk

    def readinto(self, buffer: memoryview) -> int:
        if self._fail_at is not None and self._pos >= self._fail_at:
            raise TransferInterrupted("jumpbox.test", "/f", self._pos, "connection reset by peer")
        end = min(len(self._data), self._pos + len(buffer), self._pos + self._chunk)
        if self._fail_at is not None:
            end = min(end, max(self._fail_at, self._pos))
        n = end - self._pos
        buffer[:n] = self._data[self._pos : end]
        self._pos = end
        return n

    def close(self) -> None:
        return None


class MemoryFiles:
    """A FileTransfer over a dict of path -> bytes; ``drops`` lists offsets where a read breaks."""

    def __init__(self, files: dict[str, bytes], drops: list[int] | None = None) -> None:
        self.files = files
        self.drops = list(drops or [])
        self.opened: list[tuple[str, int]] = []

    def open_read(self, path: str, offset: int = 0) -> MemoryReadStream:
        self.opened.append((path, offset))
        fail_at = next((d for d in self.drops if d > offset), None)
        if fail_at is not None:
            self.drops.remove(fail_at)
        return MemoryReadStream(self.files[path], offset, fail_at, chunk=256 * 1024)

    def open_write(self, path: str, mode: int = 0o600) -> Any:
        raise NotImplementedError("not used by these tests")


class MemoryUpload:
    def __init__(self, store: MemoryStore, key: str) -> None:
        self.store, self.key = store, key
        self.parts: dict[int, bytes] = {}
        self.state = "open"

    def upload_part(self, number: int, data: memoryview | bytes) -> None:
        with self.store.lock:
            self.store.in_flight += 1
            self.store.max_in_flight = max(self.store.max_in_flight, self.store.in_flight)
            self.store.part_calls += 1
        try:
            if self.store.fail_part == number:
                raise StorageUnavailable("bucket", self.key, "injected 503", attempts=3)
            self.parts[number] = bytes(data)
        finally:
            with self.store.lock:
                self.store.in_flight -= 1

    def complete(self) -> None:
        self.store.objects[self.key] = b"".join(self.parts[n] for n in sorted(self.parts))
        self.state = "completed"

    def abort(self) -> None:
        self.state = "aborted"


class MemoryStore:
    """The ObjectStore port in memory, counting concurrency and recording every upload."""

    def __init__(self, fail_part: int | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: list[MemoryUpload] = []
        self.fail_part = fail_part
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = self.part_calls = 0

    def start_upload(self, key: str) -> MemoryUpload:
        upload = MemoryUpload(self, key)
        self.uploads.append(upload)
        return upload

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = bytes(data)

    def open_uploads(self) -> list[str]:
        return [u.key for u in self.uploads if u.state == "open"]
