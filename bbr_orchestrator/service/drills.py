"""Restore drills from config: what both ``bbr-orchestrator drill`` and the daemon call."""

from __future__ import annotations

from bbr_orchestrator.actions.drill import Drill, run_restore_drill
from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.config import Config
from bbr_orchestrator.config.schema import DrillConfig, PlanConfig
from bbr_orchestrator.core.models import Run
from bbr_orchestrator.errors import DrillRefused
from bbr_orchestrator.ports import CancelToken, Catalog, Clock, LineSink
from bbr_orchestrator.service import wiring


def run_drill(
    config: Config,
    catalog: Catalog,
    clock: Clock,
    plan: PlanConfig,
    drill: DrillConfig,
    requester: Requester,
    *,
    cancel: CancelToken | None = None,
    observer: LineSink | None = None,
) -> Run:
    """Restore the latest complete restore point's backup of ``drill.source`` into the drill
    target, time it (RTO), run the smoke command, and return the finished DRILL run.

    Raises ``DrillRefused`` (nothing recorded) when there is no complete restorable backup of
    ``drill.source`` (or the drill target is the source without ``allow_source_as_target``),
    and ``TargetBusy`` when the drill target is held (the drill run recorded as cancelled,
    outcome ``target-busy``, like ``restore_backup`` does). Secrets are resolved here. The
    caller keeps ``requester.daemon_instance``'s heartbeat going while the drill runs."""
    if drill.target == drill.source and not drill.allow_source_as_target:
        raise DrillRefused(
            plan.name,
            drill.source,
            f"the drill target {drill.target} is the source itself "
            "(set allow_source_as_target to restore over it)",
        )
    spec = wiring.target_run(config, drill.target, plan.name)
    smoke = tuple(drill.smoke_command) if drill.smoke_command else None
    return run_restore_drill(
        catalog,
        wiring.jumpbox_connector(config, drill.target),
        clock,
        wiring.storage(config).store,
        Drill(plan.name, drill.source, spec, smoke),
        requester,
        cancel=cancel,
        observer=observer,
    )
