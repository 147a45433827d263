"""``restore TARGET --from RUN_ID|latest``: put a stored backup back, after a confirmation."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from bbr_orchestrator.cli.app import Context, pass_context
from bbr_orchestrator.core.models import LogStream, Run, RunFilter, RunKind, RunState
from bbr_orchestrator.errors import ConfigError, ConfigProblem, RunNotFound

if TYPE_CHECKING:
    from bbr_orchestrator.config import Config
    from bbr_orchestrator.ports import Catalog


def _echo_line(stream: LogStream, text: str) -> None:
    prefix = {LogStream.STDOUT: "", LogStream.STDERR: "bbr! ", LogStream.EVENT: "==> "}[stream]
    click.echo(prefix + text, err=True)


def _configured(ctx: Context, config: Config, name: str, option: str) -> None:
    if name not in {t.name for t in config.targets}:
        known = ", ".join(t.name for t in config.targets)
        problem = ConfigProblem(option, f"no target {name!r} (known: {known})")
        raise ConfigError(str(ctx.config_path), [problem])


def _backup(catalog: Catalog, target: str, run_id: str) -> Run:
    """The backup named by ``run_id``, or with ``latest`` the newest succeeded backup of
    ``target`` not marked unrestorable."""
    if run_id != "latest":
        backup = catalog.get_run(run_id)
        if backup.target != target:
            raise click.UsageError(f"run {backup.id} is about {backup.target}, not {target}")
        return backup
    found = catalog.list_runs(
        RunFilter(target=target, kind=RunKind.BACKUP, state=RunState.SUCCEEDED, limit=500)
    )
    good = [r for r in found if r.restorable is not False]
    if not good:
        raise RunNotFound("latest", f"no restorable succeeded backup of {target}")
    return good[0]


def _size(n: int | None) -> str:
    if n is None:
        return "unknown size"
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{n} bytes" if unit == "B" else f"{size:.1f} {unit} ({n} bytes)"


def _confirm(backup: Run, destination: str, key: str) -> None:
    """Show what will be restored and make the operator type the destination's name."""
    when = backup.finished_at or backup.created_at
    click.echo(
        f"About to restore backup {backup.id} of {backup.target}\n"
        f"  taken:       {when.isoformat()}\n"
        f"  size:        {_size(backup.bytes_total)}\n"
        f"  manifest:    {key}\n"
        f"  destination: {destination} (its current state will be overwritten)",
        err=True,
    )
    if not sys.stdin.isatty():
        click.echo(
            "error: a restore is destructive and needs a confirmation; stdin is not a "
            "terminal, so pass --yes to confirm non-interactively",
            err=True,
        )
        raise click.exceptions.Exit(2)
    typed = click.prompt(
        f"Type the destination target's name ({destination}) to confirm",
        default="",
        show_default=False,
        err=True,
    )
    if typed.strip() != destination:
        click.echo("aborted: the name did not match; nothing was restored", err=True)
        raise click.exceptions.Exit(1)


@click.command("restore")
@click.argument("target")
@click.option(
    "--from",
    "from_run",
    required=True,
    metavar="RUN_ID|latest",
    help="The backup to restore; `latest`: TARGET's newest good backup.",
)
@click.option(
    "--to",
    "to_target",
    default=None,
    metavar="OTHER_TARGET",
    help="Restore into this configured target (same kind) instead of TARGET.",
)
@click.option("--yes", is_flag=True, help="Skip the confirmation (for automation).")
@click.option(
    "--live/--quiet",
    default=None,
    help="Show bbr's output as it arrives (default: when stderr is a terminal).",
)
@pass_context
def restore(
    ctx: Context, target: str, from_run: str, to_target: str | None, yes: bool, live: bool | None
) -> None:
    """Restore a stored backup of TARGET (into TARGET, or --to another target of its kind).

    The artifact is fetched onto the jumpbox and verified (every object's SHA-256 and every
    tar member) before `bbr restore` sees it; a failed restore is followed by restore-cleanup.
    A restore is destructive: unless --yes is given, the operator types the destination's name.
    Ctrl-C cancels cleanly. Exits 0 when the restore succeeded, 1 otherwise, 5 when another
    run holds the destination.
    """
    from bbr_orchestrator.actions.heartbeat import Heartbeat, owner_id
    from bbr_orchestrator.actions.restore_backup import restore_backup, restore_plan
    from bbr_orchestrator.actions.run_claim import Requester
    from bbr_orchestrator.adapters.clock import SystemClock
    from bbr_orchestrator.cli.run_cmd import cancel_on_signals, operator
    from bbr_orchestrator.core.models import Trigger
    from bbr_orchestrator.service.wiring import (
        jumpbox_connector,
        open_catalog,
        storage,
        target_run,
    )

    config = ctx.config()
    destination = to_target or target
    _configured(ctx, config, destination, "--to" if to_target else "targets")
    spec = target_run(config, destination)
    show = sys.stderr.isatty() if live is None else live
    clock = SystemClock()
    owner = owner_id("cli")
    with open_catalog(config) as catalog:
        backup = _backup(catalog, target, from_run)
        key = restore_plan(catalog, spec, backup)
        if not yes:
            _confirm(backup, destination, key)
        with (
            Heartbeat(catalog, clock, owner, config.daemon.heartbeat_interval.total_seconds()),
            cancel_on_signals() as cancel,
        ):
            finished = restore_backup(
                catalog,
                jumpbox_connector(config, destination),
                clock,
                storage(config).store,
                spec,
                backup,
                Requester(Trigger.OPERATOR, operator(), owner),
                cancel=cancel,
                observer=_echo_line if show else None,
            )
    click.echo(
        f"restore {finished.id}: backup {backup.id} into {destination} "
        f"{finished.state.value} ({finished.outcome})"
    )
    if finished.state is not RunState.SUCCEEDED:
        if finished.error_summary:
            click.echo(finished.error_summary, err=True)
        click.echo(f"details: bbr-orchestrator runs logs {finished.id}", err=True)
        raise click.exceptions.Exit(1)
