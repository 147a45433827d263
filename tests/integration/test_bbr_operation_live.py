"""One bbr operation end to end: real sshd, the bbr simulator, a real SQLite catalog."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bbr_orchestrator.actions.bbr_operation import run_operation
from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.clock import SystemClock
from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
from bbr_orchestrator.core.bbr_argv import (
    Operation,
)
from bbr_orchestrator.core.models import (
    LogStream,
    RunFilter,
    RunKind,
    RunState,
)
from bbr_orchestrator.log import configure_logging
from bbr_orchestrator.ports import ShellFactory
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.integration.bbr_targets import OPERATOR, deployment, director


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log line of the test, as JSON at debug level."""
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    yield stream
    configure_logging("warning", "auto")


def test_director_backup_leaves_a_valid_artifact_in_the_run_dir(
    catalog: SqlCatalog, shell: ShellFactory, tmp_path: Path
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
    assert not (workdir / "key.pem").exists(), "the copied director key is removed after the run"
    texts = [line.text for line in catalog.read_log(run.id)]
    assert any("Backup created of 10.9.0.1" in t for t in texts)


def test_unlock_failure_is_recorded_and_cleanup_unlocks(
    catalog: SqlCatalog, shell: ShellFactory, tmp_path: Path, bbr_state: Path
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
    catalog: SqlCatalog, shell: ShellFactory, tmp_path: Path, bbr_state: Path
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
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    json_logs: io.StringIO,
) -> None:
    """The client secret reaches bbr via BOSH_CLIENT_SECRET only: in no argv and no log line."""
    secret = "client-secret-" + hashlib.sha256(tmp_path.name.encode()).hexdigest()[:12]
    (bbr_state / "deployment_secret").write_text(secret)
    try:
        run = run_operation(
            catalog,
            shell,
            SystemClock(),
            deployment(tmp_path, "cf-live", secret),
            Operation.PRE_BACKUP_CHECK,
            OPERATOR,
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
    assert "bbr_output" in json_logs.getvalue()
    assert secret not in json_logs.getvalue()


@pytest.mark.parametrize(
    ("faults", "code", "outcome"),
    [
        ({"fail_scripts": ["fake-db/backup"]}, 1, "failed"),
        ({"fail_scripts": ["fake-db/pre-backup-lock"]}, 4, "lock-failed"),
        ({"fail_scripts": ["fake-db/post-backup-unlock"]}, 8, "unlock-failed"),
        (
            {"fail_scripts": ["fake-db/pre-backup-lock", "fake-db/post-backup-unlock"]},
            12,
            "lock-failed+unlock-failed",
        ),
        ({"cleanup_fails": True}, 16, "cleanup-failed"),
        ({"cleanup_fails": True, "fail_scripts": ["fake-db/backup"]}, 17, "failed+cleanup-failed"),
    ],
)
def test_each_exit_bit_maps_to_its_outcome_and_cleanup_runs(
    catalog: SqlCatalog,
    shell: ShellFactory,
    tmp_path: Path,
    bbr_state: Path,
    faults: dict[str, object],
    code: int,
    outcome: str,
) -> None:
    """bbr's exit bits (alone and combined) become distinct outcomes; backup-cleanup then leaves
    the director unlocked and not busy."""
    host = f"10.9.1.{code}"
    bbrsim.set_faults(bbr_state, {"target": host, "commands": ["backup"], "once": True, **faults})
    run = run_operation(
        catalog, shell, SystemClock(), director(tmp_path, host), Operation.BACKUP, OPERATOR
    )
    assert (run.state, run.exit_code, run.outcome) == (RunState.FAILED, code, outcome)
    (cleanup,) = catalog.list_runs(
        RunFilter(target=f"director-{host}", kind=RunKind.BACKUP_CLEANUP)
    )
    assert cleanup.state is RunState.SUCCEEDED, cleanup.error_summary
    assert not bbrsim.is_busy(bbr_state, host)
    assert bbrsim.locked_jobs(bbr_state, host) == []


def test_successful_director_pre_backup_check_and_deployment_backup(
    catalog: SqlCatalog, shell: ShellFactory, tmp_path: Path
) -> None:
    """A director pre-backup-check and a deployment backup (with manifest) both succeed."""
    check = run_operation(
        catalog,
        shell,
        SystemClock(),
        director(tmp_path, "10.9.2.1"),
        Operation.PRE_BACKUP_CHECK,
        OPERATOR,
    )
    assert check.state is RunState.SUCCEEDED
    assert any(line.text == "Director can be backed up." for line in catalog.read_log(check.id))
    assert not (tmp_path / "work" / check.id).exists(), "a check leaves no run directory behind"
    target = deployment(tmp_path, "cf-backup")
    run = run_operation(catalog, shell, SystemClock(), target, Operation.BACKUP, OPERATOR)
    assert run.state is RunState.SUCCEEDED, run.error_summary
    (artifact,) = (tmp_path / "work" / run.id).glob("cf-backup_*")
    assert (artifact / "manifest.yml").is_file()
    assert (artifact / "database-0-mysql-backup.tar").is_file()


def test_busy_director_is_fixed_by_the_cleanup(
    catalog: SqlCatalog, shell: ShellFactory, tmp_path: Path, bbr_state: Path
) -> None:
    """A stale bbr-backup directory fails the backup; the automatic cleanup clears it."""
    host = "10.9.2.2"
    bbrsim.set_faults(
        bbr_state, {"target": host, "commands": ["backup"], "once": True, "leave_busy": True}
    )
    spec = director(tmp_path, host)
    failed = run_operation(catalog, shell, SystemClock(), spec, Operation.BACKUP, OPERATOR)
    assert failed.outcome == "failed"
    assert not bbrsim.is_busy(bbr_state, host)
    assert run_operation(catalog, shell, SystemClock(), spec, Operation.BACKUP, OPERATOR).state is (
        RunState.SUCCEEDED
    )


def test_bbr_killed_mid_backup_leaves_no_lock_after_cleanup(
    catalog: SqlCatalog, shell: ShellFactory, tmp_path: Path, bbr_state: Path
) -> None:
    """bbr dying by SIGKILL mid-backup is recorded as killed; the cleanup unlocks every job."""
    host = "10.9.2.3"
    bbrsim.set_faults(
        bbr_state,
        {"target": host, "commands": ["backup"], "once": True, "kill_during_backup": True},
    )
    run = run_operation(
        catalog, shell, SystemClock(), director(tmp_path, host), Operation.BACKUP, OPERATOR
    )
    assert (run.state, run.outcome) == (RunState.FAILED, "killed")
    assert bbrsim.locked_jobs(bbr_state, host) == []
    assert not bbrsim.is_busy(bbr_state, host)


def test_cancel_sends_sigterm_and_cleans_up(
    catalog: SqlCatalog, shell: ShellFactory, tmp_path: Path, bbr_state: Path
) -> None:
    """Cancelling a slow backup stops bbr with SIGTERM (not SIGINT) and backup-cleanup runs."""
    host = "10.9.2.4"
    bbrsim.set_faults(
        bbr_state,
        {"target": host, "commands": ["backup"], "once": True, "backup_delay_seconds": 30},
    )
    cancel = threading.Event()
    timer = threading.Timer(1.5, cancel.set)
    timer.start()
    started = time.monotonic()
    run = run_operation(
        catalog,
        shell,
        SystemClock(),
        director(tmp_path, host),
        Operation.BACKUP,
        OPERATOR,
        cancel=cancel,
    )
    assert time.monotonic() - started < 20
    assert run.state is RunState.CANCELLED
    record = next(
        r for r in reversed(bbrsim.invocations(bbr_state)) if r.get("subcommand") == "backup"
    )
    assert record.get("signal") in ("SIGTERM", 15)
    assert not bbrsim.is_busy(bbr_state, host)
    assert bbrsim.locked_jobs(bbr_state, host) == []


def test_refused_connection_is_a_failed_run(
    catalog: SqlCatalog, jumpbox: Jumpbox, tmp_path: Path
) -> None:
    """Nothing listening on the jumpbox port: a FAILED run naming the host, quickly."""
    from bbr_orchestrator.sandbox.ports import free_port

    port = free_port()
    settings = SshSettings(
        jumpbox.host,
        port,
        jumpbox.user,
        jumpbox.client_key_path,
        known_hosts_file=jumpbox.known_hosts_path,
        connect_timeout=3,
    )
    run = run_operation(
        catalog,
        lambda: SshJumpbox.connect(settings),
        SystemClock(),
        director(tmp_path, "10.9.3.1"),
        Operation.PRE_BACKUP_CHECK,
        OPERATOR,
    )
    assert run.state is RunState.FAILED
    assert run.error_summary and f"[127.0.0.1]:{port}: cannot connect" in run.error_summary


def test_silent_jumpbox_times_out_as_a_failed_run(
    catalog: SqlCatalog, jumpbox: Jumpbox, tmp_path: Path
) -> None:
    """A host that accepts TCP but never speaks SSH fails the run within the timeout, no hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        settings = SshSettings(
            jumpbox.host,
            port,
            jumpbox.user,
            jumpbox.client_key_path,
            known_hosts_file=jumpbox.known_hosts_path,
            connect_timeout=2,
        )
        started = time.monotonic()
        run = run_operation(
            catalog,
            lambda: SshJumpbox.connect(settings),
            SystemClock(),
            director(tmp_path, "10.9.3.2"),
            Operation.BACKUP,
            OPERATOR,
        )
        elapsed = time.monotonic() - started
    assert run.state is RunState.FAILED
    assert run.error_summary and f"[127.0.0.1]:{port}" in run.error_summary
    assert elapsed < 15, "connect and banner timeouts bound the wait (backup + its cleanup)"


def test_wrong_host_key_is_a_failed_run(
    catalog: SqlCatalog, jumpbox: Jumpbox, tmp_path: Path
) -> None:
    """A jumpbox whose key does not match the pinned fingerprint never runs bbr; the run says why"""
    settings = SshSettings(
        jumpbox.host,
        jumpbox.port,
        jumpbox.user,
        jumpbox.client_key_path,
        host_key_fingerprint="SHA256:" + "B" * 43,
    )
    run = run_operation(
        catalog,
        lambda: SshJumpbox.connect(settings),
        SystemClock(),
        director(tmp_path, "10.9.3.3"),
        Operation.PRE_BACKUP_CHECK,
        OPERATOR,
    )
    assert run.state is RunState.FAILED
    assert run.error_summary and jumpbox.host_key_fingerprint in run.error_summary
