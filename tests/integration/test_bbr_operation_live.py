"""One bbr operation end to end: real sshd, the bbr simulator, a real SQLite catalog."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bbr_orchestrator.actions.bbr_operation import Requester, TargetRun, run_operation
from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog, upgrade
from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
from bbr_orchestrator.core.bbr_argv import (
    DeploymentSpec,
    DirectorSpec,
    Operation,
    deployment_argv,
    director_argv,
)
from bbr_orchestrator.core.models import (
    LogStream,
    RunFilter,
    RunKind,
    RunState,
    TargetKind,
    Trigger,
)
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.sshd import Jumpbox

OPERATOR = Requester(Trigger.OPERATOR, "tester@ci")


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[SqlCatalog]:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    upgrade(url)
    with open_catalog(url) as opened:
        yield opened


@pytest.fixture
def shell(jumpbox: Jumpbox) -> Iterator[SshJumpbox]:
    settings = SshSettings(
        host=jumpbox.host,
        port=jumpbox.port,
        user=jumpbox.user,
        private_key_file=jumpbox.client_key_path,
        known_hosts_file=jumpbox.known_hosts_path,
    )
    with SshJumpbox.connect(settings) as connected:
        yield connected


def director(tmp_path: Path, host: str) -> TargetRun:
    key = tmp_path / "bbr_key.pem"
    key.write_text("key\n")
    spec = DirectorSpec(host=host, username="bbr", private_key_path=str(key))
    return TargetRun(
        target=f"director-{host}",
        target_kind=TargetKind.DIRECTOR,
        build_argv=lambda op, path: director_argv("bbr", spec, op, artifact_path=path),
        work_root=str(tmp_path / "work"),
        timeout_seconds=120,
    )


def test_director_backup_leaves_a_valid_artifact_in_the_run_dir(
    catalog: SqlCatalog, shell: SshJumpbox, tmp_path: Path
) -> None:
    """A director backup succeeds, its artifact lands in <work_root>/<run id>, the log is stored."""
    run = run_operation(
        catalog, shell, SystemClock(), director(tmp_path, "10.9.0.1"), Operation.BACKUP, OPERATOR
    )
    assert run.state is RunState.SUCCEEDED, run.error_summary
    workdir = tmp_path / "work" / run.id
    assert workdir.stat().st_mode & 0o777 == 0o700
    (artifact,) = [p for p in workdir.iterdir() if p.name.startswith("10.9.0.1_")]
    assert {p.name for p in artifact.iterdir()} >= {"metadata", "bosh-0-fake-db.tar"}
    texts = [line.text for line in catalog.read_log(run.id)]
    assert any("Backup created of 10.9.0.1" in t for t in texts)


def test_unlock_failure_is_recorded_and_cleanup_unlocks(
    catalog: SqlCatalog, shell: SshJumpbox, tmp_path: Path, bbr_state: Path
) -> None:
    """Exit 8 becomes unlock-failed (not success); the automatic backup-cleanup frees the target."""
    host = "10.9.0.2"
    bbrsim.set_faults(
        bbr_state,
        bbrsim.Faults(
            target=host, commands=["backup"], fail_scripts=["fake-db/post-backup-unlock"], once=True
        ),
    )
    run = run_operation(
        catalog, shell, SystemClock(), director(tmp_path, host), Operation.BACKUP, OPERATOR
    )
    assert (run.state, run.exit_code, run.outcome) == (RunState.FAILED, 8, "unlock-failed")
    assert (
        run.error_summary and "injected failure in fake-db/post-backup-unlock" in run.error_summary
    )
    (cleanup,) = catalog.list_runs(
        RunFilter(target=f"director-{host}", kind=RunKind.BACKUP_CLEANUP)
    )
    assert cleanup.state is RunState.SUCCEEDED
    assert not bbrsim.is_busy(bbr_state, host)
    err_log_events = [
        line
        for line in catalog.read_log(run.id)
        if line.stream is LogStream.EVENT and ".err.log" in line.text
    ]
    assert err_log_events, "bbr's err.log was collected"


def test_script_failure_leaves_platform_clean_after_cleanup(
    catalog: SqlCatalog, shell: SshJumpbox, tmp_path: Path, bbr_state: Path
) -> None:
    """A failing backup script (exit 1) is followed by backup-cleanup; a next backup then works."""
    host = "10.9.0.3"
    bbrsim.set_faults(
        bbr_state,
        bbrsim.Faults(target=host, commands=["backup"], fail_scripts=["fake-db/backup"], once=True),
    )
    spec = director(tmp_path, host)
    failed = run_operation(catalog, shell, SystemClock(), spec, Operation.BACKUP, OPERATOR)
    assert failed.outcome == "failed"
    again = run_operation(catalog, shell, SystemClock(), spec, Operation.BACKUP, OPERATOR)
    assert again.state is RunState.SUCCEEDED, again.error_summary


def test_deployment_secret_reaches_bbr_only_through_its_environment(
    catalog: SqlCatalog, shell: SshJumpbox, tmp_path: Path, bbr_state: Path
) -> None:
    """The client secret reaches bbr via BOSH_CLIENT_SECRET only: in no argv and no log line."""
    secret = "client-secret-" + hashlib.sha256(tmp_path.name.encode()).hexdigest()[:12]
    (bbr_state / "deployment_secret").write_text(secret)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    spec = DeploymentSpec(
        target="https://10.9.0.4:25555",
        username="bbr_client",
        ca_cert=str(ca),
        deployment="cf-live",
    )
    target = TargetRun(
        target="cf-live",
        target_kind=TargetKind.DEPLOYMENT,
        build_argv=lambda op, path: deployment_argv("bbr", spec, op, artifact_path=path),
        work_root=str(tmp_path / "work"),
        env={"BOSH_CLIENT_SECRET": secret},
    )
    try:
        run = run_operation(
            catalog, shell, SystemClock(), target, Operation.PRE_BACKUP_CHECK, OPERATOR
        )
    finally:
        (bbr_state / "deployment_secret").unlink()
    assert run.state is RunState.SUCCEEDED, run.error_summary
    record = next(
        r for r in reversed(bbrsim.invocations(bbr_state)) if r.get("target") == "cf-live"
    )
    assert record["bosh_client_secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in " ".join(record["argv"])
    assert not any(secret in line.text for line in catalog.read_log(run.id))
