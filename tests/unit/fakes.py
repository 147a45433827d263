"""In-memory fakes of our own ports, for unit tests of actions."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bbr_orchestrator.core.models import (
    Artifact,
    LogLine,
    LogStream,
    NewRun,
    Run,
    RunFilter,
    RunState,
    RunUpdate,
)
from bbr_orchestrator.errors import (
    RunConflict,
    RunNotFound,
    StorageUnavailable,
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
    """The Catalog port in a dict."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.artifacts: list[Artifact] = []
        self.logs: dict[str, list[LogLine]] = {}

    def create_run(self, run: NewRun) -> Run:
        if run.id in self.runs:
            raise RunConflict(run.id, ["<new>"], self.runs[run.id].state.value)
        stored = Run(**dataclasses.asdict(run))
        self.runs[run.id] = stored
        return stored

    def get_run(self, run_id: str) -> Run:
        matches = [r for r in self.runs.values() if r.id.startswith(run_id)]
        if len(matches) != 1:
            raise RunNotFound(run_id)
        return matches[0]

    def list_runs(self, run_filter: RunFilter) -> list[Run]:
        runs = sorted(self.runs.values(), key=lambda r: r.created_at, reverse=True)
        wanted = [
            r
            for r in runs
            if run_filter.target in (None, r.target)
            and run_filter.kind in (None, r.kind)
            and run_filter.state in (None, r.state)
        ]
        return wanted[: run_filter.limit]

    def transition(
        self,
        run_id: str,
        expected: Sequence[RunState],
        new_state: RunState,
        update: RunUpdate | None = None,
    ) -> Run:
        run = self.get_run(run_id)
        if run.state not in expected:
            raise RunConflict(run_id, [s.value for s in expected], run.state.value)
        changes = {
            k: v for k, v in dataclasses.asdict(update or RunUpdate()).items() if v is not None
        }
        self.runs[run_id] = dataclasses.replace(run, state=new_state, **changes)
        return self.runs[run_id]

    def heartbeat(self, run_id: str, at: datetime) -> None:
        self.runs[run_id] = dataclasses.replace(self.runs[run_id], heartbeat_at=at)

    def add_artifacts(self, artifacts: Iterable[Artifact]) -> None:
        self.artifacts.extend(artifacts)

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        return [a for a in self.artifacts if a.run_id == run_id]

    def append_log(self, run_id: str, lines: Iterable[tuple[datetime, LogStream, str]]) -> int:
        log = self.logs.setdefault(run_id, [])
        added = [LogLine(run_id, len(log) + i + 1, at, s, t) for i, (at, s, t) in enumerate(lines)]
        log.extend(added)
        return len(added)

    def read_log(self, run_id: str, after_seq: int = 0) -> Iterator[LogLine]:
        return iter([line for line in self.logs.get(run_id, []) if line.seq > after_seq])


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
