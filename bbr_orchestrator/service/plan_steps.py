"""A plan's steps, built from config, in the documented backup order: Ops Manager export,
then directors, then deployments (each after its pre-backup-check when the plan asks)."""

from __future__ import annotations

from collections.abc import Callable

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.bbr_operation import run_operation
from bbr_orchestrator.actions.restore_point import Step
from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.config import Config
from bbr_orchestrator.config.schema import PlanConfig
from bbr_orchestrator.core.bbr_argv import Operation
from bbr_orchestrator.core.models import Run, RunKind, TargetKind
from bbr_orchestrator.ports import CancelToken, Catalog, Clock
from bbr_orchestrator.service import wiring

#: The documented order of a platform backup.
KIND_ORDER = {TargetKind.OPSMAN: 0, TargetKind.DIRECTOR: 1, TargetKind.DEPLOYMENT: 2}


def ordered_targets(config: Config, plan: PlanConfig) -> list[str]:
    """The plan's targets in backup order (stable within a kind: the order the plan lists)."""
    return sorted(plan.targets, key=lambda name: KIND_ORDER[TargetKind(config.target(name).kind)])


def plan_steps(
    config: Config,
    plan: PlanConfig,
    catalog: Catalog,
    clock: Clock,
    requester: Requester,
    storage: Callable[[], Storage],
) -> list[Step]:
    """Every step of one firing of ``plan``. Secrets are resolved when a step starts, so a
    missing secret fails that step (recorded), not the whole plan."""
    steps: list[Step] = []
    for name in ordered_targets(config, plan):
        target = config.target(name)
        kind = TargetKind(target.kind)
        if kind is TargetKind.OPSMAN:
            steps.append(
                Step(name, kind, RunKind.OPSMAN_EXPORT, target.jumpbox,
                     _export(config, plan, name, catalog, clock, requester, storage))
            )  # fmt: skip
            continue
        if plan.pre_backup_check:
            steps.append(
                Step(name, kind, RunKind.PRE_BACKUP_CHECK, target.jumpbox,
                     _bbr(config, plan, name, Operation.PRE_BACKUP_CHECK, catalog, clock,
                          requester, None))
            )  # fmt: skip
        steps.append(
            Step(name, kind, RunKind.BACKUP, target.jumpbox,
                 _bbr(config, plan, name, Operation.BACKUP, catalog, clock, requester, storage),
                 gated_by_previous=plan.pre_backup_check)
        )  # fmt: skip
    return steps


def _bbr(
    config: Config,
    plan: PlanConfig,
    target: str,
    operation: Operation,
    catalog: Catalog,
    clock: Clock,
    requester: Requester,
    storage: Callable[[], Storage] | None,
) -> Callable[[Run, CancelToken], Run]:
    def execute(queued: Run, cancel: CancelToken) -> Run:
        return run_operation(
            catalog,
            wiring.jumpbox_connector(config, target),
            clock,
            wiring.target_run(config, target, plan.name),
            operation,
            requester,
            cancel=cancel,
            storage=storage() if storage is not None else None,
            queued=queued,
        )

    return execute


def _export(
    config: Config,
    plan: PlanConfig,
    target: str,
    catalog: Catalog,
    clock: Clock,
    requester: Requester,
    storage: Callable[[], Storage],
) -> Callable[[Run, CancelToken], Run]:
    from bbr_orchestrator.actions.opsman_export import run_opsman_export

    def execute(queued: Run, cancel: CancelToken) -> Run:
        return run_opsman_export(
            catalog,
            wiring.jumpbox_connector(config, target),
            clock,
            wiring.opsman_run(config, target, plan.name),
            requester,
            cancel=cancel,
            storage=storage(),
            queued=queued,
        )

    return execute
