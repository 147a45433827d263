"""``restore TARGET --from RUN_ID|latest``: put a stored backup back, after a confirmation; with
``--dry-run``, only a preview of it and a go / no-go."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

import click

from bbr_orchestrator.cli.app import Context, pass_context
from bbr_orchestrator.core.models import LogStream, Run, RunFilter, RunKind, RunState
from bbr_orchestrator.errors import ConfigError, ConfigProblem, RunNotFound

if TYPE_CHECKING:
    from bbr_orchestrator.actions.bbr_operation import TargetRun
    from bbr_orchestrator.actions.restore_preview import Destination, Preview
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
    ``target`` not marked unrestorable nor deleted by retention."""
    if run_id != "latest":
        backup = catalog.get_run(run_id)
        if backup.target != target:
            raise click.UsageError(f"run {backup.id} is about {backup.target}, not {target}")
        return backup
    found = catalog.list_runs(
        RunFilter(
            target=target, kind=RunKind.BACKUP, state=RunState.SUCCEEDED, limit=500, deleted=False
        )
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
    "--dry-run",
    is_flag=True,
    help="Restore nothing: show what would be restored and check whether it can be (go / "
    "no-go). Runs no bbr command, asks no confirmation, records nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the preview as JSON.")
@click.option(
    "--live/--quiet",
    default=None,
    help="Show bbr's output as it arrives (default: when stderr is a terminal).",
)
@pass_context
def restore(
    ctx: Context,
    target: str,
    from_run: str,
    to_target: str | None,
    yes: bool,
    dry_run: bool,
    as_json: bool,
    live: bool | None,
) -> None:
    """Restore a stored backup of TARGET (into TARGET, or --to another target of its kind).

    The artifact is fetched onto the jumpbox and verified (every object's SHA-256 and every
    tar member) before `bbr restore` sees it; a failed restore is followed by restore-cleanup.
    A restore is destructive: unless --yes is given, the operator types the destination's name.
    Ctrl-C cancels cleanly. Exits 0 when the restore succeeded, 1 otherwise, 5 when another
    run holds the destination.

    With --dry-run nothing is restored and no bbr command runs: it shows the backup, its restore
    point's parts in restore order, its objects, bbr version and instances, then checks every
    object and tar member in the bucket, the destination's jumpbox (SSH, free space), the
    director's reachability from it and, for a deployment, its instance groups; it ends with
    GO (exit 0) or NO-GO and the reasons (exit 1).
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

    if as_json and not dry_run:
        raise click.UsageError("--json goes with --dry-run")
    config = ctx.config()
    destination = to_target or target
    _configured(ctx, config, destination, "--to" if to_target else "targets")
    spec = target_run(config, destination)
    if dry_run:
        _dry_run(config, target, from_run, spec, as_json)
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


def _destination(config: Config, spec: TargetRun) -> Destination:
    """The destination as the preview checks it: its jumpbox and the director bbr would reach."""
    from bbr_orchestrator.actions.restore_preview import Destination
    from bbr_orchestrator.config.schema import DeploymentTarget, DirectorTarget
    from bbr_orchestrator.core.preview import SSH_PORT, split_host_port, url_address

    target = config.target(spec.target)
    director: tuple[str, int] | None = None
    try:
        if isinstance(target, DirectorTarget):
            director = split_host_port(target.host, SSH_PORT)
        elif isinstance(target, DeploymentTarget):
            director = url_address(target.bosh_target)
    except ValueError:
        director = None
    return Destination(spec, target.jumpbox, director)


def _dry_run(
    config: Config, target: str, from_run: str, spec: TargetRun, as_json: bool
) -> NoReturn:
    """Preview the restore, print it, exit 0 for GO and 1 for NO-GO."""
    from bbr_orchestrator.actions.restore_preview import preview_restore
    from bbr_orchestrator.cli.render import plain, to_json
    from bbr_orchestrator.service.wiring import jumpbox_connector, open_catalog, storage

    with open_catalog(config) as catalog:
        backup = _backup(catalog, target, from_run)
        preview = preview_restore(
            catalog,
            storage(config).store,
            jumpbox_connector(config, spec.target),
            _destination(config, spec),
            backup,
        )
    if as_json:
        record = plain(preview)
        record.update(size=preview.size, verdict="go" if preview.go else "no-go")
        click.echo(to_json(record))
    else:
        _print_preview(preview)
    raise click.exceptions.Exit(0 if preview.go else 1)


def _print_preview(preview: Preview) -> None:
    from bbr_orchestrator.cli.render import human_bytes

    backup = preview.backup
    when = backup.finished_at or backup.created_at
    echo = click.echo
    echo(f"DRY RUN: restore of backup {backup.id} into {preview.destination}")
    echo("  nothing is restored, no bbr command runs, nothing is recorded")
    echo(f"  backup:      {backup.id} of {backup.target} ({backup.target_kind.value})")
    echo(f"  taken:       {when.isoformat(timespec='seconds')}")
    echo(f"  manifest:    {preview.manifest_key or '- (never stored completely)'}")
    echo(f"  size:        {_size(preview.size)}")
    echo(f"  bbr version: {preview.bbr_version or 'unknown'} (at backup time)")
    point = preview.restore_point
    if point is None:
        echo("restore point: none (a backup on its own); its one part:")
    else:
        echo(f"restore point {point.id} (plan {point.plan}, {point.state.value}), parts in order:")
    for number, part in enumerate(preview.parts, start=1):
        mark = "   <- this restore" if part.selected else ""
        echo(
            f"  {number}. {part.target} ({part.target_kind.value}) {part.kind.value} "
            f"{part.run_id} {human_bytes(part.size)} {part.state.value}{mark}"
        )
    echo(f"objects ({len(preview.objects)}):")
    for obj in preview.objects:
        echo(f"  {obj.name}  {human_bytes(obj.size)}  {obj.key}")
    echo(f"instances in bbr's metadata ({len(preview.instances)}):")
    for instance in preview.instances:
        echo(f"  {instance.name}/{instance.index}: {', '.join(instance.jobs) or 'no jobs'}")
    if preview.custom_artifacts:
        echo(f"  custom artifacts: {', '.join(preview.custom_artifacts)}")
    echo("checks:")
    for check in preview.checks:
        echo(f"  {check.status.value:<8}  {check.name:<18}  {check.subject}: {check.detail}")
    if preview.go:
        echo("GO: the restore can go ahead" + (" (with warnings)" if preview.reasons else ""))
    else:
        echo("NO-GO: the restore would fail or do harm; reasons:")
    for reason in preview.reasons:
        echo(f"  - {reason}")
