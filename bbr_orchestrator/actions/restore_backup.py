"""An operator's restore: a stored backup fetched onto the jumpbox, verified, then restored.

The restore is a run of its own (kind ``restore``, ``subject_run_id`` = the backup), so who
asked, which backup, from which manifest and into which target are in the catalog and its
log. The artifact is fetched into the run's workdir (every object's SHA-256 and every tar
member checked on the way) before bbr sees it; a failed fetch or restore fails the run and
``restore-cleanup`` follows, as for any restore (``run_operation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import structlog

from bbr_orchestrator.actions.bbr_operation import After, TargetRun, run_operation
from bbr_orchestrator.actions.fetch_artifact import fetch_artifact
from bbr_orchestrator.actions.run_claim import Requester, RunRequest, new_run
from bbr_orchestrator.actions.verify_run import manifest_key_of
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import LogStream, Run, RunKind, RunState, RunUpdate
from bbr_orchestrator.errors import OrchestratorError, TargetBusy
from bbr_orchestrator.ports import (
    CancelToken,
    Catalog,
    Clock,
    Jumpbox,
    LineSink,
    ObjectStore,
    ShellFactory,
)

log = structlog.get_logger(__name__)

_RESTORABLE_KINDS = (RunKind.BACKUP,)


class RestoreRefused(OrchestratorError):
    """This backup cannot be restored into this target (nothing was run or recorded)."""

    exit_code = 2

    def __init__(self, backup_run_id: str, target: str, reason: str) -> None:
        self.backup_run_id = backup_run_id
        self.target = target
        self.reason = reason
        super().__init__(f"restore of backup {backup_run_id} into {target} refused: {reason}")


def restore_plan(catalog: Catalog, spec: TargetRun, backup: Run) -> str:
    """The manifest key to restore ``backup`` from into ``spec``'s target; ``RestoreRefused``
    when the backup is not a succeeded, stored, restorable backup of a target of that kind (nor
    one retention deleted or is deleting)."""

    def refuse(reason: str) -> RestoreRefused:
        return RestoreRefused(backup.id, spec.target, reason)

    if backup.kind not in _RESTORABLE_KINDS:
        raise refuse(f"run {backup.id} is a {backup.kind.value}, not a bbr backup")
    if backup.state is not RunState.SUCCEEDED:
        raise refuse(f"the backup {backup.state.value}, it did not succeed")
    if backup.restorable is False:
        raise refuse("the backup is marked not restorable (a verification found it damaged)")
    if backup.deletion_started:
        done = "was deleted" if backup.deleted_at is not None else "is being deleted"
        raise refuse(f"the backup {done} by retention ({backup.delete_reason})")
    if backup.target_kind is not spec.target_kind:
        raise refuse(
            f"the backup is of a {backup.target_kind.value} ({backup.target}), "
            f"{spec.target} is a {spec.target_kind.value}"
        )
    key = manifest_key_of(catalog, backup)
    if key is None:
        raise refuse("the backup has no stored manifest (it was never stored completely)")
    return key


def restore_backup(
    catalog: Catalog,
    connect: ShellFactory,
    clock: Clock,
    store: ObjectStore,
    spec: TargetRun,
    backup_run: Run,
    requester: Requester,
    *,
    cancel: CancelToken | None = None,
    observer: LineSink | None = None,
) -> Run:
    """Restore ``backup_run`` into ``spec``'s target and return the finished restore run.

    Raises ``RestoreRefused`` (nothing recorded) when the backup cannot be restored there, and
    ``TargetBusy`` (the restore run recorded as cancelled) when another run holds the target.
    A fetch or bbr failure ends as a failed run followed by ``restore-cleanup``."""
    key = restore_plan(catalog, spec, backup_run)
    intro = (
        f"restoring backup {backup_run.id} (of {backup_run.target}) from {key} "
        f"into {spec.target}, asked by {requester.who}"
    )
    queued = queue_restore(
        catalog, clock, RunKind.RESTORE, spec, spec.plan, backup_run, requester, [intro], observer
    )
    bound = log.bind(run_id=queued.id, target=spec.target, subject_run_id=backup_run.id)
    return restore_queued(
        catalog,
        connect,
        clock,
        store,
        spec,
        queued,
        key,
        requester,
        bound,
        cancel=cancel,
        observer=observer,
    )


def queue_restore(
    catalog: Catalog,
    clock: Clock,
    kind: RunKind,
    spec: TargetRun,
    plan: str | None,
    backup: Run,
    requester: Requester,
    intro: Sequence[str],
    observer: LineSink | None,
) -> Run:
    """Record a queued ``kind`` run (a restore or a drill) of ``plan`` about ``backup`` into
    ``spec``'s target, its log opening with ``intro`` (shown to ``observer`` too)."""
    request = RunRequest(kind, spec.target, spec.target_kind, plan)
    queued = catalog.create_run(
        replace(new_run(clock, request, requester), subject_run_id=backup.id)
    )
    now = clock.now()
    catalog.append_log(queued.id, [(now, LogStream.EVENT, text) for text in intro])
    if observer is not None:
        for text in intro:
            observer(LogStream.EVENT, text)
    return queued


def restore_queued(
    catalog: Catalog,
    connect: ShellFactory,
    clock: Clock,
    store: ObjectStore,
    spec: TargetRun,
    queued: Run,
    manifest_key: str,
    requester: Requester,
    bound: structlog.typing.FilteringBoundLogger,
    *,
    cancel: CancelToken | None = None,
    observer: LineSink | None = None,
    after: After | None = None,
) -> Run:
    """Run the ``queued`` restore or drill: the backup fetched into the workdir (verified on
    the way), ``bbr restore``, ``after`` on success, ``restore-cleanup`` on failure. When
    another run holds the target the run is recorded cancelled (``target-busy``) and
    ``TargetBusy`` is raised."""

    def prepare(jumpbox: Jumpbox, workdir: str) -> str:
        fetched = fetch_artifact(
            jumpbox, connect, store, manifest_key=manifest_key, workdir=workdir
        )
        size = sum(o.size for o in fetched.manifest.objects)
        bound.info(f"{queued.kind.value}_artifact_fetched", path=fetched.path, size_bytes=size)
        return fetched.path

    try:
        return run_operation(
            catalog,
            connect,
            clock,
            spec,
            Operation.RESTORE,
            requester,
            cancel=cancel,
            observer=observer,
            queued=queued,
            prepare=prepare,
            after=after,
        )
    except TargetBusy as exc:
        catalog.transition(
            queued.id,
            [RunState.QUEUED],
            RunState.CANCELLED,
            RunUpdate(finished_at=clock.now(), outcome="target-busy", error_summary=str(exc)),
        )
        raise
