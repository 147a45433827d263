"""Per-run working directories on the jumpbox: create, fill, collect from, and remove."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bbr_orchestrator.actions.run_log import RunLogWriter
from bbr_orchestrator.core.models import RunFilter, RunKind, RunState
from bbr_orchestrator.errors import OrchestratorError
from bbr_orchestrator.ports import Catalog, RemoteShell

_TIMEOUT = 60


def path_of(work_root: str, run_id: str) -> str:
    """A run's working directory on the jumpbox: ``<work_root>/<run id>``."""
    return f"{work_root.rstrip('/')}/{run_id}"


def stale_failed(
    catalog: Catalog, target: str, kind: RunKind, work_root: str, keep_failed: int
) -> list[str]:
    """Directories of the target's older failed or cancelled runs of ``kind`` beyond the
    number kept for inspection (the run now failing counts as one of them)."""
    older = [
        run
        for state in (RunState.FAILED, RunState.CANCELLED)
        for run in catalog.list_runs(RunFilter(target=target, kind=kind, state=state, limit=500))
    ]
    older.sort(key=lambda run: run.created_at, reverse=True)
    keep = max(keep_failed - 1, 0)
    return [path_of(work_root, run.id) for run in older[keep:]]


def _checked(shell: RemoteShell, argv: Sequence[str], writer: RunLogWriter, what: str) -> None:
    if shell.run(argv, on_line=writer.line, timeout=_TIMEOUT) != 0:
        raise OrchestratorError(f"cannot {what} on {shell.host}")


def prepare(
    shell: RemoteShell, workdir: str, run_files: Mapping[str, bytes], writer: RunLogWriter
) -> None:
    """Create the run directory (0700) and write the run's files into it (0600)."""
    _checked(shell, ("mkdir", "-p", "-m", "0700", workdir), writer, f"create {workdir}")
    for name, data in run_files.items():
        shell.write_file(f"{workdir}/{name}", data, 0o600)
        writer.event(f"wrote {workdir}/{name} (mode 0600)")


def finish(
    shell: RemoteShell,
    workdir: str,
    run_files: Mapping[str, bytes],
    *,
    keep: bool,
    writer: RunLogWriter,
) -> None:
    """Remove the run files always; the whole directory unless ``keep`` (it holds an artifact,
    kept until stored, or a failed backup's partial artifact, kept for inspection)."""
    if not keep:
        _checked(shell, ("rm", "-rf", workdir), writer, f"remove {workdir}")
        return
    paths = [f"{workdir}/{name}" for name in run_files]
    if paths:
        _checked(shell, ("rm", "-f", *paths), writer, "remove run files")


def remove(shell: RemoteShell, workdirs: Sequence[str], writer: RunLogWriter, why: str) -> None:
    """Remove run directories (a stored backup's, or failed backups beyond the number kept)."""
    if workdirs:
        _checked(shell, ("rm", "-rf", *workdirs), writer, "remove run directories")
        writer.event(f"removed {' '.join(workdirs)} ({why})")


def collect_err_logs(shell: RemoteShell, workdir: str, writer: RunLogWriter) -> None:
    """Copy bbr's ``bbr-*.err.log`` files (written on failure) into the run log."""
    found: list[str] = []
    shell.run(
        ("find", workdir, "-maxdepth", "1", "-name", "bbr-*.err.log", "-type", "f"),
        on_line=lambda _stream, line: found.append(line),
        timeout=_TIMEOUT,
    )
    for path in sorted(p for p in found if p.startswith(workdir)):
        writer.event(f"--- {path} ---")
        shell.run(("cat", path), on_line=writer.err_log_line, timeout=_TIMEOUT)
