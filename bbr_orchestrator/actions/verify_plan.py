"""A plan's verify job: which stored backups one firing re-checks, each as a verify run.

``latest`` re-reads the newest succeeded backup of every target of the plan, in full.
``rolling`` re-reads one slice (``core.rolling``) of every retained succeeded backup of the
plan: a backup the plan stored that still has its manifest recorded in the catalog.

A store that cannot be read says nothing about the backups: the verify that met the outage
ends failed (``error``), and so, without another attempt, does every verify after it in the
same firing; no backup is judged by them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import structlog

from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.actions.verify_backup import Select
from bbr_orchestrator.actions.verify_run import manifest_key_of, record_not_verified, verify_run
from bbr_orchestrator.core.layout import ManifestObject
from bbr_orchestrator.core.models import Run, RunFilter, RunKind, RunState
from bbr_orchestrator.core.rolling import RollingSlice
from bbr_orchestrator.ports import CancelToken, Catalog, Clock, ObjectStore

log = structlog.get_logger(__name__)

VerifyMode = Literal["latest", "rolling"]
#: Kinds of run that store a backup with a manifest (what a verify can re-check).
STORED_KINDS = (RunKind.BACKUP, RunKind.OPSMAN_EXPORT)
#: Most backups one target's history is searched for (far more than any retention keeps).
MAX_BACKUPS_PER_TARGET = 10_000


def verify_plan(
    catalog: Catalog,
    clock: Clock,
    store: ObjectStore,
    plan_name: str,
    targets: Sequence[str],
    mode: VerifyMode,
    percent: int,
    slice_index: int,
    requester: Requester,
    *,
    cancel: CancelToken | None = None,
) -> list[Run]:
    """Verify the backups ``mode`` picks (``percent`` and ``slice_index``, the number of
    earlier firings of the job, choose a rolling verify's slice) and return the finished verify
    runs, oldest first. ``cancel`` stops it between backups (the rest are not recorded)."""
    select: Select | None = None
    if mode == "latest":
        backups, which = latest_backups(catalog, targets), "the newest backup of each target"
    elif mode == "rolling":
        rolling = RollingSlice(percent, slice_index)
        backups, which = retained_backups(catalog, plan_name, targets), rolling.describe()
        select = _selector(rolling)
    else:
        raise ValueError(f"unknown verify mode {mode!r} (latest or rolling)")
    bound = log.bind(plan=plan_name, mode=mode)
    bound.info("plan_verify_started", backups=len(backups), checks=which)
    runs: list[Run] = []
    outage: str | None = None
    for backup in backups:
        if cancel is not None and cancel.is_set():
            bound.warning(
                "plan_verify_cancelled", verified=len(runs), left=len(backups) - len(runs)
            )
            break
        if outage is not None:
            runs.append(record_not_verified(catalog, clock, backup, requester, outage))
            continue
        run = verify_run(catalog, clock, store, backup, requester, select=select)
        runs.append(run)
        if run.outcome == "error":
            outage = f"the object store failed while verifying backup {backup.id}: " + (
                run.error_summary or "unknown error"
            )
    failed = [r for r in runs if r.state is not RunState.SUCCEEDED]
    bound.info("plan_verify_finished", runs=len(runs), failed=len(failed))
    return runs


def latest_backups(catalog: Catalog, targets: Sequence[str]) -> list[Run]:
    """The newest succeeded stored backup of each target (targets never backed up: none;
    backups retention deleted are passed over)."""
    found: list[Run] = []
    for target in dict.fromkeys(targets):
        newest = [
            runs[0]
            for kind in STORED_KINDS
            if (runs := catalog.list_runs(_succeeded(target, kind, None, 1)))
        ]
        if newest:
            found.append(max(newest, key=lambda r: (r.created_at, r.id)))
    return found


def retained_backups(catalog: Catalog, plan_name: str, targets: Sequence[str]) -> list[Run]:
    """Every succeeded backup the plan stored of ``targets`` whose manifest is still recorded,
    oldest first."""
    found = [
        run
        for target in dict.fromkeys(targets)
        for kind in STORED_KINDS
        for run in catalog.list_runs(_succeeded(target, kind, plan_name, MAX_BACKUPS_PER_TARGET))
    ]
    retained = [run for run in found if manifest_key_of(catalog, run) is not None]
    return sorted(retained, key=lambda r: (r.created_at, r.id))


def _selector(rolling: RollingSlice) -> Select:
    def select(obj: ManifestObject) -> bool:
        return rolling.selects(obj.key)

    return select


def _succeeded(target: str, kind: RunKind, plan: str | None, limit: int) -> RunFilter:
    return RunFilter(
        plan=plan, target=target, kind=kind, state=RunState.SUCCEEDED, limit=limit, deleted=False
    )
