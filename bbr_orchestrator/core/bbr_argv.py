"""Pure builders of bbr command lines (bbr-contract.md section 1). Commands are data: tuples,
compared by equality in tests, and joined with ``shlex.join`` only at the remote shell.

The BOSH client secret is never part of a command line: bbr reads ``BOSH_CLIENT_SECRET``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bbr_orchestrator.errors import InvalidOperation


class Operation(StrEnum):
    """bbr subcommands."""

    PRE_BACKUP_CHECK = "pre-backup-check"
    BACKUP = "backup"
    RESTORE = "restore"
    BACKUP_CLEANUP = "backup-cleanup"
    RESTORE_CLEANUP = "restore-cleanup"


_ALL_DEPLOYMENTS_OPS = frozenset(
    {Operation.PRE_BACKUP_CHECK, Operation.BACKUP, Operation.BACKUP_CLEANUP}
)


@dataclass(frozen=True)
class DirectorSpec:
    """``bbr director`` mode flags."""

    host: str
    username: str
    private_key_path: str


@dataclass(frozen=True)
class DeploymentSpec:
    """``bbr deployment`` mode flags (the client secret goes through the environment)."""

    target: str
    username: str
    ca_cert: str
    deployment: str | None = None
    all_deployments: bool = False
    with_manifest: bool = False


def _sub_flags(
    operation: Operation, artifact_path: str | None, extra: tuple[str, ...] = ()
) -> tuple[str, ...]:
    if operation is Operation.RESTORE:
        if not artifact_path:
            raise InvalidOperation("restore", "needs the artifact directory (--artifact-path)")
        return ("--artifact-path", artifact_path)
    if operation is Operation.BACKUP:
        path = ("--artifact-path", artifact_path) if artifact_path else ()
        return (*path, *extra)
    if artifact_path:
        raise InvalidOperation(operation.value, "takes no --artifact-path")
    return ()


def director_argv(
    bbr: str,
    spec: DirectorSpec,
    operation: Operation,
    *,
    artifact_path: str | None = None,
    debug: bool = False,
) -> tuple[str, ...]:
    """``bbr director --host H --username U --private-key-path K [--debug] SUB [sub-flags]``."""
    mode = (
        "--host",
        spec.host,
        "--username",
        spec.username,
        "--private-key-path",
        spec.private_key_path,
    )
    return (
        bbr,
        "director",
        *mode,
        *(("--debug",) if debug else ()),
        operation.value,
        *_sub_flags(operation, artifact_path),
    )


def deployment_argv(
    bbr: str,
    spec: DeploymentSpec,
    operation: Operation,
    *,
    artifact_path: str | None = None,
    debug: bool = False,
    unsafe_lock_free: bool = False,
) -> tuple[str, ...]:
    """``bbr deployment --target T --username U (--deployment D | --all-deployments)
    --ca-cert C [--debug] SUB [sub-flags]`` — never ``--password``."""
    if (spec.deployment is None) == (not spec.all_deployments):
        raise InvalidOperation(operation.value, "name one deployment or all deployments")
    if spec.all_deployments and operation not in _ALL_DEPLOYMENTS_OPS:
        raise InvalidOperation(operation.value, "bbr does not support it with --all-deployments")
    if unsafe_lock_free and (spec.all_deployments or operation is not Operation.BACKUP):
        raise InvalidOperation(operation.value, "--unsafe-lock-free is for one deployment's backup")
    which = (
        ("--all-deployments",) if spec.all_deployments else ("--deployment", str(spec.deployment))
    )
    mode = ("--target", spec.target, "--username", spec.username, *which, "--ca-cert", spec.ca_cert)
    extra: tuple[str, ...] = ()
    if operation is Operation.BACKUP:
        extra = (
            *(("--with-manifest",) if spec.with_manifest else ()),
            *(("--unsafe-lock-free",) if unsafe_lock_free else ()),
        )
    return (
        bbr,
        "deployment",
        *mode,
        *(("--debug",) if debug else ()),
        operation.value,
        *_sub_flags(operation, artifact_path, extra),
    )
