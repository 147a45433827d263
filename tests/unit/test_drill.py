"""Restore drills: which backup is restored, the RTO, the smoke command, refusals, busy targets."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pytest

from bbr_orchestrator.actions.bbr_operation import TargetRun
from bbr_orchestrator.actions.drill import Drill, choose_backup, run_restore_drill, smoke_result
from bbr_orchestrator.actions.run_claim import RunRequest, claim_now, new_run, start_run
from bbr_orchestrator.config.schema import DrillConfig, PlanConfig
from bbr_orchestrator.core.explain import explain
from bbr_orchestrator.core.models import (
    Artifact,
    LogStream,
    NewRestorePoint,
    RestorePointState,
    Run,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
    new_run_id,
)
from bbr_orchestrator.errors import DrillRefused, RemoteTimeout, TargetBusy
from bbr_orchestrator.ports import CancelToken, LineSink
from bbr_orchestrator.service.drills import run_drill
from tests.unit.fakes import FakeClock, MemoryCatalog
from tests.unit.fetch_fakes import FakeJumpbox, FakeReadStore
from tests.unit.test_bbr_operation import OPERATOR, build
from tests.unit.test_fetch_artifact import DIR, MANIFEST_KEY, stored_backup

PLAN, SOURCE, SANDBOX = "nightly", "bosh-director", "sandbox-director"
WORK_ROOT = "/home/ubuntu/bbr-orchestrator"
SMOKE = ("/opt/smoke.sh", "--quick")
TIMEOUT = 600.0
SPEC = TargetRun(
    target=SANDBOX,
    target_kind=TargetKind.DIRECTOR,
    build_argv=build,
    work_root=WORK_ROOT,
    run_files={"director_key.pem": b"KEY\n"},
    timeout_seconds=TIMEOUT,
    plan=PLAN,
)


class DrillBox(FakeJumpbox):
    """The fake jumpbox filesystem, also answering bbr, ``find`` and the smoke command."""

    def __init__(
        self, bbr_code: int = 0, smoke_code: int = 0, smoke_error: Exception | None = None
    ) -> None:
        super().__init__()
        self.bbr_code, self.smoke_code, self.smoke_error = bbr_code, smoke_code, smoke_error
        self.commands: list[tuple[tuple[str, ...], str | None, float | None]] = []
        self.restored: dict[str, bytes] = {}
        """What bbr restore found at its --artifact-path."""

    def run(
        self,
        argv: Sequence[str],
        *,
        on_line: LineSink,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> int:
        argv = tuple(argv)
        self.commands.append((argv, cwd, timeout))
        if argv[0] == "bbr":
            assert timeout is not None
            if "restore-cleanup" in argv:
                return 0
            path = argv[argv.index("--artifact-path") + 1]
            self.restored = self.under(path + "/")
            on_line(LogStream.STDOUT, "[bbr] Starting restore of 10.0.0.6...")
            return self.bbr_code
        if argv[0] == "find":
            return 0
        if argv == SMOKE:
            assert timeout is not None
            if self.smoke_error is not None:
                raise self.smoke_error
            on_line(LogStream.STDOUT, "checking the director answers")
            if self.smoke_code:
                on_line(LogStream.STDERR, "director did not answer /info")
            return self.smoke_code
        return super().run(argv, on_line=on_line, cwd=cwd, env=env, timeout=timeout)

    def ran(self, first: str) -> list[tuple[tuple[str, ...], str | None, float | None]]:
        return [c for c in self.commands if c[0][0] == first]


def _point(
    catalog: MemoryCatalog,
    clock: FakeClock,
    state: RestorePointState = RestorePointState.COMPLETE,
    *,
    restorable: bool | None = None,
    target: str = SOURCE,
) -> Run:
    """A restore point of PLAN with a stored, succeeded backup step of ``target``."""
    point = catalog.create_restore_point(
        NewRestorePoint(
            id=new_run_id(clock.now(), secrets.token_hex(4)),
            plan=PLAN,
            trigger=Trigger.SCHEDULE,
            triggered_by="schedule",
            created_at=clock.now(),
            state=state,
        )
    )
    request = RunRequest(RunKind.BACKUP, target, TargetKind.DIRECTOR, PLAN, point.id, 1)
    backup = start_run(catalog, clock, catalog.create_run(new_run(clock, request, OPERATOR)))
    backup = catalog.transition(
        backup.id, [RunState.RUNNING], RunState.SUCCEEDED, RunUpdate(finished_at=clock.now())
    )
    catalog.add_artifacts([Artifact(backup.id, MANIFEST_KEY, 100, "00" * 32)])
    if restorable is not None:
        backup = catalog.record_verification(backup.id, restorable, clock.now())
    return backup


def _drill(
    catalog: MemoryCatalog,
    clock: FakeClock,
    box: DrillBox,
    *,
    smoke: tuple[str, ...] | None = SMOKE,
    store: FakeReadStore | None = None,
) -> Run:
    return run_restore_drill(
        catalog,
        lambda: box,  # type: ignore[arg-type,return-value]
        clock,
        store or stored_backup(),  # type: ignore[arg-type]
        Drill(PLAN, SOURCE, SPEC, smoke),
        OPERATOR,
    )


def _log(catalog: MemoryCatalog, run: Run) -> list[str]:
    return [line.text for line in catalog.read_log(run.id)]


def test_the_newest_complete_restore_point_is_drilled() -> None:
    """The source's backup of the newest COMPLETE point is chosen; newer partial or failed
    points and other targets' backups are not."""
    catalog, clock = MemoryCatalog(), FakeClock()
    _point(catalog, clock)
    chosen = _point(catalog, clock)
    _point(catalog, clock, target="cf")
    _point(catalog, clock, RestorePointState.PARTIAL)
    _point(catalog, clock, RestorePointState.FAILED)
    choice = choose_backup(catalog, PLAN, SOURCE, SPEC)
    assert choice.backup.id == chosen.id
    assert choice.manifest_key == MANIFEST_KEY
    assert choice.point.id == chosen.restore_point_id


