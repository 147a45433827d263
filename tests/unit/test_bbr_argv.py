"""bbr command lines are built as data, with flags where bbr wants them and no secret."""

from __future__ import annotations

import pytest

from bbr_orchestrator.core.bbr_argv import (
    DeploymentSpec,
    DirectorSpec,
    Operation,
    deployment_argv,
    director_argv,
)
from bbr_orchestrator.errors import InvalidOperation

DIRECTOR = DirectorSpec(host="10.0.0.6", username="bbr", private_key_path="/k/bbr.pem")
CF = DeploymentSpec(
    target="https://10.0.0.6:25555",
    username="bbr_client",
    ca_cert="/ca.pem",
    deployment="cf-abc",
    with_manifest=True,
)
ALL = DeploymentSpec(
    target="10.0.0.6", username="bbr_client", ca_cert="/ca.pem", all_deployments=True
)


def test_director_backup() -> None:
    """Director backup: mode flags before the subcommand, --artifact-path after it."""
    assert director_argv("bbr", DIRECTOR, Operation.BACKUP, artifact_path="/w/run") == (
        "bbr",
        "director",
        "--host",
        "10.0.0.6",
        "--username",
        "bbr",
        "--private-key-path",
        "/k/bbr.pem",
        "backup",
        "--artifact-path",
        "/w/run",
    )


def test_director_debug_goes_before_the_subcommand() -> None:
    """--debug is a mode flag, so it precedes the subcommand."""
    argv = director_argv("/usr/local/bin/bbr", DIRECTOR, Operation.PRE_BACKUP_CHECK, debug=True)
    assert argv[-2:] == ("--debug", "pre-backup-check")
    assert argv[0] == "/usr/local/bin/bbr"


def test_director_restore_needs_artifact_path() -> None:
    """A restore without an artifact directory is refused before anything runs."""
    with pytest.raises(InvalidOperation, match="artifact"):
        director_argv("bbr", DIRECTOR, Operation.RESTORE)
    assert director_argv("bbr", DIRECTOR, Operation.RESTORE, artifact_path="/a/x_1")[-3:] == (
        "restore",
        "--artifact-path",
        "/a/x_1",
    )


def test_cleanups_take_no_artifact_path() -> None:
    """backup-cleanup and restore-cleanup have no sub-flags."""
    assert director_argv("bbr", DIRECTOR, Operation.BACKUP_CLEANUP)[-1] == "backup-cleanup"
    with pytest.raises(InvalidOperation):
        director_argv("bbr", DIRECTOR, Operation.RESTORE_CLEANUP, artifact_path="/x")


def test_deployment_backup_with_manifest_and_no_password() -> None:
    """Deployment backup names the deployment, adds --with-manifest, and never --password."""
    argv = deployment_argv("bbr", CF, Operation.BACKUP, artifact_path="/w/r")
    assert argv == (
        "bbr",
        "deployment",
        "--target",
        "https://10.0.0.6:25555",
        "--username",
        "bbr_client",
        "--deployment",
        "cf-abc",
        "--ca-cert",
        "/ca.pem",
        "backup",
        "--artifact-path",
        "/w/r",
        "--with-manifest",
    )
    assert "--password" not in argv


def test_all_deployments_only_where_bbr_supports_it() -> None:
    """--all-deployments works for pre-backup-check, backup and backup-cleanup, not restore."""
    assert "--all-deployments" in deployment_argv("bbr", ALL, Operation.BACKUP_CLEANUP)
    for op in (Operation.RESTORE, Operation.RESTORE_CLEANUP):
        with pytest.raises(InvalidOperation, match="all-deployments"):
            deployment_argv("bbr", ALL, op, artifact_path="/a")


def test_unsafe_lock_free_is_refused_with_all_deployments() -> None:
    """--unsafe-lock-free only goes with a single deployment's backup."""
    assert deployment_argv("bbr", CF, Operation.BACKUP, unsafe_lock_free=True)[-1] == (
        "--unsafe-lock-free"
    )
    with pytest.raises(InvalidOperation):
        deployment_argv("bbr", ALL, Operation.BACKUP, unsafe_lock_free=True)


def test_deployment_spec_needs_one_choice() -> None:
    """A spec naming neither (or both) a deployment and all deployments is refused."""
    with pytest.raises(InvalidOperation):
        deployment_argv("bbr", DeploymentSpec("t", "u", "/c"), Operation.BACKUP)
