"""``plans``: every plan, its schedule and when it fires next."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from bbr_orchestrator.cli.app import Context, pass_context


@click.command("plans")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def plans(ctx: Context, as_json: bool) -> None:
    """List the plans with their schedule, time zone and next fire time (paused: none), and
    under each plan its verify job and restore drills with theirs."""
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
        table.add_row(
            item.plan, ", ".join(item.targets), item.schedule, item.timezone, *_when(item.next_fire)
        )
        for job in item.jobs:
            table.add_row(f"  {job.job}", "", job.schedule, job.timezone, *_when(job.next_fire))
    console().print(table)


def _when(moment: datetime | None) -> tuple[str, str]:
    """The next fire time in its own zone and in UTC ("paused" when there is none)."""
    if moment is None:
        return "paused", "-"
    return moment.strftime("%Y-%m-%d %H:%M %Z"), moment.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
