"""``runs list``, ``runs show`` and ``runs logs``: read the catalog."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import click

from bbr_orchestrator.cli.app import Context, pass_context
from bbr_orchestrator.config.types import parse_duration
from bbr_orchestrator.core.models import RunFilter, RunKind, RunState


class WhenParam(click.ParamType[datetime]):
    """An ISO 8601 date or time (UTC unless it says otherwise), or an age such as 24h or 7d."""

    name = "when"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            return datetime.now(UTC) - parse_duration(text)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = datetime.combine(date.fromisoformat(text), time())
            except ValueError:
                self.fail(
                    f"{text!r} is neither a date/time (2026-11-27T02:00) nor an age (24h, 7d)"
                )
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group("runs")
def runs_group() -> None:
    """Inspect recorded runs."""


@runs_group.command("list")
@click.option("--plan", help="Only runs of this plan.")
@click.option("--target", help="Only runs against this target.")
@click.option("--kind", type=click.Choice([k.value for k in RunKind]), help="Only this kind.")
@click.option("--state", type=click.Choice([s.value for s in RunState]), help="Only this state.")
@click.option("--since", type=WhenParam(), help="Created at or after (date/time or age: 24h, 7d).")
@click.option("--until", type=WhenParam(), help="Created before (date/time or age).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def list_runs(
    ctx: Context,
    plan: str | None,
    target: str | None,
    kind: str | None,
    state: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    from bbr_orchestrator.cli.render import console, run_record, runs_table, to_json
    from bbr_orchestrator.service.wiring import open_catalog

    run_filter = RunFilter(
        plan=plan,
        target=target,
        kind=RunKind(kind) if kind else None,
        state=RunState(state) if state else None,
        since=since,
        until=until,
        limit=limit,
    )
    with open_catalog(ctx.config()) as catalog:
        runs = catalog.list_runs(run_filter)
    if as_json:
        click.echo(to_json([run_record(r) for r in runs]))
    elif not runs:
        click.echo("no runs match")
    else:
        console().print(runs_table(runs))


@runs_group.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def show(ctx: Context, run_id: str, as_json: bool) -> None:
    """Show one run (full id or a unique prefix of at least 6 characters) and its objects."""
    from bbr_orchestrator.cli.render import console, print_run, run_record, to_json
    from bbr_orchestrator.service.wiring import open_catalog

    with open_catalog(ctx.config()) as catalog:
        run = catalog.get_run(run_id)
        artifacts = catalog.list_artifacts(run.id)
    if as_json:
        click.echo(to_json({**run_record(run), "artifacts": artifacts}))
    else:
        print_run(console(), run, artifacts)


@runs_group.command("logs")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_context
def logs(ctx: Context, run_id: str, as_json: bool) -> None:
    """Print a run's log: bbr's output and the orchestrator's events, in order."""
    from bbr_orchestrator.cli.render import to_json
    from bbr_orchestrator.service.wiring import open_catalog

    with open_catalog(ctx.config()) as catalog:
        run = catalog.get_run(run_id)
        for line in catalog.read_log(run.id):
            if as_json:
                click.echo(to_json(line, compact=True))
            else:
                click.echo(f"{line.at:%H:%M:%S} {line.stream.value:<6} {line.text}")
