"""`runs show` explains a run that did not succeed in plain words."""

from __future__ import annotations

import pytest

from bbr_orchestrator.core.explain import explain
from bbr_orchestrator.core.models import RunKind, RunState


def test_successful_and_active_runs_need_no_explanation() -> None:
    """Succeeded, queued and running runs get no explanation."""
    for state in (RunState.SUCCEEDED, RunState.QUEUED, RunState.RUNNING):
        assert explain(RunKind.RESTORE, state, None) is None


@pytest.mark.parametrize(
    ("kind", "outcome", "words"),
    [
        (RunKind.VERIFY, "corrupt", "marked not restorable, so restore an older backup"),
        (RunKind.VERIFY, "incomplete", "manifest or an object is missing"),
        (RunKind.RESTORE, "unlock-failed", "MAY STILL BE LOCKED"),
        (RunKind.RESTORE, "lock-failed+unlock-failed", "never fully locked; an unlock script"),
        (RunKind.BACKUP, "interrupted", "another daemon reaped it"),
        (RunKind.RESTORE, "target-busy", "another run held the target"),
        (RunKind.DRILL, "smoke-failed", "restore itself succeeded (its RTO is recorded)"),
        (RunKind.DRILL, "error", "could not be fetched onto the jumpbox and verified"),
        (RunKind.DRILL, "failed", "bbr restore into the drill target failed"),
        (RunKind.DRILL, "target-busy", "another run held the drill target"),
        (RunKind.DRILL, "cancelled", "cancelled on request"),
    ],
)
def test_outcomes_are_explained(kind: RunKind, outcome: str, words: str) -> None:
    """Each known outcome (and combinations of bbr's exit bits) says what happened."""
    text = explain(kind, RunState.FAILED, outcome)
    assert text is not None and words in text


def test_the_kind_is_named_and_unknown_outcomes_still_say_something() -> None:
    """The sentence names what failed; an outcome it does not know is shown as it is."""
    assert (explain(RunKind.RESTORE, RunState.FAILED, "failed") or "").startswith("The restore")
    assert explain(RunKind.DRILL, RunState.FAILED, "odd") == "The restore drill ended failed (odd)."
