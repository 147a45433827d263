"""``drill PLAN [--drill DRILL_TARGET]``: run a plan's restore drills now."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from bbr_orchestrator.cli.app import Context, pass_context
from bbr_orchestrator.core.models import LogStream, RunState

if TYPE_CHECKING:
    from bbr_orchestrator.config import Config
    from bbr_orchestrator.config.schema import DrillConfig, PlanConfig
    from bbr_orchestrator.core.models import Run
    from bbr_orchestrator.ports import Catalog

EXIT_FAILED = 1
EXIT_BUSY = 5


def _drills(config: Config, plan: str, target: str | None) -> tuple[PlanConfig, list[DrillConfig]]:
    """The plan and its drills to run (all, or the one into ``target``); a usage error naming
    the plan when there is nothing to run."""
    found = next((p for p in config.plans if p.name == plan), None)
    if found is None:
        known = ", ".join(p.name for p in config.plans) or "none configured"
        raise click.UsageError(f"no plan {plan!r} (plans: {known})")
    if not found.drills:
        raise click.UsageError(f"plan {plan!r} has no drills configured (plans[].drills)")
    chosen = [d for d in found.drills if target in (None, d.target)]
    if not chosen:
        targets = ", ".join(d.target for d in found.drills)
        raise click.UsageError(
            f"plan {plan!r} has no drill into {target!r} (its drill targets: {targets})"
        )
    return found, chosen


def _echo_line(stream: LogStream, text: str) -> None:
    prefix = {LogStream.STDOUT: "", LogStream.STDERR: "! ", LogStream.EVENT: "==> "}[stream]
    click.echo(prefix + text, err=True)


def _rto(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _report(catalog: Catalog, run: Run, drill: DrillConfig) -> None:
    from bbr_orchestrator.actions.drill import smoke_result

    point = "-"
    if run.subject_run_id:
        point = catalog.get_run(run.subject_run_id).restore_point_id or "-"
    rows = [
        ("backup restored", f"{run.subject_run_id or '-'} (restore point {point})"),
        ("rto", _rto(run.rto_seconds)),
        ("smoke", smoke_result(run, bool(drill.smoke_command))),
        ("state", f"{run.state.value} ({run.outcome or '-'})"),
    ]
    click.echo(f"drill {run.id}: {drill.source} -> {drill.target}")
    for key, value in rows:
        click.echo(f"  {key + ':':<16} {value}")
    if run.state is not RunState.SUCCEEDED:
        if run.error_summary:
            click.echo(run.error_summary, err=True)
        click.echo(f"details: bbr-orchestrator runs show {run.id}", err=True)


@click.command("drill")
@click.argument("plan")
@click.option(
    "--drill",
    "drill_target",
    default=None,
    metavar="DRILL_TARGET",
    help="Only the plan's drill into this target.",
)
@click.option(
    "--live/--quiet",
    default=None,
    help="Show bbr's output as it arrives (default: when stderr is a terminal).",
)
@pass_context
def drill(ctx: Context, plan: str, drill_target: str | None, live: bool | None) -> None:
    """Run PLAN's restore drills now (or only the one into DRILL_TARGET).

    Each drill restores the source's backup of PLAN's newest complete restore point (one a
    verification found damaged is skipped for an older one) into the drill target named in the
    config (a sandbox), records the time to restore (RTO), then runs the smoke command, if any,
    on the jumpbox. No confirmation is asked: the config names the drill target, and it is
    never the source unless the config explicitly allows it. Ctrl-C cancels cleanly.
    Exits 0 when every drill succeeded, 1 when any failed or was refused (no restorable
    backup), 5 when a drill target was held by another run (and none failed).
    """
    from bbr_orchestrator.actions.heartbeat import Heartbeat, owner_id
    from bbr_orchestrator.actions.run_claim import Requester
    from bbr_orchestrator.adapters.clock import SystemClock
    from bbr_orchestrator.cli.run_cmd import cancel_on_signals, operator
    from bbr_orchestrator.core.models import Trigger
    from bbr_orchestrator.errors import DrillRefused, TargetBusy
    from bbr_orchestrator.service.drills import run_drill
    from bbr_orchestrator.service.wiring import open_catalog

    config = ctx.config()
    plan_config, drills = _drills(config, plan, drill_target)
    show = sys.stderr.isatty() if live is None else live
    clock = SystemClock()
    owner = owner_id("cli")
    failed = busy = False
    with (
        open_catalog(config) as catalog,
        Heartbeat(catalog, clock, owner, config.daemon.heartbeat_interval.total_seconds()),
        cancel_on_signals() as cancel,
    ):
        for item in drills:
            if cancel.is_set():
                click.echo(f"drill {item.source} -> {item.target}: not started (cancelled)")
                failed = True
                continue
            try:
                finished = run_drill(
                    config,
                    catalog,
                    clock,
                    plan_config,
                    item,
                    Requester(Trigger.OPERATOR, operator(), owner),
                    cancel=cancel,
                    observer=_echo_line if show else None,
                )
            except DrillRefused as exc:
                click.echo(f"drill {item.source} -> {item.target}: refused: {exc.reason}")
                failed = True
                continue
            except TargetBusy as exc:
                click.echo(f"drill {exc.run_id}: {item.source} -> {item.target}: {exc}")
                busy = True
                continue
            _report(catalog, finished, item)
            failed = failed or finished.state is not RunState.SUCCEEDED
    if failed:
        raise click.exceptions.Exit(EXIT_FAILED)
    if busy:
        raise click.exceptions.Exit(EXIT_BUSY)
