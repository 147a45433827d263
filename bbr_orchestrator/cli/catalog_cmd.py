"""``catalog rebuild``: recreate the catalog's backup runs from the manifests in the bucket."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bbr_orchestrator.cli.app import Context, pass_context

if TYPE_CHECKING:
    from bbr_orchestrator.actions.catalog_rebuild import RebuildReport

_KEYS_SHOWN = 5


@click.group("catalog")
def catalog_group() -> None:
    """Maintain the catalog from the object store."""


@catalog_group.command("rebuild")
@click.option("--dry-run", is_flag=True, help="Show what would be recreated; write nothing.")
@pass_context
def rebuild(ctx: Context, dry_run: bool) -> None:
    """Recreate the catalog's backup runs, their artifact rows and their restore points from
    the manifests in the object store, so a lost catalog database loses no backup.

    Runs the catalog already holds are left alone (running it again adds nothing). What the
    bucket does not hold is not recreated: run logs, exit codes, verification results, and
    runs that stored nothing. A restore point comes back partial when it lacks a backup of a
    target its plan's earlier points hold (and the plan still backs up), else complete.

    The catalog must be at the schema head: for a new, empty database run
    `bbr-orchestrator db upgrade` first.

    Prints what was found; exits 0, or 1 when a manifest could not be used (each is named).
    Objects without a manifest (unfinished uploads, or one in progress) are listed as
    orphans, with their keys, and get no rows.
    """
    from bbr_orchestrator.actions.catalog_rebuild import rebuild_catalog
    from bbr_orchestrator.adapters.clock import SystemClock
    from bbr_orchestrator.service.wiring import open_catalog, storage

    config = ctx.config()
    plans = {plan.name: tuple(plan.targets) for plan in config.plans}
    with open_catalog(config) as catalog:
        report = rebuild_catalog(
            catalog,
            storage(config).store,
            config.object_store.prefix,
            SystemClock(),
            dry_run=dry_run,
            plan_targets=plans,
        )
    where = f"s3://{config.object_store.bucket}/{config.object_store.prefix}".rstrip("/")
    click.echo("\n".join(report_lines(report, where)))
    if report.problems:
        raise click.exceptions.Exit(1)


def report_lines(report: RebuildReport, where: str) -> list[str]:
    """The report as an operator reads it: counts, then each run, point, problem and orphan."""
    verb = "would be rebuilt" if report.dry_run else "rebuilt"
    lines = [
        f"catalog rebuild from {where}" + (" (dry run: nothing written)" if report.dry_run else ""),
        f"manifests found: {len(report.manifests)}",
        f"runs {verb}: {len(report.rebuilt)}",
    ]
    for entry in report.rebuilt:
        run, update = entry.run, entry.update
        point = (
            f" restore point {run.restore_point_id} step {run.step}" if run.restore_point_id else ""
        )
        lines.append(
            f"  {run.id} {run.kind.value} {run.target}{point}: {len(entry.artifacts)} objects, "
            f"{update.bytes_total} bytes, from {entry.manifest_key}"
        )
    lines.append(f"already in the catalog: {len(report.present)}")
    lines.append(f"restore points {verb}: {len(report.points)}")
    for rebuilt in report.points:
        p = rebuilt.point
        lines.append(f"  {p.id} plan {p.plan}: {p.state.value} ({p.summary})")
    lines.append(f"problems: {len(report.problems)}")
    lines.extend(f"  {problem}" for problem in report.problems)
    lines.append(f"orphans (objects without a manifest, no rows): {len(report.orphans)}")
    for orphan in report.orphans:
        lines.append(f"  {orphan.directory} ({len(orphan.keys)} objects: {orphan.reason})")
        lines.extend(f"    {key}" for key in orphan.keys[:_KEYS_SHOWN])
        if len(orphan.keys) > _KEYS_SHOWN:
            lines.append(f"    ... and {len(orphan.keys) - _KEYS_SHOWN} more")
    return lines
