"""``verify``: re-check a stored backup from the object store alone."""

from __future__ import annotations

import click

from bbr_orchestrator.cli.app import Context, pass_context


@click.command("verify")
@click.argument("run_id", metavar="RUN_ID|latest")
@click.option("--target", default=None, help="With `latest`: the newest backup of this target.")
@pass_context
def verify(ctx: Context, run_id: str, target: str | None) -> None:
    """Re-read a stored backup and check every object's SHA-256 and every tar member against
    bbr's metadata, without touching the platform or the jumpbox.

    The result is recorded as a verify run; a damaged backup is marked not restorable.
    Exits 0 when the backup is intact, 1 otherwise.
    """
    from bbr_orchestrator.actions.heartbeat import Heartbeat, owner_id
    from bbr_orchestrator.actions.run_claim import Requester
    from bbr_orchestrator.actions.verify_run import verify_run
    from bbr_orchestrator.adapters.clock import SystemClock
    from bbr_orchestrator.cli.run_cmd import operator
    from bbr_orchestrator.core.models import RunFilter, RunKind, RunState, Trigger
    from bbr_orchestrator.errors import RunNotFound
    from bbr_orchestrator.service.wiring import open_catalog, storage

    config = ctx.config()
    clock = SystemClock()
    owner = owner_id("cli")
    with (
        open_catalog(config) as catalog,
        Heartbeat(catalog, clock, owner, config.daemon.heartbeat_interval.total_seconds()),
    ):
        if run_id == "latest":
            found = catalog.list_runs(
                RunFilter(
                    target=target,
                    kind=RunKind.BACKUP,
                    state=RunState.SUCCEEDED,
                    limit=1,
                    deleted=False,
                )
            )
            if not found:
                raise RunNotFound(
                    "latest", f"no succeeded backup{f' of {target}' if target else ''}"
                )
            backup = found[0]
        else:
            backup = catalog.get_run(run_id)
        if backup.kind not in (RunKind.BACKUP, RunKind.OPSMAN_EXPORT):
            raise click.UsageError(f"run {backup.id} is a {backup.kind.value}, not a backup")
        if backup.deletion_started:
            raise click.UsageError(f"backup {backup.id} was deleted by retention")
        store = storage(config).store
        finished = verify_run(
            catalog, clock, store, backup, Requester(Trigger.OPERATOR, operator(), owner)
        )
    click.echo(
        f"verify {finished.id}: backup {backup.id} of {backup.target} "
        f"{'intact' if finished.state is RunState.SUCCEEDED else finished.outcome}"
    )
    if finished.state is not RunState.SUCCEEDED:
        if finished.error_summary:
            click.echo(finished.error_summary, err=True)
        click.echo(f"details: bbr-orchestrator runs logs {finished.id}", err=True)
        raise click.exceptions.Exit(1)
