"""Plain words for a run that did not succeed: what its outcome means and what to do next."""

from __future__ import annotations

from bbr_orchestrator.core.models import RunKind, RunState

_BBR_BITS = {
    "failed": "bbr reported an error",
    "lock-failed": "a pre-backup-lock script failed, so the platform was never fully locked",
    "unlock-failed": (
        "an unlock script failed: jobs on the platform MAY STILL BE LOCKED — run the matching "
        "cleanup (`bbr-orchestrator run backup-cleanup TARGET`) and check the platform"
    ),
    "cleanup-failed": "bbr's own cleanup failed: temporary files may be left on the instances",
    "killed": "bbr was killed before it could exit (a signal, or the jumpbox session died)",
}

_OUTCOMES = {
    "error": "the orchestrator could not complete the run (the reason is in the error)",
    "interrupted": (
        "the process driving the run died; another daemon reaped it: see the log for the "
        "recovery steps (orphan stopped, uploads aborted, cleanup, directory removed)"
    ),
    "target-busy": "another run held the target, so this one never started",
    "upload-failed": "bbr succeeded but storing the artifact failed; it stays on the jumpbox",
    "skipped": "an earlier step of the restore point did not succeed, so this step was skipped",
    "cancelled": "the run was cancelled on request (or the daemon stopped)",
    "corrupt": (
        "the stored backup is damaged (an object's SHA-256 or a tar member differs from what "
        "was recorded); it is marked not restorable, so restore an older backup"
    ),
    "incomplete": (
        "the stored backup is incomplete (its manifest or an object is missing); it is marked "
        "not restorable"
    ),
}

_DRILL_OUTCOMES = {
    "error": (
        "the orchestrator could not complete the drill: the backup could not be fetched onto "
        "the jumpbox and verified, or the jumpbox could not be reached (the error says which)"
    ),
    "smoke-failed": (
        "the restore itself succeeded (its RTO is recorded), but the smoke command run on the "
        "jumpbox afterwards failed, so the restored system did not prove it works"
    ),
    "target-busy": "another run held the drill target, so the drill never started",
}
"""A drill refused for want of a restorable backup records no run, so it needs no entry."""

_WHAT = {
    RunKind.RESTORE: "The restore",
    RunKind.VERIFY: "The verification",
    RunKind.DRILL: "The restore drill",
}


def explain(kind: RunKind, state: RunState, outcome: str | None) -> str | None:
    """One or two sentences for a failed, cancelled or interrupted run; None otherwise."""
    if state in (RunState.SUCCEEDED, RunState.QUEUED, RunState.RUNNING):
        return None
    what = _WHAT.get(kind, f"The {kind.value}")
    key = outcome or state.value
    if kind is RunKind.DRILL and key in _DRILL_OUTCOMES:
        return f"{what} did not succeed: {_DRILL_OUTCOMES[key]}."
    if key in _OUTCOMES:
        return f"{what} did not succeed: {_OUTCOMES[key]}."
    parts = [_BBR_BITS[bit] for bit in key.split("+") if bit in _BBR_BITS]
    if parts and kind is RunKind.DRILL:
        parts.insert(0, "bbr restore into the drill target failed (restore-cleanup followed)")
    if parts:
        return f"{what} did not succeed: " + "; ".join(parts) + "."
    return f"{what} ended {state.value} ({key})."
