"""Scheduled jobs besides the plans' backups: each plan's verify job and its restore drills.

Every job is an APScheduler job of its own (``verify:{plan}``, ``drill:{plan}:{target}``) with
its own cron trigger, coalesced, one instance at a time, with the daemon's misfire grace. The
job only claims the firing in the catalog (``claim_job_firing``: one daemon per firing, however
many share the catalog; a firing another daemon took is skipped quietly) and hands the work to
a worker thread, tracked for shutdown like the restore points' workers. A drill waits for a
slot on its target's jumpbox like a plan step; a verify reads the object store only.

On start, a firing missed by less than the misfire grace runs once; older ones are logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from bbr_orchestrator.actions.restore_point import StopSignal
from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.actions.verify_plan import verify_plan
from bbr_orchestrator.config import Config
from bbr_orchestrator.config.schema import DrillConfig, PlanConfig
from bbr_orchestrator.core.models import RunState, Trigger
from bbr_orchestrator.errors import DrillRefused, OrchestratorError, TargetBusy
from bbr_orchestrator.ports import CancelToken, Catalog, Clock
from bbr_orchestrator.service import wiring
from bbr_orchestrator.service.drills import run_drill
from bbr_orchestrator.service.firings import catch_up, current_firing
from bbr_orchestrator.service.schedule import cron_trigger
from bbr_orchestrator.service.slots import Slots
from bbr_orchestrator.service.workers import Workers

log = structlog.get_logger(__name__)

VERIFY_PREFIX = "verify:"
DRILL_PREFIX = "drill:"


@dataclass(frozen=True)
class ScheduledJob:
    """One verify job or drill of a plan, as configured now."""

    id: str
    plan: PlanConfig
    schedule: str
    timezone: str
    drill: DrillConfig | None = None

    @property
    def kind(self) -> str:
        return "verify" if self.drill is None else "drill"

    def trigger(self) -> CronTrigger:
        return cron_trigger(self.schedule, self.timezone)


def scheduled_jobs(config: Config) -> dict[str, ScheduledJob]:
    """Every verify job and drill of the plans that are not paused, by job id."""
    jobs: dict[str, ScheduledJob] = {}
    for plan in config.plans:
        if plan.paused:
            continue
        if plan.verify is not None:
            job_id = f"{VERIFY_PREFIX}{plan.name}"
            jobs[job_id] = ScheduledJob(job_id, plan, plan.verify.schedule, plan.verify.timezone)
        for drill in plan.drills:
            job_id = f"{DRILL_PREFIX}{plan.name}:{drill.target}"
            jobs[job_id] = ScheduledJob(job_id, plan, drill.schedule, drill.timezone, drill)
    return jobs


def is_job_id(job_id: str) -> bool:
    """Whether an APScheduler job id is one of these jobs (not a plan's)."""
    return job_id.startswith((VERIFY_PREFIX, DRILL_PREFIX))


class JobLauncher:
    """Schedules the verify jobs and drills, claims their firings, runs them in workers."""

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        slots: Slots,
        owner: str,
        stop: StopSignal,
        cancel: CancelToken,
        config: Callable[[], Config],
    ) -> None:
        self._catalog = catalog
        self._clock = clock
        self._slots = slots
        self._owner = owner
        self._stop = stop
        self._cancel = cancel
        self._config = config
        self._workers = Workers()

    # -- scheduling ---------------------------------------------------------------------------

    def sync(self, scheduler: BaseScheduler) -> None:
        """Make the scheduler's jobs match the config (start, and every reload)."""
        config = self._config()
        grace = int(config.daemon.misfire_grace.total_seconds())
        wanted = scheduled_jobs(config)
        for job in scheduler.get_jobs():
            if is_job_id(job.id) and job.id not in wanted:
                job.remove()
        for job_id, job in wanted.items():
            scheduler.add_job(
                self.fire,
                job.trigger(),
                args=[job_id],
                id=job_id,
                name=job_id,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=grace,
            )

    def announce(self, now: datetime) -> int:
        """Log each job with its next firing; returns how many there are."""
        jobs = scheduled_jobs(self._config())
        for job in jobs.values():
            upcoming = job.trigger().get_next_fire_time(None, now)
            log.info(
                "job_scheduled",
                job=job.id,
                kind=job.kind,
                schedule=job.schedule,
                timezone=job.timezone,
                next_fire=upcoming.isoformat() if upcoming else None,
            )
        return len(jobs)

    def fire(self, job_id: str) -> None:
        """APScheduler's callback: claim the firing due now and start it."""
        config = self._config()
        job = scheduled_jobs(config).get(job_id)
        if job is None or self._stop.is_set():
            return
        now = self._clock.now()
        scheduled = current_firing(job.trigger(), now, config.daemon.misfire_grace) or now
        self.launch(config, job, scheduled)

    def missed(self, job_id: str, scheduled_for: datetime) -> None:
        """A firing the scheduler could not start within the grace (logged only)."""
        log.warning("job_firing_missed", job=job_id, scheduled_for=scheduled_for.isoformat(),
                    why="missed by the scheduler")  # fmt: skip

    def lasts(self) -> dict[str, datetime | None]:
        """The latest firing of each job (read before the scheduler starts: see catch_up)."""
        lasts: dict[str, datetime | None] = {}
        for job_id in scheduled_jobs(self._config()):
            try:
                lasts[job_id] = self._catalog.last_job_firing(job_id)
            except OrchestratorError as exc:
                log.error("job_catch_up_unknown", job=job_id, error=str(exc))
                lasts[job_id] = None
        return lasts

    def catch_up(self, lasts: dict[str, datetime | None]) -> None:
        """Firings since the last one claimed: the newest within the grace runs now (once,
        whichever daemon claims it); older ones are logged, not recorded."""
        config = self._config()
        now = self._clock.now()
        for job_id, job in scheduled_jobs(config).items():
            result = catch_up(job.trigger(), lasts.get(job_id), now, config.daemon.misfire_grace)
            missed = len(result.missed) + result.not_recorded
            if missed:
                log.warning("job_firings_missed", job=job_id, count=missed,
                            why="no daemon was running")  # fmt: skip
            if result.due is not None:
                log.info("job_firing_caught_up", job=job_id, scheduled_for=result.due.isoformat())
                self.launch(config, job, result.due)

    def launch(self, config: Config, job: ScheduledJob, scheduled_for: datetime) -> bool:
        """Claim the firing and start its worker; False when it was not ours to run, or when
        this daemon still runs the job's previous firing (then it is left unclaimed: one
        instance per daemon, as for the scheduler's own jobs)."""
        if self._workers.running(job.id):
            log.info("job_still_running", job=job.id, skipped=scheduled_for.isoformat())
            return False
        try:
            won = self._catalog.claim_job_firing(
                job.id, scheduled_for, self._owner, self._clock.now()
            )
        except OrchestratorError as exc:
            log.error("job_firing_not_claimed", job=job.id, error=str(exc))
            return False
        if not won:
            log.debug("job_firing_taken", job=job.id, scheduled_for=scheduled_for.isoformat())
            return False
        log.info("job_firing_claimed", job=job.id, scheduled_for=scheduled_for.isoformat())
        self._workers.start(job.id, lambda: self._work(config, job, scheduled_for))
        return True

    # -- workers ------------------------------------------------------------------------------

    def active(self) -> int:
        return self._workers.active()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the workers."""
        self._workers.join(timeout)

    def _work(self, config: Config, job: ScheduledJob, scheduled_for: datetime) -> None:
        bound = log.bind(job=job.id, plan=job.plan.name, scheduled_for=scheduled_for.isoformat())
        requester = Requester(
            Trigger.SCHEDULE,
            f"{job.kind} job of plan {job.plan.name} ({job.schedule}, {job.timezone})",
            self._owner,
        )
        try:
            if job.drill is None:
                self._verify(config, job, scheduled_for, requester, bound)
            else:
                self._drill(config, job, job.drill, scheduled_for, requester, bound)
        except Exception as exc:  # noqa: BLE001 - a worker must log what ended it, always
            bound.exception("job_broke", error=str(exc))

    def _verify(
        self,
        config: Config,
        job: ScheduledJob,
        scheduled_for: datetime,
        requester: Requester,
        bound: structlog.BoundLogger,
    ) -> None:
        verify = job.plan.verify
        if verify is None:  # the config changed under the firing
            return
        rolling = verify.mode == "rolling"
        firing = self._catalog.count_job_firings(job.id, scheduled_for) if rolling else 0
        runs = verify_plan(
            self._catalog,
            self._clock,
            wiring.storage(config).store,
            job.plan.name,
            list(job.plan.targets),
            verify.mode,
            verify.rolling_percent,
            firing,
            requester,
            cancel=self._cancel,
        )
        failed = [r for r in runs if r.state is not RunState.SUCCEEDED]
        if runs:
            self._catalog.attach_job_run(job.id, scheduled_for, (failed or runs)[0].id)
        level = "warning" if failed else "info"
        getattr(bound, level)(
            "verify_job_finished",
            mode=verify.mode,
            firing=firing,
            runs=len(runs),
            failed=len(failed),
            failed_backups=[r.subject_run_id for r in failed],
        )

    def _drill(
        self,
        config: Config,
        job: ScheduledJob,
        drill: DrillConfig,
        scheduled_for: datetime,
        requester: Requester,
        bound: structlog.BoundLogger,
    ) -> None:
        jumpbox = config.target(drill.target).jumpbox
        label = f"{job.id}@{scheduled_for.isoformat()}"
        if not self._slots.acquire(jumpbox, self._stop, label):
            bound.info("drill_not_started", reason="the daemon is stopping")
            return
        try:
            run = run_drill(
                config, self._catalog, self._clock, job.plan, drill, requester, cancel=self._cancel
            )
        except DrillRefused as exc:
            bound.warning("drill_refused", source=exc.source, target=drill.target,
                          reason=exc.reason)  # fmt: skip
            return
        except TargetBusy as exc:
            bound.warning("drill_target_busy", run_id=exc.run_id, target=exc.target,
                          holder=exc.holder)  # fmt: skip
            self._catalog.attach_job_run(job.id, scheduled_for, exc.run_id)
            return
        finally:
            self._slots.release(jumpbox, label)
        self._catalog.attach_job_run(job.id, scheduled_for, run.id)
        level = "info" if run.state is RunState.SUCCEEDED else "warning"
        getattr(bound, level)(
            "drill_finished",
            run_id=run.id,
            target=run.target,
            state=run.state.value,
            outcome=run.outcome,
            rto_seconds=run.rto_seconds,
            subject_run_id=run.subject_run_id,
        )
