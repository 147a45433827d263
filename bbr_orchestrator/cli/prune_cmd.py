"""``prune [PLAN] [--dry-run]``, ``pin RUN_ID [--reason TEXT]``, ``unpin RUN_ID``: retention
by hand (the daemon also prunes a plan after each of its restore points)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bbr_orchestrator.cli.app import Context, pass_context
from bbr_orchestrator.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from bbr_orchestrator.actions.prune import PointResult, PruneReport
    from bbr_orchestrator.config import Config
    from bbr_orchestrator.config.schema import PlanConfig
    from bbr_orchestrator.core.models import Run
    from bbr_orchestrator.ports import Catalog

_LABELS = {
    "keep": "keep",
    "delete": "would delete",
    "deleted": "deleted",
    "not deleted": "NOT deleted",
}


def _plans(ctx: Context, config: Config, name: str | None) -> list[PlanConfig]:
    if name is None:
        return list(config.plans)
    found = [p for p in config.plans if p.name == name]
    if not found:
        known = ", ".join(p.name for p in config.plans) or "none"
        problem = ConfigProblem("PLAN", f"no plan {name!r} (known: {known})")
        raise ConfigError(str(ctx.config_path), [problem])
    return found


def _point_line(result: PointResult) -> str:
    point = result.point
    label = _LABELS[result.verdict]
    return f"  {label:<12} {point.id}  {point.at:%Y-%m-%d %H:%M}Z  {point.state:<11} " + "; ".join(
        result.reasons
    )


def _print_report(report: PruneReport, timezone: str) -> None:
    click.echo(f"plan {report.plan} ({timezone}): {report.policy.describe()}")
    if not report.points:
        click.echo("  no restore points")
    for result in report.points:
        click.echo(_point_line(result))
        for backup in result.backups if result.delete else ():
            click.echo(f"      backup {backup}")
        for problem in result.problems:
            click.echo(f"      ! {problem}")
    to_delete = sum(1 for p in report.points if p.delete)
    if report.dry_run:
        click.echo(f"  {report.kept} kept, {to_delete} would be deleted (dry run: nothing changed)")
    else:
        click.echo(
            f"  {report.kept} kept, {report.deleted} deleted, {len(report.failed)} not deleted"
        )


@click.command("prune")
@click.argument("plan_name", metavar="[PLAN]", required=False)
@click.option("--dry-run", is_flag=True, help="Delete nothing: print what would go and why.")
@pass_context
def prune(ctx: Context, plan_name: str | None, dry_run: bool) -> None:
    """Apply the retention policy of PLAN (every plan without PLAN) and print each restore
    point kept or deleted, with the reasons.

    A deleted restore point loses the stored objects of all its backups (manifest first, then
    the data); pinned backups, the newest good restore point and the plan's minimum of good
    ones are never deleted. Backups outside any plan are not touched. Exits 0, or 1 when
    something could not be deleted yet (object lock, a refused delete, a backup being read):
    the next prune tries again.
    """
    from zoneinfo import ZoneInfo

    from bbr_orchestrator.actions.prune import prune_plan
    from bbr_orchestrator.adapters.clock import SystemClock
    from bbr_orchestrator.service.points import retention_policy
    from bbr_orchestrator.service.wiring import open_catalog, storage

    config = ctx.config()
    plans = _plans(ctx, config, plan_name)
    clock = SystemClock()
    failed = 0
    with open_catalog(config) as catalog:
        store = None if dry_run else storage(config).store
        for plan in plans:
            report = prune_plan(
                catalog,
                store,
                clock,
                plan.name,
                retention_policy(plan),
                ZoneInfo(plan.timezone),
                dry_run=dry_run,
            )
            _print_report(report, plan.timezone)
            failed += len(report.failed)
    if not plans:
        click.echo("no plans configured: nothing to prune")
    if failed:
        raise click.exceptions.Exit(1)


def _reason(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from bbr_orchestrator.actions.prune import REASON_CHARS

    if value is not None and len(value) > REASON_CHARS:
        raise click.BadParameter(f"at most {REASON_CHARS} characters, got {len(value)}")
    return value


def _backup(catalog: Catalog, run_id: str) -> Run:
    from bbr_orchestrator.actions.verify_plan import STORED_KINDS

    run = catalog.get_run(run_id)
    if run.kind not in STORED_KINDS:
        raise click.UsageError(f"run {run.id} is a {run.kind.value}, not a backup")
    return run


@click.command("pin")
@click.argument("run_id")
@click.option("--reason", default=None, callback=_reason, help="Why it is kept (recorded).")
@pass_context
def pin(ctx: Context, run_id: str, reason: str | None) -> None:
    """Pin a backup (full run id or a unique prefix): retention never deletes it, nor its
    restore point, until it is unpinned. Pinning again replaces the reason."""
    from bbr_orchestrator.adapters.clock import SystemClock
    from bbr_orchestrator.cli.run_cmd import operator
    from bbr_orchestrator.service.wiring import open_catalog

    with open_catalog(ctx.config()) as catalog:
        backup = _backup(catalog, run_id)
        pinned = catalog.pin_run(backup.id, operator(), reason, SystemClock().now())
    because = f": {reason}" if reason else ""
    click.echo(f"pinned backup {pinned.id} of {pinned.target} by {pinned.pinned_by}{because}")


@click.command("unpin")
@click.argument("run_id")
@pass_context
def unpin(ctx: Context, run_id: str) -> None:
    """Remove the pin of a backup: retention treats it like any other again."""
    from bbr_orchestrator.service.wiring import open_catalog

    with open_catalog(ctx.config()) as catalog:
        backup = _backup(catalog, run_id)
        was = backup.pinned
        catalog.unpin_run(backup.id)
    click.echo(f"unpinned backup {backup.id}" if was else f"backup {backup.id} was not pinned")
