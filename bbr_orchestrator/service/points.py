"""Launching restore points: claim the firing in the catalog, queue its steps, run them in a
worker thread. A firing another daemon already claimed is left to it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog

from bbr_orchestrator.actions.backup_storage import Storage
from bbr_orchestrator.actions.prune import PruneReport, prune_plan
from bbr_orchestrator.actions.restore_point import (
    PointContext,
    StopSignal,
    queue_steps,
    run_restore_point,
)
from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.config import Config
from bbr_orchestrator.config.schema import PlanConfig
from bbr_orchestrator.core.checks import CheckStatus
from bbr_orchestrator.core.models import (
    NewRestorePoint,
    RestorePoint,
    RestorePointState,
    RestorePointUpdate,
    RunFilter,
    RunState,
    RunUpdate,
    Trigger,
    new_run_id,
)
from bbr_orchestrator.core.retention import Policy
from bbr_orchestrator.errors import FiringTaken, OrchestratorError, RunConflict
from bbr_orchestrator.ports import CancelToken, Catalog, Clock, ObjectStore
from bbr_orchestrator.service.checks import run_checks
from bbr_orchestrator.service.plan_steps import plan_steps
from bbr_orchestrator.service.slots import Slots
from bbr_orchestrator.service.workers import Workers

log = structlog.get_logger(__name__)


class PointLauncher:
    """Starts restore points and keeps track of their worker threads."""

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        slots: Slots,
        owner: str,
        stop: StopSignal,
        cancel: CancelToken,
    ) -> None:
        self._catalog = catalog
        self._clock = clock
        self._slots = slots
        self._owner = owner
        self._stop = stop
        self._cancel = cancel
        self._workers = Workers()

    def launch(
        self, config: Config, plan: PlanConfig, scheduled_for: datetime | None, trigger: Trigger
    ) -> RestorePoint | None:
        """Claim the firing and start it; None when another claim got there first."""
        now = self._clock.now()
        who = f"schedule {plan.schedule} ({plan.timezone})" if trigger is Trigger.SCHEDULE else ""
        try:
            point = self._catalog.create_restore_point(
                NewRestorePoint(
                    id=new_run_id(now, secrets.token_hex(4)),
                    plan=plan.name,
                    trigger=trigger,
                    triggered_by=who or self._owner,
                    created_at=now,
                    scheduled_for=scheduled_for,
                    daemon_instance=self._owner,
                )
            )
        except FiringTaken as exc:
            log.info("firing_taken", plan=plan.name, scheduled_for=scheduled_for, by=exc.holder)
            return None
        except OrchestratorError as exc:
            log.error("firing_not_claimed", plan=plan.name, error=str(exc))
            return None
        log.info("firing_claimed", plan=plan.name, restore_point_id=point.id,
                 scheduled_for=scheduled_for)  # fmt: skip
        self._workers.start(f"plan-{plan.name}", lambda: self._work(config, plan, point))
        return point

    def record_missed(self, plan: PlanConfig, scheduled_for: datetime, why: str) -> None:
        """Record a firing that will not run (unless some daemon already recorded it)."""
        now = self._clock.now()
        try:
            self._catalog.create_restore_point(
                NewRestorePoint(
                    id=new_run_id(now, secrets.token_hex(4)),
                    plan=plan.name,
                    trigger=Trigger.SCHEDULE,
                    triggered_by=f"schedule {plan.schedule} ({plan.timezone})",
                    created_at=now,
                    scheduled_for=scheduled_for,
                    daemon_instance=self._owner,
                    state=RestorePointState.MISSED,
                    summary=f"missed: {why} (more than the misfire grace late)",
                )
            )
            log.warning("firing_missed", plan=plan.name, scheduled_for=scheduled_for, why=why)
        except FiringTaken:
            return
        except OrchestratorError as exc:
            log.error("missed_firing_not_recorded", plan=plan.name, error=str(exc))

    def active(self) -> int:
        return self._workers.active()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the workers."""
        self._workers.join(timeout)

    def _work(self, config: Config, plan: PlanConfig, point: RestorePoint) -> None:
        bound = log.bind(restore_point_id=point.id, plan=plan.name)
        try:
            requester = Requester(point.trigger, f"plan {plan.name}", self._owner)
            storage: list[Storage] = []

            def shared_storage() -> Storage:
                if not storage:
                    from bbr_orchestrator.service.wiring import storage as make_storage

                    storage.append(make_storage(config, plan=plan.name))
                return storage[0]

            steps = plan_steps(config, plan, self._catalog, self._clock, requester, shared_storage)
            ctx = PointContext(
                self._catalog, self._clock, self._slots, self._stop, self._cancel, requester,
                stop_on_failure=plan.stop_on_failure,
            )  # fmt: skip
            queued = queue_steps(ctx, point, steps)
            if config.daemon.preflight_checks:
                self._preflight(config, plan, bound)
            run_restore_point(ctx, point, steps, queued)
        except Exception as exc:  # noqa: BLE001 - a worker must end its restore point, always
            bound.exception("restore_point_broke", error=str(exc))
            self._fail(point, f"the daemon could not run this restore point: {exc}")
            return
        if not self._stop.is_set():
            prune_after_point(self._catalog, self._clock, plan, lambda: shared_storage().store)

    def _preflight(self, config: Config, plan: PlanConfig, bound: structlog.BoundLogger) -> None:
        """The ``check`` records, logged (bbr's own check is a step of the plan)."""
        for result in run_checks(config, targets=list(plan.targets), pre_backup_checks=False):
            level = "info" if result.status is CheckStatus.OK else "warning"
            getattr(bound, level)(
                "preflight_check",
                check=result.name,
                subject=result.subject,
                status=result.status.value,
                detail=result.detail,
            )

    def _fail(self, point: RestorePoint, summary: str) -> None:
        """Close the restore point and every step still active (queued: cancelled; running:
        failed), so no row stays active behind this daemon's live heartbeat."""
        active = frozenset({RunState.QUEUED, RunState.RUNNING})
        try:
            steps = self._catalog.list_runs(
                RunFilter(restore_point_id=point.id, states=active, limit=100)
            )
            for run in steps:
                ends = RunState.CANCELLED if run.state is RunState.QUEUED else RunState.FAILED
                outcome = "skipped" if run.state is RunState.QUEUED else "error"
                self._catalog.transition(
                    run.id,
                    [run.state],
                    ends,
                    RunUpdate(finished_at=self._clock.now(), outcome=outcome,
                              error_summary=summary[:2000]),
                )  # fmt: skip
        except OrchestratorError as exc:
            log.error("steps_not_closed", restore_point_id=point.id, error=str(exc))
        try:
            self._catalog.transition_restore_point(
                point.id,
                [RestorePointState.QUEUED, RestorePointState.RUNNING],
                RestorePointState.FAILED,
                RestorePointUpdate(finished_at=self._clock.now(), summary=summary[:2000]),
            )
        except (RunConflict, OrchestratorError) as exc:
            log.error("restore_point_not_closed", restore_point_id=point.id, error=str(exc))


def retention_policy(plan: PlanConfig) -> Policy:
    """The plan's ``retention`` as the pure policy ``core.retention`` plans with."""
    kept = plan.retention
    return Policy(
        keep_last=kept.keep_last or 0,
        keep_daily=kept.keep_daily,
        keep_weekly=kept.keep_weekly,
        keep_monthly=kept.keep_monthly,
        keep_yearly=kept.keep_yearly,
        keep_within=kept.keep_within,
        min_good=kept.min_verified,
        incomplete_keep_for=kept.incomplete_keep_for,
    )


def prune_after_point(
    catalog: Catalog, clock: Clock, plan: PlanConfig, store: Callable[[], ObjectStore]
) -> PruneReport | None:
    """Apply the plan's retention now that one of its restore points finished (the prune logs
    ``prune_finished`` with its counts). A failure is logged (``prune_failed``) and None
    returned: pruning never takes a worker down."""
    try:
        return prune_plan(
            catalog, store(), clock, plan.name, retention_policy(plan), ZoneInfo(plan.timezone)
        )
    except Exception as exc:
        log.exception("prune_failed", plan=plan.name, error=str(exc))
        return None
