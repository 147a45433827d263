"""Root command group, shared options, and the one place errors become exit codes."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click

from bbr_orchestrator import __version__
from bbr_orchestrator.adapters.allocator import tune_allocator
from bbr_orchestrator.config import Config, load_config
from bbr_orchestrator.errors import OrchestratorError
from bbr_orchestrator.log import configure_logging

DEFAULT_CONFIG = Path("/etc/bbr-orchestrator/config.yml")

EXIT_CODES = """\b
Exit codes:
  0  success
  1  the operation failed (a bbr run, an upload)
  2  bad usage or invalid config (every problem is listed)
  3  the catalog cannot be used (unreachable, or not migrated: run `db upgrade`)
  4  no such run
  5  a run was not in the expected state (another process changed it)
  6  a sandbox process failed to start
  7  the object store refused or failed a request
`check` exits like a monitoring plugin instead: 0 OK, 1 WARNING, 2 CRITICAL.
"""


@dataclass
class Context:
    """What every subcommand gets: where the config is, loaded on first use."""

    config_path: Path
    log_level: str | None
    _config: Config | None = None

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            configure_logging(
                self.log_level or self._config.logging.level, self._config.logging.format.value
            )
        return self._config


pass_context = click.make_pass_decorator(Context)


@click.group(epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_CONFIG,
    show_default=True,
    envvar="BBR_ORCHESTRATOR_CONFIG",
    show_envvar=True,
    help="Config file.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Override logging.level from the config.",
)
@click.version_option(__version__, prog_name="bbr-orchestrator")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, log_level: str | None) -> None:
    """Run BOSH Backup and Restore on a schedule, stream the artifacts to S3-compatible
    storage, and record every run in a SQL catalog."""
    configure_logging(log_level or "warning", "auto")
    ctx.obj = Context(config_path=config_path, log_level=log_level)


def _register() -> None:
    from bbr_orchestrator.cli import (
        catalog_cmd,
        check_cmd,
        config_cmd,
        daemon_cmd,
        db_cmd,
        drill_cmd,
        plans_cmd,
        prune_cmd,
        restore_cmd,
        run_cmd,
        runs_cmd,
        verify_cmd,
    )

    cli.add_command(config_cmd.config_group)
    cli.add_command(db_cmd.db_group)
    cli.add_command(catalog_cmd.catalog_group)
    cli.add_command(runs_cmd.runs_group)
    cli.add_command(run_cmd.run)
    cli.add_command(plans_cmd.plans)
    cli.add_command(check_cmd.check)
    cli.add_command(daemon_cmd.daemon)
    cli.add_command(daemon_cmd.queue)
    cli.add_command(daemon_cmd.reload)
    cli.add_command(verify_cmd.verify)
    cli.add_command(restore_cmd.restore)
    cli.add_command(daemon_cmd.points)
    cli.add_command(drill_cmd.drill)
    cli.add_command(prune_cmd.prune)
    cli.add_command(prune_cmd.pin)
    cli.add_command(prune_cmd.unpin)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: turns ``OrchestratorError`` into a message and an exit code."""
    tune_allocator()
    try:
        # Without standalone mode click returns the code of a ``click.exceptions.Exit``.
        code = cli.main(args=argv, prog_name="bbr-orchestrator", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OrchestratorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
