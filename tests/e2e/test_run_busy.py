"""`run` against a target another run holds: refused at once naming the holder, or with
--wait, started as soon as the holder lets go."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bbr_orchestrator.adapters.catalog import open_catalog
from bbr_orchestrator.config import Config
from bbr_orchestrator.core.models import (
    NewRun,
    RunFilter,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.e2e.test_restore_cli import EXE, _cli, _setup

HOLDER = "20261127T000000Z-0000beef"


def _hold(config: Config) -> None:
    """A running backup of bosh-director, as another process would hold it."""
    with open_catalog(config.catalog_url()) as catalog:
        catalog.create_run(
            NewRun(
                id=HOLDER,
                kind=RunKind.BACKUP,
                target="bosh-director",
                target_kind=TargetKind.DIRECTOR,
                trigger=Trigger.SCHEDULE,
                triggered_by="another daemon",
                created_at=datetime.now(UTC),
                state=RunState.RUNNING,
            )
        )


def _release(config: Config) -> None:
    with open_catalog(config.catalog_url()) as catalog:
        catalog.transition(
            HOLDER,
            [RunState.RUNNING],
            RunState.SUCCEEDED,
            RunUpdate(finished_at=datetime.now(UTC), outcome="succeeded"),
        )


def _checks(bbr_state: Path) -> int:
    return sum(
        1 for i in bbrsim.invocations(bbr_state) if i.get("subcommand") == "pre-backup-check"
    )


@pytest.mark.slow
def test_a_busy_target_is_refused_or_waited_for(
    tmp_path: Path, jumpbox: Jumpbox, bbr_state: Path, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """Without --wait: exit 5 naming the holding run, nothing run; with --wait: waits while the
    target is held, then runs as soon as it is released and succeeds."""
    path, config = _setup(tmp_path, jumpbox, seaweedfs, bucket, "10.0.0.6")
    bbrsim.clear_faults(bbr_state)
    _hold(config)
    before = _checks(bbr_state)

    refused = _cli(path, "run", "pre-backup-check", "bosh-director", "--quiet")
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert HOLDER in refused.stderr and "busy" in refused.stderr
    assert _checks(bbr_state) == before

    waiting = subprocess.Popen(
        [EXE, "-c", str(path), "run", "pre-backup-check", "bosh-director", "--wait", "2m"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        time.sleep(4)
        assert waiting.poll() is None, "gave up while the target was still held"
        assert _checks(bbr_state) == before
        _release(config)
        out, err = waiting.communicate(timeout=120)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, out + err
    assert "waiting for the target" in err and HOLDER in err
    assert _checks(bbr_state) == before + 1
    with open_catalog(config.catalog_url()) as catalog:
        checks = catalog.list_runs(RunFilter(kind=RunKind.PRE_BACKUP_CHECK, limit=5))
    # The refusal is on record; the wait left no refusals, only the run that went ahead.
    assert [(r.state, r.outcome) for r in checks] == [
        (RunState.SUCCEEDED, "succeeded"),
        (RunState.CANCELLED, "target-busy"),
    ]


def test_a_wait_that_is_not_a_duration_is_a_usage_error(
    tmp_path: Path, jumpbox: Jumpbox, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """--wait soon is refused as bad usage (exit 2) naming the option."""
    path, _ = _setup(tmp_path, jumpbox, seaweedfs, bucket, "10.0.0.6")
    result = _cli(path, "run", "pre-backup-check", "bosh-director", "--wait", "soon")
    assert result.returncode == 2
    assert "--wait" in result.stderr
