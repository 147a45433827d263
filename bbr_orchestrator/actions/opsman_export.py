"""Export the Ops Manager installation with ``om export-installation`` and store it.

The first step of a platform restore point. Like a bbr run (:mod:`.bbr_operation`): the run is
claimed in the catalog first, so every failure ends as a catalog row with a reason; om runs in
the run's own directory on the jumpbox (``<work_root>/<run id>``, mode 0700) with its
credentials in its environment (sent on stdin, never in the command line), and its output
streams into the run log. On exit 0 the zip is checked to be whole (its end record and central
directory, read from the jumpbox), streamed to the object store under
``{prefix}/{target}/installation_<run id>/installation.zip`` with its SHA-256 compared to one
taken on the jumpbox, recorded, and the manifest is written last; only then does the run
succeed and the run directory go. After a failure the directory stays for inspection (the
newest ``keep_failed_workdirs`` of them).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import structlog

from bbr_orchestrator.actions import workdirs
from bbr_orchestrator.actions.backup_storage import Storage, store_files
from bbr_orchestrator.actions.run_claim import Requester, RunRequest, claim_now, start_run
from bbr_orchestrator.actions.run_log import RunLogWriter
from bbr_orchestrator.actions.session import Session
from bbr_orchestrator.actions.store_artifact import StoredFiles
from bbr_orchestrator.core.bbr_metadata import MetadataSummary
from bbr_orchestrator.core.models import Run, RunKind, RunState, RunUpdate, TargetKind
from bbr_orchestrator.core.om_argv import INSTALLATION_FILE
from bbr_orchestrator.core.zip_check import (
    LOCAL_HEADER,
    TAIL_BYTES,
    ZipDirectory,
    central_directory,
    check_head,
    zip_end,
)
from bbr_orchestrator.errors import ArtifactCorrupt, OrchestratorError, TruncatedFile
from bbr_orchestrator.ports import (
    CancelToken,
    Catalog,
    Clock,
    FileTransfer,
    Jumpbox,
    LineSink,
    ShellFactory,
)

log = structlog.get_logger(__name__)

OmArgvBuilder = Callable[[str], tuple[str, ...]]
"""``output_file -> argv`` of ``om ... export-installation --output-file output_file``."""

NO_METADATA = MetadataSummary(instances=0, artifacts=0, custom_artifacts=0, jobs=(), members=0)
"""The manifest's bbr metadata summary, for an artifact that has no bbr metadata."""
_SUMMARY_CHARS = 2000
_DIRECTORY_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class OpsmanRun:
    """Everything needed to export one Ops Manager's installation.

    ``env`` holds om's credentials (``OM_USERNAME`` / ``OM_PASSWORD`` or ``OM_CLIENT_ID`` /
    ``OM_CLIENT_SECRET``, and ``OM_DECRYPTION_PASSPHRASE``): it reaches om through a script on
    stdin, never its command line.
    """

    target: str
    build_argv: OmArgvBuilder
    work_root: str
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None
    plan: str | None = None
    keep_failed_workdirs: int = 3


@dataclass(frozen=True)
class _Result:
    state: RunState
    update: RunUpdate


def run_opsman_export(
    catalog: Catalog,
    connect: ShellFactory,
    clock: Clock,
    spec: OpsmanRun,
    requester: Requester,
    *,
    cancel: CancelToken | None = None,
    observer: LineSink | None = None,
    storage: Storage,
    queued: Run | None = None,
) -> Run:
    """Export and store the installation; return the finished run record. An om failure, a
    broken or unreachable jumpbox, a failed upload and a cancellation all end as a recorded
    run, not an exception.

    The run is created and started here, or, with ``queued``, that queued run is started.
    ``TargetBusy`` is raised (and nothing else happens) when another run holds the target."""
    if queued is None:
        request = RunRequest(RunKind.OPSMAN_EXPORT, spec.target, TargetKind.OPSMAN, spec.plan)
        run = claim_now(catalog, clock, request, requester)
    else:
        run = start_run(catalog, clock, queued)
    bound = log.bind(run_id=run.id, target=spec.target, operation=RunKind.OPSMAN_EXPORT.value)
    writer = RunLogWriter(catalog, clock, run.id, bound, observer)
    try:
        result = _execute(catalog, connect, clock, spec, run, writer, cancel, storage)
    finally:
        writer.flush()
    finished = catalog.transition(
        run.id, [RunState.RUNNING], result.state, replace(result.update, finished_at=clock.now())
    )
    bound.info(
        "run_finished",
        state=finished.state.value,
        outcome=finished.outcome,
        exit_code=finished.exit_code,
        duration_seconds=finished.duration_seconds,
        bytes_total=finished.bytes_total,
        error=finished.error_summary,
    )
    return finished


