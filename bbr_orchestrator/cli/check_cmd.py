"""``check``: pre-flight checks as records, for people, scripts and monitoring."""

from __future__ import annotations

import click

from bbr_orchestrator.cli.app import Context, pass_context

_STATUS_STYLE = {"ok": "green", "warning": "yellow", "critical": "red"}


@click.command("check")
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="NAME",
    help="Check only this target (and its jumpbox); repeatable. Default: every target.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of records.")
@pass_context
def check(ctx: Context, targets: tuple[str, ...], as_json: bool) -> None:
    """Check the catalog, jumpboxes, bbr, targets and object store before a backup.

    Nothing is recorded as a run. Exits like a monitoring plugin: 0 OK, 1 WARNING,
    2 CRITICAL (the worst record decides).
    """
    from rich.table import Table

    from bbr_orchestrator.cli.render import console, to_json
    from bbr_orchestrator.core.checks import exit_code, overall
    from bbr_orchestrator.service.checks import run_checks

    config = ctx.config()
    known = {t.name for t in config.targets}
    unknown = [name for name in targets if name not in known]
    if unknown:
        raise click.BadParameter(
            f"no such target: {', '.join(unknown)} (known: {', '.join(sorted(known))})",
            param_hint="--target",
        )
    results = run_checks(config, targets=list(targets) if targets else None)
    if as_json:
        click.echo(to_json(results))
    else:
        table = Table(box=None, header_style="bold")
        for column in ("NAME", "SUBJECT", "STATUS", "DETAIL"):
            table.add_column(column, no_wrap=column != "DETAIL")
        for result in results:
            style = _STATUS_STYLE[result.status.value]
            table.add_row(
                result.name, result.subject, f"[{style}]{result.status.value}[/]", result.detail
            )
        console().print(table)
    raise click.exceptions.Exit(exit_code(overall(results)))
