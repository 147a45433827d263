"""``plans``: every plan, its schedule and when it fires next."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from bbr_orchestrator.cli.app import Context, pass_context


@click.command("plans")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def plans(ctx: Context, as_json: bool) -> None:
    """List the plans with their schedule, time zone and next fire time (paused: none)."""
    from rich.table import Table

    from bbr_orchestrator.cli.render import console, to_json
    from bbr_orchestrator.service.schedule import plan_schedules

    config = ctx.config()
    schedules = plan_schedules(config.plans, datetime.now(UTC))
    if as_json:
        click.echo(to_json(schedules))
        return
    if not schedules:
        click.echo("no plans configured")
        return
    table = Table(box=None, header_style="bold")
    for column in (
        "PLAN",
        "TARGETS",
        "SCHEDULE",
        "TIME ZONE",
        "NEXT FIRE (PLAN ZONE)",
        "NEXT (UTC)",
    ):
        table.add_column(column, no_wrap=column != "TARGETS")
    for item in schedules:
        local = item.next_fire.strftime("%Y-%m-%d %H:%M %Z") if item.next_fire else "paused"
        in_utc = (
            item.next_fire.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ") if item.next_fire else "-"
        )
        table.add_row(
            item.plan, ", ".join(item.targets), item.schedule, item.timezone, local, in_utc
        )
    console().print(table)