def _execute(
    catalog: Catalog,
    connect: ShellFactory,
    clock: Clock,
    spec: OpsmanRun,
    run: Run,
    writer: RunLogWriter,
    cancel: CancelToken | None,
    storage: Storage,
) -> _Result:
    workdir = workdirs.path_of(spec.work_root, run.id)
    try:
        session = Session(connect(), connect)
    except OrchestratorError as exc:
        writer.event(f"cannot reach the jumpbox: {exc}")
        return _Result(RunState.FAILED, _error(exc))
    try:
        shell = session.current
        workdirs.prepare(shell, workdir, {}, writer)
        argv = spec.build_argv(f"{workdir}/{INSTALLATION_FILE}")
        writer.event(f"running {shlex.join(argv)} in {workdir} on {shell.host}")
        code = shell.run(
            argv,
            on_line=writer.line,
            cwd=workdir,
            env=spec.env,
            timeout=spec.timeout_seconds,
            cancel=cancel,
        )
        cancelled = cancel is not None and cancel.is_set()
        writer.event(f"om exited {code}" + (" (cancelled)" if cancelled else ""))
        if code == 0 and not cancelled:
            return _store(catalog, session, clock, storage, run, workdir, writer)
        summary = writer.stderr_summary(_SUMMARY_CHARS) or f"om exited {code}"
        state, outcome = RunState.FAILED, "killed" if code < 0 else "failed"
        if cancelled:
            state, outcome = RunState.CANCELLED, "cancelled"
            summary = f"cancelled by request\n{summary}"
        writer.event(f"kept {workdir} for inspection (partial installation, if any)")
        workdirs.remove(
            shell,
            workdirs.stale_failed(
                catalog,
                spec.target,
                RunKind.OPSMAN_EXPORT,
                spec.work_root,
                spec.keep_failed_workdirs,
            ),
            writer,
            "older failed exports",
        )
        return _Result(state, RunUpdate(exit_code=code, outcome=outcome, error_summary=summary))
    except OrchestratorError as exc:
        writer.event(f"run failed: {exc}")
        return _Result(RunState.FAILED, _error(exc))
    finally:
        session.current.close()


def _store(
    catalog: Catalog,
    session: Session[Jumpbox],
    clock: Clock,
    storage: Storage,
    run: Run,
    workdir: str,
    writer: RunLogWriter,
) -> _Result:
    """Check, stream and record the zip; on failure the run fails and the zip stays."""
    path = f"{workdir}/{INSTALLATION_FILE}"
    try:
        listing = dict(session.current.list_files(workdir))
        if INSTALLATION_FILE not in listing:
            raise ArtifactCorrupt(path, None, "om exited 0 but wrote no installation")
        size = listing[INSTALLATION_FILE]
        found = check_zip(session.current, path, size)
        writer.event(f"{path}: a whole zip, {size} bytes, {len(found.names)} members")
        artifact = StoredFiles(
            artifact_name(run), workdir, ((INSTALLATION_FILE, size),), NO_METADATA
        )
        stored = store_files(
            catalog, session, clock, storage, run, TargetKind.OPSMAN, workdir, artifact, writer
        )
    except OrchestratorError as exc:
        where = f"{workdir} on {session.current.host}"
        writer.event(f"storing the installation failed; it stays in {where}: {exc}")
        reason = f"storing the installation failed (it stays in {where}): {exc}"
        update = RunUpdate(
            exit_code=0, outcome="upload-failed", error_summary=reason[:_SUMMARY_CHARS]
        )
        return _Result(RunState.FAILED, update)
    return _Result(
        RunState.SUCCEEDED, RunUpdate(exit_code=0, outcome="succeeded", bytes_total=stored)
    )


def artifact_name(run: Run) -> str:
    """The run's directory in the bucket: ``installation_<run id>`` (sorts by time)."""
    return f"installation_{run.id}"


def check_zip(files: FileTransfer, path: str, size: int) -> ZipDirectory:
    """Whether the file on the jumpbox is a whole zip, reading only its head, its tail and its
    central directory. Raises ``ArtifactCorrupt`` (or ``TruncatedFile``) naming the file."""
    tail_offset = max(0, size - TAIL_BYTES)
    tail = _read_range(files, path, tail_offset, size - tail_offset)
    end = zip_end(tail, tail_offset, size, path)
    if end.directory_size > _DIRECTORY_LIMIT:
        raise ArtifactCorrupt(path, None, "the zip's central directory is larger than 64 MiB")
    start = end.directory_offset - tail_offset
    if start >= 0:
        directory = tail[start : start + end.directory_size]
    else:
        directory = _read_range(files, path, end.directory_offset, end.directory_size)
    head = tail[: len(LOCAL_HEADER)] if tail_offset == 0 else _read_range(files, path, 0, 4)
    check_head(head, end, path)
    return central_directory(directory, end, path)


def _read_range(files: FileTransfer, path: str, offset: int, length: int) -> bytes:
    buffer = bytearray(length)
    view, got = memoryview(buffer), 0
    stream = files.open_read(path, offset)
    try:
        while got < length and (n := stream.readinto(view[got:])) > 0:
            got += n
    finally:
        stream.close()
    if got != length:
        raise TruncatedFile(path, offset + length, offset + got)
    return bytes(buffer)


def _error(exc: OrchestratorError) -> RunUpdate:
    return RunUpdate(outcome="error", error_summary=str(exc)[:_SUMMARY_CHARS])
