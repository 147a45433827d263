"""`bbr-orchestrator restore` as a subprocess: a stored backup put back through real SSH + S3."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from bbr_orchestrator.adapters.catalog import open_catalog, upgrade
from bbr_orchestrator.config import Config, validate_data
from bbr_orchestrator.core.models import Run, RunFilter, RunKind, RunState, Trigger
from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.integration.test_check import check_config_data

EXE = str(Path(sys.executable).parent / "bbr-orchestrator")


def _cli(
    config: Path, *args: str, stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=stdin,
    )


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


def _setup(
    tmp_path: Path,
    jumpbox: Jumpbox,
    seaweedfs: S3Server,
    bucket: BucketFactory,
    host: str,
    other_host: str | None = None,
) -> tuple[Path, Config]:
    """A config with director ``host`` (and optionally a second director), migrated catalog."""
    data: dict[str, Any] = check_config_data(tmp_path, jumpbox, seaweedfs, bucket(seaweedfs))
    data["targets"][0]["host"] = host
    if other_host is not None:
        second = dict(data["targets"][0], name="sandbox-director", host=other_host)
        data["targets"].append(second)
    config = validate_data(data)
    config.state_dir.mkdir(parents=True)
    upgrade(config.catalog_url())
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path, config


def _backup(path: Path, bbr_state: Path) -> None:
    bbrsim.clear_faults(bbr_state)
    backup = _cli(path, "run", "backup", "bosh-director", "--quiet")
    assert backup.returncode == 0, backup.stdout + backup.stderr


def _restores(bbr_state: Path, host: str) -> list[dict[str, Any]]:
    return [
        i
        for i in bbrsim.invocations(bbr_state)
        if i.get("subcommand") == "restore" and i.get("target") == host
    ]


def _runs(config: Config, target: str) -> list[Run]:
    with open_catalog(config.catalog_url()) as catalog:
        return catalog.list_runs(RunFilter(target=target, limit=50))


def test_restore_with_yes_puts_the_backed_up_bytes_back_and_records_the_run(
    tmp_path: Path, jumpbox: Jumpbox, bbr_state: Path, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """`restore bosh-director --from latest --yes` fetches the stored backup, bbr restores it
    (the simulator's director has the backed-up files again) and the run is recorded as a
    succeeded restore of that backup, asked by the operator."""
    host = "10.8.0.31"
    path, config = _setup(tmp_path, jumpbox, seaweedfs, bucket, host)
    db = bbrsim.director_job_dir(bbr_state, host, "fake-db")
    before = _tree(db)
    _backup(path, bbr_state)
    (db / "dump.sql").write_text("DROP TABLE everything;\n", encoding="utf-8")
    (db / "not-in-the-backup").write_text("new\n", encoding="utf-8")
    assert _tree(db) != before
    result = _cli(path, "restore", "bosh-director", "--from", "latest", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
    assert _tree(db) == before
    (restored,) = _restores(bbr_state, host)
    assert restored["exit_code"] == 0
    assert str(restored["artifact_path"]).startswith(str(tmp_path / "jumpbox-work"))
    runs = _runs(config, "bosh-director")
    backup = next(r for r in runs if r.kind is RunKind.BACKUP)
    (run,) = [r for r in runs if r.kind is RunKind.RESTORE]
    assert run.id in result.stdout
    assert (run.state, run.subject_run_id, run.trigger) == (
        RunState.SUCCEEDED,
        backup.id,
        Trigger.OPERATOR,
    )
    assert "@" in run.triggered_by
    assert not [r for r in runs if r.kind is RunKind.RESTORE_CLEANUP]
    with open_catalog(config.catalog_url()) as catalog:
        events = [line.text for line in catalog.read_log(run.id)]
    assert any(backup.id in e and "manifest.json" in e and "bosh-director" in e for e in events)


def test_restore_without_confirmation_is_refused_and_runs_nothing(
    tmp_path: Path, jumpbox: Jumpbox, bbr_state: Path, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """A wrong name typed at the prompt aborts (exit 1), and without a terminal and --yes the
    restore is refused (exit 2): no restore run recorded, no bbr restore invoked."""
    host = "10.8.0.32"
    path, config = _setup(tmp_path, jumpbox, seaweedfs, bucket, host)
    _backup(path, bbr_state)
    main, secondary = pty.openpty()
    try:
        os.write(main, b"bosh-directorX\n")
        typed = _cli(path, "restore", "bosh-director", "--from", "latest", stdin=secondary)
    finally:
        os.close(secondary)
        os.close(main)
    assert typed.returncode == 1, typed.stdout + typed.stderr
    assert "aborted" in typed.stderr and "bosh-director" in typed.stderr
    piped = _cli(path, "restore", "bosh-director", "--from", "latest")
    assert piped.returncode == 2, piped.stdout + piped.stderr
    assert "--yes" in piped.stderr
    assert _restores(bbr_state, host) == []
    assert not [r for r in _runs(config, "bosh-director") if r.kind is RunKind.RESTORE]


def test_restore_to_another_director_of_the_same_kind(
    tmp_path: Path, jumpbox: Jumpbox, bbr_state: Path, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """`--to sandbox-director` restores bosh-director's backup into the other configured
    director: its files become the source's, the source is untouched by bbr restore."""
    host, other = "10.8.0.33", "10.8.0.34"
    path, config = _setup(tmp_path, jumpbox, seaweedfs, bucket, host, other)
    source = bbrsim.director_job_dir(bbr_state, host, "fake-db")
    (source / "dump.sql").write_text("source data\n", encoding="utf-8")
    expected = _tree(source)
    _backup(path, bbr_state)
    sandbox = bbrsim.director_job_dir(bbr_state, other, "fake-db")
    (sandbox / "dump.sql").write_text("sandbox data\n", encoding="utf-8")
    result = _cli(
        path, "restore", "bosh-director", "--from", "latest", "--to", "sandbox-director", "--yes"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _tree(sandbox) == expected
    assert _restores(bbr_state, host) == []
    assert [i["exit_code"] for i in _restores(bbr_state, other)] == [0]
    backup = next(r for r in _runs(config, "bosh-director") if r.kind is RunKind.BACKUP)
    (run,) = [r for r in _runs(config, "sandbox-director") if r.kind is RunKind.RESTORE]
    assert (run.state, run.subject_run_id) == (RunState.SUCCEEDED, backup.id)
