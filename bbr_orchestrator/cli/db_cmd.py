"""``db upgrade`` and ``db current``: the catalog's schema migrations."""

from __future__ import annotations

import click

from bbr_orchestrator.cli.app import Context, pass_context


@click.group("db")
def db_group() -> None:
    """Manage the catalog database schema."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_context
def upgrade(ctx: Context, revision: str) -> None:
    """Migrate the catalog to the newest schema (safe to run again)."""
    from bbr_orchestrator.adapters import catalog as sql_catalog
    from bbr_orchestrator.service.wiring import catalog_url

    before, after = sql_catalog.upgrade(catalog_url(ctx.config()), revision)
    if before == after:
        click.echo(f"catalog already at {after}")
    else:
        click.echo(f"catalog migrated from {before or 'empty'} to {after}")


@db_group.command("current")
@pass_context
def current(ctx: Context) -> None:
    """Show the catalog's schema revision and the one this version needs.

    Exits 3 when they differ.
    """
    from bbr_orchestrator.adapters import catalog as sql_catalog
    from bbr_orchestrator.service.wiring import catalog_url

    url = catalog_url(ctx.config())
    have, head = sql_catalog.current_revision(url), sql_catalog.head_revision()
    click.echo(f"current: {have or 'empty'}\nhead:    {head}")
    if have != head:
        raise click.exceptions.Exit(3)
