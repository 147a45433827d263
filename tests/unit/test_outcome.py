"""bbr's exit bitmask decodes into distinct outcomes (bbr-contract.md section 2)."""

from __future__ import annotations

import pytest

from bbr_orchestrator.core.outcome import decode_exit


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0, "succeeded"),
        (1, "failed"),
        (4, "lock-failed"),
        (8, "unlock-failed"),
        (16, "cleanup-failed"),
        (12, "lock-failed+unlock-failed"),
        (9, "failed+unlock-failed"),
        (17, "failed+cleanup-failed"),
        (2, "unknown-exit-2"),
        (255, "unknown-exit-255"),
        (-1, "killed"),
    ],
)
def test_outcome_names(code: int, name: str) -> None:
    """Each exit status (and the observed combinations) has its own outcome name."""
    assert decode_exit(code).name == name


def test_unlock_failed_keeps_the_artifact_but_is_not_success() -> None:
    """Exit 8: the artifact is complete, yet the platform may be locked and cleanup must run."""
    outcome = decode_exit(8)
    assert outcome.backup_artifact_complete
    assert not outcome.succeeded
    assert outcome.platform_possibly_locked
    assert outcome.needs_cleanup


@pytest.mark.parametrize("code", [1, 4, 9, 12, 16, 17, -1])
def test_other_failures_have_no_complete_artifact(code: int) -> None:
    """Any failure other than a lone unlock failure leaves no usable artifact."""
    assert not decode_exit(code).backup_artifact_complete
    assert decode_exit(code).needs_cleanup


def test_success_needs_nothing_more() -> None:
    """Exit 0: complete artifact, no lock, no cleanup."""
    outcome = decode_exit(0)
    assert outcome.succeeded and outcome.backup_artifact_complete
    assert not outcome.platform_possibly_locked and not outcome.needs_cleanup
