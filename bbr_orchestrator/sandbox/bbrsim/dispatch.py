"""Reaching a target (SSH to a director, UAA login to a BOSH director) and running one operation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from . import backup, restore
from .cli import Command
from .clock import parse_utc, utc_now
from .faults import Faults
from .output import Log, StepError
from .state import valid_name
from .steps import Run
from .world import Target

SSH_AUTH_ERROR = (
    "ssh.Dial failed: ssh: handshake failed: ssh: unable to authenticate, attempted methods "
    "[none publickey], no supported methods remain"
)
UAA_AUTH_ERROR = (
    "Failed to obtain token from UAA: UAA responded with non-successful status code '401' "
    'response \'{"error":"unauthorized","error_description":"Bad credentials"}\''
)


def director_name(host: str) -> str:
    """bbr's extractNameFromAddress: the host part of ``host[:port]``."""
    return host.split(":")[0]


def director_access(command: Command, faults: Faults) -> str | None:
    """Why bbr could not SSH to the director, or None. IPv6 literals never work."""
    host = command.text("host")
    name, _, port = host.partition(":")
    if host.count(":") > 1 or host.startswith("["):
        return f"ssh.Dial failed: dial tcp: address {host}: too many colons in address"
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return f"ssh.Dial failed: dial tcp: address {host}: invalid port"
    if not valid_name(name):
        return f"ssh.Dial failed: dial tcp: lookup {name}: no such host"
    key = Path(command.text("private-key-path"))
    if not key.is_file():
        return f"failed to read private key: open {key}: no such file or directory"
    return SSH_AUTH_ERROR if faults.auth_fails else None


def director_port(command: Command) -> int:
    """The SSH port bbr dials: the one after ``:`` in --host, else 22."""
    port = command.text("host").partition(":")[2]
    return int(port) if port.isdigit() else 22


def deployment_access(command: Command, state_dir: Path, faults: Faults) -> str | None:
    """Why bbr could not log in to the BOSH director, or None."""
    ca_cert = command.text("ca-cert")
    if "-----BEGIN" not in ca_cert and not Path(ca_cert).is_file():
        return f"Invalid CA certificate: open {ca_cert}: no such file or directory"
    secret_file = state_dir / "deployment_secret"
    if secret_file.exists():
        expected = secret_file.read_text(encoding="utf-8").strip()
        if command.text("password") != expected:
            return UAA_AUTH_ERROR
    return UAA_AUTH_ERROR if faults.auth_fails else None


def start_time(faults: Faults, started: dt.datetime) -> dt.datetime:
    return parse_utc(faults.start_time) if faults.start_time else started


def execute(
    command: Command,
    target: Target,
    faults: Faults,
    log: Log,
    kill: Callable[[], None],
    started: dt.datetime | None = None,
) -> list[StepError]:
    """Run ``command``'s subcommand against ``target``; the errors bbr would report."""
    if faults.leave_busy:
        for inst in target.instances:
            inst.busy_marker.mkdir(parents=True, exist_ok=True)
    run = Run(target, log, faults, kill)
    sub = command.sub
    if sub == "pre-backup-check":
        backup.pre_backup_check(run)
    elif sub == "backup":
        parent = command.text("artifact-path")
        backup.backup(
            run,
            Path(parent) if parent else None,
            start_time(faults, started or utc_now()),
            with_manifest=command.flag("with-manifest"),
            lock_free=command.flag("unsafe-lock-free"),
        )
    elif sub == "backup-cleanup":
        backup.backup_cleanup(run)
    elif sub == "restore":
        restore.restore(run, Path(command.text("artifact-path")))
    else:
        restore.restore_cleanup(run)
    return run.errors
