"""A verify run: re-check one stored backup from the object store and record the verdict.

The verify is a run of its own (kind ``verify``, ``subject_run_id`` = the backup), so who
asked, when, and every problem found are in the catalog and its log. It reads the object
store only: it holds no target and never waits for a backup. A damaged or incomplete backup
is marked not restorable on the backup's own row (retention keeps an older good one); an
intact one is marked restorable with the time it was verified — but only by a verify that read
all of it: a rolling verify that checked a slice and found nothing wrong succeeds as
``slice-verified`` and leaves the backup's verdict as it was.
"""

from __future__ import annotations

from dataclasses import replace

import structlog

from bbr_orchestrator.actions.run_claim import Requester, RunRequest, new_run, start_run
from bbr_orchestrator.actions.verify_backup import Select, VerifyReport, verify_backup
from bbr_orchestrator.core.layout import MANIFEST_NAME
from bbr_orchestrator.core.models import LogStream, Run, RunKind, RunState, RunUpdate
from bbr_orchestrator.errors import OrchestratorError
from bbr_orchestrator.ports import Catalog, Clock, ObjectStore

log = structlog.get_logger(__name__)

_SUMMARY_CHARS = 2000


def manifest_key_of(catalog: Catalog, backup: Run) -> str | None:
    """The key of the backup's manifest, as recorded when it was stored (None: never stored)."""
    keys = [a.object_key for a in catalog.list_artifacts(backup.id)]
    return next((k for k in keys if k.rsplit("/", 1)[-1] == MANIFEST_NAME), None)


def verify_run(
    catalog: Catalog,
    clock: Clock,
    store: ObjectStore,
    backup: Run,
    requester: Requester,
    *,
    select: Select | None = None,
) -> Run:
    """Verify ``backup``'s stored objects (those ``select`` picks; all by default) and return
    the finished verify run. A store that cannot be read ends the verify as failed (outcome
    ``error``) without judging the backup."""
    run = _start(catalog, clock, backup, requester)
    bound = log.bind(run_id=run.id, target=run.target, subject_run_id=backup.id)

    def note(text: str) -> None:
        catalog.append_log(run.id, [(clock.now(), LogStream.EVENT, text)])

    key = manifest_key_of(catalog, backup)
    if key is None:
        note(f"backup {backup.id} has no stored manifest: nothing to verify")
        catalog.record_verification(backup.id, False, clock.now())
        return _finish(
            catalog,
            clock,
            run,
            RunState.FAILED,
            "incomplete",
            f"backup {backup.id} was never stored completely (no manifest)",
        )
    note(f"verifying backup {backup.id} from {key}")
    try:
        report = verify_backup(store, key, select=select)
    except OrchestratorError as exc:
        note(f"the object store could not be read: {exc}")
        return _finish(catalog, clock, run, RunState.FAILED, "error", str(exc))
    for problem in report.problems:
        note(f"problem: {problem}")
    note(_counts(report))
    if report.ok and report.skipped:
        note(
            f"no problem in the {report.objects_checked} object(s) checked; {report.skipped} "
            "not checked this time, so the backup's verdict is left as it was"
        )
        finished = _finish(catalog, clock, run, RunState.SUCCEEDED, "slice-verified", None)
    elif report.ok:
        catalog.record_verification(backup.id, True, clock.now())
        finished = _finish(catalog, clock, run, RunState.SUCCEEDED, "verified", None)
    else:
        catalog.record_verification(backup.id, False, clock.now())
        outcome = "incomplete" if _incomplete(report) else "corrupt"
        summary = f"{len(report.problems)} problem(s): " + "; ".join(
            str(p) for p in report.problems
        )
        finished = _finish(catalog, clock, run, RunState.FAILED, outcome, summary)
    bound.info("backup_verify_finished", outcome=finished.outcome, problems=len(report.problems))
    return finished


def record_not_verified(
    catalog: Catalog, clock: Clock, backup: Run, requester: Requester, reason: str
) -> Run:
    """A verify of ``backup`` that was not attempted (the store already failed for another
    backup of the same job): recorded as failed ``error``, the backup not judged."""
    run = _start(catalog, clock, backup, requester)
    catalog.append_log(run.id, [(clock.now(), LogStream.EVENT, f"not verified: {reason}")])
    return _finish(catalog, clock, run, RunState.FAILED, "error", reason)


def _start(catalog: Catalog, clock: Clock, backup: Run, requester: Requester) -> Run:
    """The verify run about ``backup``, created and running (it holds no target)."""
    request = RunRequest(RunKind.VERIFY, backup.target, backup.target_kind, backup.plan)
    queued = catalog.create_run(
        replace(new_run(clock, request, requester), subject_run_id=backup.id)
    )
    return start_run(catalog, clock, queued)


def _counts(report: VerifyReport) -> str:
    return (
        f"checked {report.objects_checked} object(s), {report.bytes_checked} bytes, "
        f"{report.members_checked} tar member(s); skipped {report.skipped}; "
        f"{len(report.problems)} problem(s)"
    )


def _incomplete(report: VerifyReport) -> bool:
    return all("missing" in p.reason or "no manifest" in p.reason for p in report.problems)


def _finish(
    catalog: Catalog, clock: Clock, run: Run, state: RunState, outcome: str, summary: str | None
) -> Run:
    update = RunUpdate(
        finished_at=clock.now(),
        outcome=outcome,
        error_summary=summary[:_SUMMARY_CHARS] if summary else None,
    )
    return catalog.transition(run.id, [RunState.RUNNING], state, update)
