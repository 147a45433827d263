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
from .test_verify_plan import Bed

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


def test_a_clean_partial_verify_leaves_the_backups_verdict_as_it_was() -> None:
    """With ``select`` skipping objects and nothing wrong in the rest, the verify succeeds as
    slice-verified and neither sets nor clears the verdict (an earlier 'not restorable' stays)."""
    bed = Bed()
    backup = bed.backup("director-a", tars=3)
    bed.catalog.record_verification(backup.id, False, bed.clock.now())
    first = bed.tar_keys(backup)[0]
    store = bed.store
    run = verify_run(
        bed.catalog, bed.clock, store, backup, ALICE,  # type: ignore[arg-type]
        select=lambda obj: obj.key == first,
    )  # fmt: skip
    assert (run.state, run.outcome) == (RunState.SUCCEEDED, "slice-verified")
    assert bed.catalog.get_run(backup.id).restorable is False
    notes = [line.text for line in bed.catalog.read_log(run.id)]
    assert any("skipped 2" in n for n in notes), notes  # the other two tars
    full = verify_run(bed.catalog, bed.clock, store, backup, ALICE)  # type: ignore[arg-type]
    assert full.outcome == "verified"
    assert bed.catalog.get_run(backup.id).restorable is True
