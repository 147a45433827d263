"""``daemon``: run plans on their schedules until stopped; ``queue`` and ``points``: what the
daemons are doing and what they did, from the catalog (so every daemon sharing it shows)."""

from __future__ import annotations

import os

import click

from bbr_orchestrator.cli.app import Context, pass_context


@click.command("daemon")
@pass_context
def daemon(ctx: Context) -> None:
    """Run the scheduler: fire each plan on its schedule, one restore point per firing.

    SIGTERM stops taking new work and lets running bbr commands finish within
    daemon.shutdown_grace (then cancels them, with cleanup); SIGHUP reloads the config after
    validating it. Several daemons may share one PostgreSQL or MySQL catalog: each firing runs
    once, and a target never has two runs at once.
    """
    from bbr_orchestrator.adapters.clock import SystemClock
    from bbr_orchestrator.service.daemon import Daemon
    from bbr_orchestrator.service.wiring import notifier

    config = ctx.config()
    runner = Daemon(ctx.config_path, config, notifier(os.environ), SystemClock())
    runner.install_signal_handlers()
    raise click.exceptions.Exit(runner.run())


@click.command("reload")
@pass_context
def reload(ctx: Context) -> None:
    """Validate the config file, then ask the running daemon to reload it (SIGHUP).

    An invalid file is reported here (every problem, by path; exit 2) and the daemon is not
    disturbed. Under systemd, `systemctl reload bbr-orchestrator` does the same.
    """
    import signal

    from bbr_orchestrator.errors import DaemonNotRunning
    from bbr_orchestrator.service.lifecycle import pid_file

    config = ctx.config()  # raises ConfigError (exit 2) listing every problem
    path = pid_file(config)
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise DaemonNotRunning(str(path), str(exc)) from exc
    click.echo(f"config {ctx.config_path} is valid; asked daemon {pid} to reload it")


@click.command("queue")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def queue(ctx: Context, as_json: bool) -> None:
    """Restore points in progress and each of their steps (running, queued, done)."""
    from bbr_orchestrator.cli.render import console, points_table, run_record, to_json
    from bbr_orchestrator.core.models import ACTIVE_STATES, RestorePointState, RunFilter
    from bbr_orchestrator.service.wiring import open_catalog

    with open_catalog(ctx.config()) as catalog:
        active = (RestorePointState.QUEUED, RestorePointState.RUNNING)
        points = catalog.list_restore_points(states=active, limit=500)
        steps = {
            p.id: catalog.list_runs(RunFilter(restore_point_id=p.id, limit=500)) for p in points
        }
        loose = [
            r
            for r in catalog.list_runs(RunFilter(states=frozenset(ACTIVE_STATES), limit=500))
            if r.restore_point_id is None
        ]
    if as_json:
        data = {
            "restore_points": [
                {**to_dict(p), "steps": [run_record(r) for r in sorted(steps[p.id], key=_step)]}
                for p in points
            ],
            "other_active_runs": [run_record(r) for r in loose],
        }
        click.echo(to_json(data))
        return
    if not points and not loose:
        click.echo("nothing queued or running")
        return
    console().print(points_table(points, steps, loose))


@click.command("points")
@click.option("--plan", default=None, help="Only this plan.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@pass_context
def points(ctx: Context, plan: str | None, limit: int, as_json: bool) -> None:
    """Restore points (plan firings), newest first: complete, partial, failed, missed..."""
    from bbr_orchestrator.cli.render import console, points_table, to_json
    from bbr_orchestrator.core.models import RunFilter
    from bbr_orchestrator.service.wiring import open_catalog

    with open_catalog(ctx.config()) as catalog:
        found = catalog.list_restore_points(plan=plan, limit=limit)
        steps = {
            p.id: catalog.list_runs(RunFilter(restore_point_id=p.id, limit=500)) for p in found
        }
    if as_json:
        click.echo(to_json([to_dict(p) for p in found]))
        return
    if not found:
        click.echo("no restore points recorded")
        return
    console().print(points_table(found, steps, []))


def to_dict(value: object) -> dict[str, object]:
    from bbr_orchestrator.cli.render import plain

    data = plain(value)
    return data if isinstance(data, dict) else {}


def _step(run: object) -> int:
    return getattr(run, "step", None) or 0