def test_a_backup_marked_not_restorable_falls_back_to_an_older_complete_point() -> None:
    """A newest backup a verification found damaged is passed over (and said so) for the
    next older complete point's good backup."""
    catalog, clock = MemoryCatalog(), FakeClock()
    good = _point(catalog, clock, restorable=True)
    damaged = _point(catalog, clock, restorable=False)
    choice = choose_backup(catalog, PLAN, SOURCE, SPEC)
    assert choice.backup.id == good.id
    (why,) = choice.skipped
    assert damaged.id in why and "not restorable" in why


def test_restore_points_retention_deleted_are_never_drilled() -> None:
    """A newer point whose backup retention is deleting, and one it deleted, are passed over
    for the older point still stored."""
    catalog, clock = MemoryCatalog(), FakeClock()
    stored = _point(catalog, clock)
    deleting = _point(catalog, clock)
    deleted = _point(catalog, clock)
    catalog.begin_deletion(deleting.id, "outside keep-last 1")
    catalog.begin_deletion(deleted.id, "outside keep-last 1")
    catalog.mark_deleted(deleted.id, clock.now())
    assert deleted.restore_point_id is not None
    catalog.mark_restore_point_deleted(deleted.restore_point_id, "outside keep-last 1", clock.now())

    choice = choose_backup(catalog, PLAN, SOURCE, SPEC)

    assert choice.backup.id == stored.id
    (why,) = choice.skipped
    assert deleting.id in why and "being deleted by retention" in why


@pytest.mark.parametrize("points", ["none", "partial-only", "damaged-only", "other-target"])
def test_no_complete_restorable_backup_refuses_and_records_nothing(points: str) -> None:
    """No complete point, only partial ones, only damaged backups, or none of the source:
    DrillRefused naming plan and source; no run recorded, nothing run on the jumpbox."""
    catalog, clock = MemoryCatalog(), FakeClock()
    if points == "partial-only":
        _point(catalog, clock, RestorePointState.PARTIAL)
    if points == "damaged-only":
        _point(catalog, clock, restorable=False)
    if points == "other-target":
        _point(catalog, clock, target="cf")
    before = dict(catalog.runs)
    box = DrillBox()
    with pytest.raises(DrillRefused) as refused:
        _drill(catalog, clock, box)
    assert (refused.value.plan, refused.value.source) == (PLAN, SOURCE)
    assert PLAN in str(refused.value) and SOURCE in str(refused.value)
    assert catalog.runs == before
    assert box.commands == []


def test_a_drill_restores_the_fetched_backup_and_records_its_rto() -> None:
    """One DRILL run on the sandbox about the backup: the verified artifact is what bbr
    restores, the smoke command runs in the workdir with the command timeout, the RTO
    (start until bbr restored) is recorded and logged, and the workdir is removed."""
    catalog, clock = MemoryCatalog(), FakeClock()
    backup = _point(catalog, clock)
    box = DrillBox()
    run = _drill(catalog, clock, box)
    assert (run.kind, run.target, run.plan, run.subject_run_id) == (
        RunKind.DRILL,
        SANDBOX,
        PLAN,
        backup.id,
    )
    assert (run.state, run.outcome, run.exit_code) == (RunState.SUCCEEDED, "succeeded", 0)
    assert run.trigger is Trigger.OPERATOR and run.triggered_by == OPERATOR.who
    assert run.rto_seconds is not None and run.duration_seconds is not None
    assert 0 < run.rto_seconds < run.duration_seconds
    workdir = f"{WORK_ROOT}/{run.id}"
    assert set(box.restored) == {"bosh-0-fake-db.tar", "metadata", "manifest.yml"}
    ((bbr, _cwd, _t),) = [c for c in box.ran("bbr")]
    assert bbr[bbr.index("--artifact-path") + 1] == f"{workdir}/{DIR}"
    assert [c[1:] for c in box.commands if c[0] == SMOKE] == [(workdir, TIMEOUT)]
    assert ("rm", "-rf", workdir) in [c[0] for c in box.commands]
    assert workdir not in box.dirs
    log = _log(catalog, run)
    assert any(backup.id in t and MANIFEST_KEY in t and SANDBOX in t for t in log)
    assert any("(RTO)" in t and f"{run.rto_seconds:.1f} s" in t for t in log)
    assert "checking the director answers" in log and "the smoke command exited 0" in log
    assert smoke_result(run, True) == "passed"
    assert [r.kind for r in catalog.runs.values()].count(RunKind.RESTORE_CLEANUP) == 0


