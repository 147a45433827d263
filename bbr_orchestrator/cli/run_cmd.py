"""``run TARGET [OPERATION]``: one bbr operation now, recorded like a scheduled one."""

from __future__ import annotations

import getpass
import socket

import click

from bbr_orchestrator.cli.app import Context, pass_context
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import RunState, Trigger
from bbr_orchestrator.errors import ConfigError, ConfigProblem

_OPERATIONS = [
    Operation.PRE_BACKUP_CHECK,
    Operation.BACKUP,
    Operation.BACKUP_CLEANUP,
    Operation.RESTORE_CLEANUP,
]


def operator() -> str:
    """Who is asking: ``user@host``."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


@click.command("run")
@click.argument("target")
@click.argument(
    "operation",
    required=False,
    default=Operation.BACKUP.value,
    type=click.Choice([o.value for o in _OPERATIONS]),
)
@pass_context
def run(ctx: Context, target: str, operation: str) -> None:
    """Run bbr OPERATION (default: backup) against TARGET now, on its jumpbox.

    The run is recorded in the catalog with bbr's output; a failed backup is followed by
    backup-cleanup. Exits 0 when bbr succeeded, 1 otherwise.
    """
    from bbr_orchestrator.actions.bbr_operation import Requester, run_operation
    from bbr_orchestrator.adapters.clock import SystemClock
    from bbr_orchestrator.service.wiring import connect_jumpbox, open_catalog, target_run

    config = ctx.config()
    if target not in {t.name for t in config.targets}:
        known = ", ".join(t.name for t in config.targets)
        raise ConfigError(
            str(ctx.config_path),
            [ConfigProblem("targets", f"no target {target!r} (known: {known})")],
        )
    spec = target_run(config, target)
    with open_catalog(config) as catalog, connect_jumpbox(config, target) as shell:
        finished = run_operation(
            catalog,
            shell,
            SystemClock(),
            spec,
            Operation(operation),
            Requester(Trigger.OPERATOR, operator()),
        )
    click.echo(
        f"run {finished.id}: {operation} of {target} {finished.state.value} ({finished.outcome})"
    )
    if finished.state is not RunState.SUCCEEDED:
        if finished.error_summary:
            click.echo(finished.error_summary, err=True)
        click.echo(f"details: bbr-orchestrator runs show {finished.id}", err=True)
        raise click.exceptions.Exit(1)
