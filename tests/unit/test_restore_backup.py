"""An operator's restore: refusals before anything is recorded, the prepare hook, a busy target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import pytest

from bbr_orchestrator.actions.restore_backup import RestoreRefused, restore_backup
from bbr_orchestrator.actions.run_claim import RunRequest, claim_now
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import (
    Artifact,
    LogStream,
    Run,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
)
from bbr_orchestrator.errors import BackupIncomplete, TargetBusy
from bbr_orchestrator.ports import Jumpbox, LineSink
from tests.unit.fakes import FakeClock, MemoryCatalog, MemoryStore, ScriptedShell
from tests.unit.test_bbr_operation import OPERATOR, SPEC, run

KEY = "bbr/bosh-director/2026/manifest.json"


def _backup(catalog: MemoryCatalog, clock: FakeClock, *, stored: bool = True) -> Run:
    request = RunRequest(RunKind.BACKUP, SPEC.target, SPEC.target_kind)
    backup = claim_now(catalog, clock, request, OPERATOR)
    backup = catalog.transition(
        backup.id,
        [RunState.RUNNING],
        RunState.SUCCEEDED,
        RunUpdate(finished_at=clock.now(), outcome="succeeded", bytes_total=10),
    )
    if stored:
        catalog.add_artifacts([Artifact(backup.id, KEY, 10, "00" * 32)])
    return backup


def _restore(catalog: MemoryCatalog, clock: FakeClock, backup: Run) -> Run:
    shell = cast("Jumpbox", ScriptedShell(lambda _argv, _sink: 0))
    return restore_backup(
        catalog,
        lambda: shell,
        clock,
        MemoryStore(),  # type: ignore[arg-type]
        SPEC,
        backup,
        OPERATOR,
    )


def test_prepare_result_is_the_artifact_path_bbr_restores() -> None:
    """`prepare` gets the run's workdir once it exists; bbr restores what it returns."""
    seen: list[str] = []
    calls: list[Sequence[str]] = []

    def respond(argv: Sequence[str], _sink: LineSink) -> int:
        calls.append(argv)
        return 0

    def prepare(_jumpbox: Jumpbox, workdir: str) -> str:
        seen.append(workdir)
        return f"{workdir}/artifact"

    _catalog, finished = run(ScriptedShell(respond), Operation.RESTORE, prepare=prepare)
    assert finished.state is RunState.SUCCEEDED
    assert seen == [f"{SPEC.work_root}/{finished.id}"]
    (bbr,) = [c for c in calls if c[0] == "bbr"]
    assert bbr[bbr.index("--artifact-path") + 1] == f"{seen[0]}/artifact"


def test_prepare_failure_fails_the_restore_and_cleanup_follows() -> None:
    """An error from `prepare` fails the run with its reason, bbr restore never runs, and
    restore-cleanup is recorded after it."""
    calls: list[Sequence[str]] = []

    def respond(argv: Sequence[str], _sink: LineSink) -> int:
        calls.append(argv)
        return 0

    def prepare(_jumpbox: Jumpbox, _workdir: str) -> str:
        raise BackupIncomplete(KEY, "no manifest")

    catalog, finished = run(ScriptedShell(respond), Operation.RESTORE, prepare=prepare)
    assert (finished.state, finished.outcome) == (RunState.FAILED, "error")
    assert finished.error_summary is not None and KEY in finished.error_summary
    assert [c[-1] for c in calls if c[0] == "bbr"] == ["restore-cleanup"]
    kinds = sorted(r.kind.value for r in catalog.runs.values())
    assert kinds == ["restore", "restore-cleanup"]


@pytest.mark.parametrize(
    "problem", ["no-manifest", "not-restorable", "other-kind", "deleting", "deleted"]
)
def test_unrestorable_backup_is_refused_before_anything_is_recorded(problem: str) -> None:
    """No stored manifest, marked not restorable, a target of another kind, or a backup
    retention is deleting or deleted: refused with RestoreRefused, no run created and nothing
    run."""
    catalog, clock = MemoryCatalog(), FakeClock()
    backup = _backup(catalog, clock, stored=problem != "no-manifest")
    if problem == "not-restorable":
        backup = catalog.record_verification(backup.id, False, clock.now())
    if problem == "other-kind":
        backup = replace(catalog.get_run(backup.id), target_kind=TargetKind.DEPLOYMENT)
    if problem in ("deleting", "deleted"):
        backup = catalog.begin_deletion(backup.id, "outside keep-last 7")
    if problem == "deleted":
        backup = catalog.mark_deleted(backup.id, clock.now())
    with pytest.raises(RestoreRefused):
        _restore(catalog, clock, backup)
    assert [r.kind for r in catalog.runs.values()] == [RunKind.BACKUP]


def test_busy_target_records_the_restore_cancelled_and_raises() -> None:
    """Another run holding the target: TargetBusy, the restore run cancelled (target-busy)
    with its subject and the intent line in its log."""
    catalog, clock = MemoryCatalog(), FakeClock()
    backup = _backup(catalog, clock)
    holder = claim_now(
        catalog, clock, RunRequest(RunKind.BACKUP, SPEC.target, SPEC.target_kind), OPERATOR
    )
    with pytest.raises(TargetBusy) as raised:
        _restore(catalog, clock, backup)
    assert raised.value.holder == holder.id
    (restore,) = [r for r in catalog.runs.values() if r.kind is RunKind.RESTORE]
    assert (restore.state, restore.outcome) == (RunState.CANCELLED, "target-busy")
    assert restore.subject_run_id == backup.id
    (intro,) = [line for line in catalog.read_log(restore.id)]
    assert intro.stream is LogStream.EVENT and backup.id in intro.text and KEY in intro.text