@pytest.mark.parametrize("how", ["exit", "timeout"])
def test_a_failed_smoke_command_fails_the_drill_and_keeps_the_rto(how: str) -> None:
    """A smoke command exiting non-zero (or timing out) fails the drill as smoke-failed with
    the exit code / reason in log and summary; the restore's RTO stays, no cleanup follows."""
    catalog, clock = MemoryCatalog(), FakeClock()
    _point(catalog, clock)
    error = RemoteTimeout(FakeJumpbox.host, "/opt/smoke.sh --quick", TIMEOUT)
    box = DrillBox(smoke_code=3) if how == "exit" else DrillBox(smoke_error=error)
    run = _drill(catalog, clock, box)
    assert (run.state, run.outcome, run.exit_code) == (RunState.FAILED, "smoke-failed", 0)
    assert run.rto_seconds is not None and run.rto_seconds > 0
    assert run.error_summary is not None and "the restore succeeded" in run.error_summary
    if how == "exit":
        assert "exited 3" in run.error_summary
        assert "director did not answer /info" in run.error_summary
        assert "the smoke command exited 3" in _log(catalog, run)
    else:
        assert "ran longer than 600s" in run.error_summary
    assert not [r for r in catalog.runs.values() if r.kind is RunKind.RESTORE_CLEANUP]
    assert smoke_result(run, True) == "failed"
    assert "smoke command" in (explain(run.kind, run.state, run.outcome) or "")


def test_a_failed_restore_fails_the_drill_without_rto_or_smoke_and_cleanup_follows() -> None:
    """bbr restore failing: the drill fails with bbr's outcome, no RTO, the smoke command is
    not run, and restore-cleanup is recorded on the sandbox."""
    catalog, clock = MemoryCatalog(), FakeClock()
    _point(catalog, clock)
    box = DrillBox(bbr_code=1)
    run = _drill(catalog, clock, box)
    assert (run.state, run.outcome, run.rto_seconds) == (RunState.FAILED, "failed", None)
    assert not [c for c in box.commands if c[0] == SMOKE]
    (cleanup,) = [r for r in catalog.runs.values() if r.kind is RunKind.RESTORE_CLEANUP]
    assert (cleanup.target, cleanup.plan) == (SANDBOX, PLAN)
    assert smoke_result(run, True) == "not run"


def test_a_backup_that_fails_to_fetch_fails_the_drill_before_bbr() -> None:
    """An object missing from the store fails the drill (outcome error, explained as a fetch
    failure) before bbr restore runs."""
    catalog, clock = MemoryCatalog(), FakeClock()
    _point(catalog, clock)
    store = stored_backup()
    del store.objects[next(k for k in store.objects if k.endswith(".tar"))]
    box = DrillBox()
    run = _drill(catalog, clock, box, store=store)
    assert (run.state, run.outcome, run.rto_seconds) == (RunState.FAILED, "error", None)
    assert [c[0][-1] for c in box.ran("bbr")] == ["restore-cleanup"]
    assert "fetched" in (explain(run.kind, run.state, run.outcome) or "")


def test_a_busy_drill_target_records_the_drill_cancelled_and_raises() -> None:
    """Another run holding the sandbox: TargetBusy, the drill run cancelled as target-busy,
    still naming the backup it would have restored; nothing run on the jumpbox."""
    catalog, clock = MemoryCatalog(), FakeClock()
    backup = _point(catalog, clock)
    holder = claim_now(
        catalog, clock, RunRequest(RunKind.BACKUP, SANDBOX, TargetKind.DIRECTOR), OPERATOR
    )
    box = DrillBox()
    with pytest.raises(TargetBusy) as raised:
        _drill(catalog, clock, box)
    assert raised.value.holder == holder.id
    (drill,) = [r for r in catalog.runs.values() if r.kind is RunKind.DRILL]
    assert (drill.state, drill.outcome, drill.subject_run_id) == (
        RunState.CANCELLED,
        "target-busy",
        backup.id,
    )
    assert box.commands == []


def test_the_service_refuses_a_drill_into_its_own_source_unless_allowed() -> None:
    """Even a drill config built without validation never restores over its source unless
    allow_source_as_target is set: DrillRefused before anything is resolved or recorded."""
    catalog, clock = MemoryCatalog(), FakeClock()
    drill = DrillConfig.model_construct(
        target=SOURCE,
        source=SOURCE,
        schedule="0 6 * * 6",
        timezone="UTC",
        smoke_command=None,
        allow_source_as_target=False,
    )
    plan = PlanConfig.model_construct(name=PLAN, targets=[SOURCE], drills=[drill])
    with pytest.raises(DrillRefused, match="is the source itself"):
        run_drill(cast("Any", None), catalog, clock, plan, drill, OPERATOR)
    assert catalog.runs == {}
