"""Turn catalog records into tables for people and JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from rich.console import Console
from rich.table import Table

from bbr_orchestrator.core.explain import explain
from bbr_orchestrator.core.models import Artifact, RestorePoint, Run

_STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "interrupted": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "cyan",
}


def console() -> Console:
    """A console that does not squeeze tables to 80 columns when output goes to a pipe."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=200, no_color=True)


def plain(value: Any) -> Any:
    """A JSON-ready copy: enums as values, datetimes as ISO 8601."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def run_record(run: Run) -> dict[str, Any]:
    record: dict[str, Any] = plain(asdict(run))
    record["duration_seconds"] = run.duration_seconds
    return record


def to_json(data: Any, *, compact: bool = False) -> str:
    if compact:
        return json.dumps(plain(data), separators=(",", ":"))
    return json.dumps(plain(data), indent=2)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


def human_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def runs_table(runs: list[Run]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("ID", "KIND", "TARGET", "PLAN", "STATE", "OUTCOME", "CREATED", "DURATION"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        style = _STATE_STYLE.get(run.state.value, "")
        table.add_row(
            run.id,
            run.kind.value,
            run.target,
            run.plan or "-",
            f"[{style}]{run.state.value}[/]" if style else run.state.value,
            run.outcome or "-",
            _when(run.created_at),
            _duration(run.duration_seconds),
        )
    return table


def print_run(console: Console, run: Run, artifacts: list[Artifact]) -> None:
    rows = [
        ("id", run.id),
        ("kind", run.kind.value),
        ("target", f"{run.target} ({run.target_kind.value})"),
        ("plan", run.plan or "-"),
        ("trigger", f"{run.trigger.value} by {run.triggered_by}"),
        ("state", run.state.value),
        ("outcome", run.outcome or "-"),
        ("bbr exit code", "-" if run.exit_code is None else str(run.exit_code)),
        ("created", _when(run.created_at)),
        ("started", _when(run.started_at)),
        ("finished", _when(run.finished_at)),
        ("duration", _duration(run.duration_seconds)),
        ("bytes", human_bytes(run.bytes_total)),
        ("daemon", run.daemon_instance or "-"),
    ]
    if run.restore_point_id:
        rows.append(("restore point", f"{run.restore_point_id} step {run.step or '-'}"))
    if run.subject_run_id:
        rows.append(("about backup", run.subject_run_id))
    if run.rto_seconds is not None:
        rows.append(("rto", f"{run.rto_seconds:.1f} s (from the start until bbr restored)"))
    if run.verified_at is not None:
        verdict = "restorable" if run.restorable else "NOT restorable (verification failed)"
        rows.append(("verified", f"{_when(run.verified_at)}: {verdict}"))
    if run.pinned_at is not None:
        because = f": {run.pin_reason}" if run.pin_reason else ""
        rows.append(("pinned", f"{_when(run.pinned_at)} by {run.pinned_by}{because}"))
    if run.deleted_at is not None:
        rows.append(("deleted", f"{_when(run.deleted_at)}: {run.delete_reason}"))
    elif run.delete_reason is not None:
        rows.append(
            ("deleting", f"{run.delete_reason} (not finished: `bbr-orchestrator prune` ends it)")
        )
    why = explain(run.kind, run.state, run.outcome)
    if why:
        rows.append(("what it means", why))
    if run.error_summary:
        rows.append(("error", run.error_summary))
    if why or run.error_summary:
        rows.append(("log", f"bbr-orchestrator runs logs {run.id}"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        console.print(f"[bold]{key:<{width}}[/]  {value}", highlight=False)
    if artifacts:
        title = "artifacts (deleted from the store)" if run.deleted_at else "artifacts"
        table = Table(box=None, header_style="bold", title=title, title_justify="left")
        for column in ("OBJECT", "SIZE", "SHA-256", "MEMBERS"):
            table.add_column(column, no_wrap=column != "OBJECT")
        for artifact in artifacts:
            table.add_row(
                artifact.object_key,
                human_bytes(artifact.size_bytes),
                artifact.sha256,
                str(artifact.member_checksums),
            )
        console.print(table)
    console.print(f"log: bbr-orchestrator runs logs {run.id}", highlight=False)


def points_table(
    points: Sequence[RestorePoint],
    steps: Mapping[str, Sequence[Run]],
    loose: Sequence[Run],
) -> Table:
    """Restore points with their steps indented under them; then runs outside any point."""
    table = Table(box=None, header_style="bold")
    for column in ("ID", "PLAN / STEP", "STATE", "SCHEDULED FOR", "STARTED", "FINISHED", "NOTE"):
        table.add_column(column, no_wrap=column != "NOTE")
    for point in points:
        style = _POINT_STYLE.get(point.state.value, "")
        table.add_row(
            point.id,
            point.plan,
            f"[{style}]{point.state.value}[/]" if style else point.state.value,
            _when(point.scheduled_for),
            _when(point.started_at),
            _when(point.finished_at),
            point.summary or "",
        )
        for run in sorted(steps.get(point.id, ()), key=lambda r: (r.step or 0, r.created_at)):
            table.add_row(*_step_row(run, f"  {run.step or '-'}. {run.kind.value} {run.target}"))
    for run in loose:
        table.add_row(*_step_row(run, f"{run.kind.value} {run.target}"))
    return table


def _step_row(run: Run, label: str) -> tuple[str, ...]:
    style = _STATE_STYLE.get(run.state.value, "")
    state = f"[{style}]{run.state.value}[/]" if style else run.state.value
    note = run.outcome or ""
    if run.error_summary:
        note += f": {run.error_summary.strip().splitlines()[0][:120]}"
    return (f"  {run.id}", label, state, "", _when(run.started_at), _when(run.finished_at), note)


_POINT_STYLE = {
    "complete": "green",
    "partial": "yellow",
    "failed": "red",
    "interrupted": "red",
    "missed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "cyan",
}
