"""A verify run recorded in the catalog: its subject, its verdict on the backup, no claim."""

from __future__ import annotations

from bbr_orchestrator.actions.run_claim import Requester, RunRequest, claim_now
from bbr_orchestrator.actions.verify_run import verify_run
from bbr_orchestrator.core.models import (
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
)

from .fakes import FakeClock, MemoryCatalog, MemoryStore

ALICE = Requester(Trigger.OPERATOR, "alice@laptop")


def test_a_backup_never_stored_is_marked_not_restorable_without_holding_its_target() -> None:
    """No manifest recorded: the verify fails as incomplete, the backup is marked not
    restorable, and a backup of the same target can run meanwhile (verify holds nothing)."""
    catalog, clock = MemoryCatalog(), FakeClock()
    request = RunRequest(RunKind.BACKUP, "cf", TargetKind.DEPLOYMENT)
    backup = claim_now(catalog, clock, request, ALICE)
    backup = catalog.transition(
        backup.id,
        [RunState.RUNNING],
        RunState.FAILED,
        RunUpdate(finished_at=clock.now(), outcome="upload-failed"),
    )
    running = claim_now(catalog, clock, request, ALICE)  # the target is busy with a backup
    verified = verify_run(catalog, clock, MemoryStore(), backup, ALICE)  # type: ignore[arg-type]
    assert (verified.state, verified.outcome) == (RunState.FAILED, "incomplete")
    assert verified.subject_run_id == backup.id
    after = catalog.get_run(backup.id)
    assert after.restorable is False and after.verified_at is not None
    assert catalog.get_run(running.id).state is RunState.RUNNING
