"""``config validate`` and ``config example``."""

from __future__ import annotations

from pathlib import Path

import click

from bbr_orchestrator.cli.app import Context, pass_context
from bbr_orchestrator.config import load_config
from bbr_orchestrator.config.example import render_example


@click.group("config")
def config_group() -> None:
    """Check and explain the config file."""


@config_group.command("validate")
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@pass_context
def validate(ctx: Context, file: Path | None) -> None:
    """Check FILE (default: --config) and report every problem at once, each with its path.

    Exits 0 when the file is valid, 2 when it is not.
    """
    path = file or ctx.config_path
    config = load_config(path)
    click.echo(
        f"{path}: valid ({len(config.jumpboxes)} jumpboxes, {len(config.targets)} targets, "
        f"{len(config.plans)} plans)"
    )


@config_group.command("example")
def example() -> None:
    """Print the commented example config (every setting, with its default)."""
    click.echo(render_example(), nl=False)
