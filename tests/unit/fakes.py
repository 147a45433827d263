"""In-memory fakes of our own ports, for unit tests of actions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta

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
from bbr_orchestrator.errors import RunConflict, RunNotFound
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
