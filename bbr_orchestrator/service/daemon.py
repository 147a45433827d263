"""The daemon: fires plans on their schedules and drives their restore points, reaps what dead
daemons left behind, and stops, reloads and reports to systemd like a well-behaved service.

Threads: the main thread waits for signals and does the housekeeping (reload, reaping,
watchdog); APScheduler's thread fires plans (claiming the firing in the catalog is all it
does); each restore point runs in its own worker thread, gated by ``Slots``; one heartbeat
thread keeps every active row of this daemon alive in the catalog.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import structlog
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from bbr_orchestrator.actions.heartbeat import Heartbeat, owner_id
from bbr_orchestrator.actions.recovery import reap
from bbr_orchestrator.actions.run_claim import Requester
from bbr_orchestrator.adapters.metrics import DaemonMetrics, MetricsServer
from bbr_orchestrator.config import Config, load_config
from bbr_orchestrator.config.schema import PlanConfig
from bbr_orchestrator.core.models import Trigger
from bbr_orchestrator.errors import ConfigError, OrchestratorError
from bbr_orchestrator.ports import Catalog, Clock
from bbr_orchestrator.service import wiring
from bbr_orchestrator.service.firings import catch_up, current_firing
from bbr_orchestrator.service.jobs import JobLauncher
from bbr_orchestrator.service.lifecycle import Notifier, PidFile, pid_file
from bbr_orchestrator.service.metrics_feed import MetricsFeed
from bbr_orchestrator.service.points import PointLauncher
from bbr_orchestrator.service.schedule import plan_schedules, trigger
from bbr_orchestrator.service.slots import Slots

log = structlog.get_logger(__name__)

_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Daemon:
    """One daemon process. ``run()`` returns the exit code (0 after a clean stop)."""

    def __init__(
        self,
        config_path: Path,
        config: Config,
        notifier: Notifier,
        clock: Clock,
        tick_seconds: float = 1.0,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.notifier = notifier
        self.clock = clock
        self.tick = tick_seconds
        self.owner = owner_id("daemon")
        self.stop_requested = threading.Event()
        self.cancel = threading.Event()
        self._reload_requested = threading.Event()
        self._wake = threading.Event()
        self._reaper: threading.Thread | None = None
        self._jobs: JobLauncher | None = None
        self.metrics: DaemonMetrics = wiring.daemon_metrics()
        self._feed: MetricsFeed | None = None

    # -- signals ------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_requested.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested.set()
        self._wake.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.request_reload()
        else:
            self.request_stop()

    def install_signal_handlers(self) -> None:
        for signum in _HANDLED:
            signal.signal(signum, self._on_signal)
        # A parent (a CI runner, a nohup wrapper) may hand these down blocked.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)

    # -- main loop ----------------------------------------------------------------------------

    def run(self) -> int:
        config = self.config
        with wiring.open_catalog(config) as catalog, PidFile(pid_file(config)):
            heartbeat = Heartbeat(
                catalog, self.clock, self.owner, config.daemon.heartbeat_interval.total_seconds()
            )
            slots = Slots(config.daemon.max_parallel, _per_jumpbox(config))
            launcher = PointLauncher(
                catalog, self.clock, slots, self.owner, self.stop_requested, self.cancel
            )
            jobs = self._jobs = JobLauncher(
                catalog, self.clock, slots, self.owner, self.stop_requested, self.cancel,
                lambda: self.config,
            )  # fmt: skip
            scheduler = BackgroundScheduler(timezone=UTC)
            scheduler.add_listener(lambda event: self._on_missed(launcher, event), EVENT_JOB_MISSED)
            self._schedule(scheduler, launcher, config)
            server = self._serve_metrics(catalog, config)
            heartbeat.start()
            try:
                self._reap(catalog)
                # The last firing of each plan is read before the scheduler starts (it may claim
                # a new one at once), and the catch-up runs after (no firing falls in between).
                lasts = {p.name: catalog.last_scheduled_for(p.name) for p in config.plans}
                job_lasts = jobs.lasts()
                scheduler.start()
                self._catch_up(lasts, launcher, config)
                jobs.catch_up(job_lasts)
                self._announce(config)
                self._loop(catalog, scheduler, launcher, slots)
            finally:
                self._shutdown(scheduler, launcher)
                heartbeat.stop()
                if server is not None:
                    server.shutdown()
                if self._feed is not None:
                    self._feed.stop()
        log.info("daemon_stopped", owner=self.owner)
        return 0

    def _serve_metrics(self, catalog: Catalog, config: Config) -> MetricsServer | None:
        """Rebuild every metric from the catalog (and probe once) BEFORE listening, so the
        first scrape after a start is already complete; then keep them fresh."""
        if not config.metrics.enabled:
            return None
        from bbr_orchestrator import __version__

        self._count_plans(config)
        self._feed = MetricsFeed(catalog, self.clock, config, self.metrics.publish, __version__)
        self._feed.start()
        try:
            server = self.metrics.serve(config.metrics.listen_address, config.metrics.port)
        except OrchestratorError:
            self._feed.stop()
            raise
        log.info("metrics_listening", url=_metrics_url(config, server.port))
        return server

    def _count_plans(self, config: Config) -> None:
        paused = sum(p.paused for p in config.plans)
        self.metrics.set_plans(len(config.plans) - paused, paused)

    def _announce(self, config: Config) -> None:
        plans = plan_schedules(config.plans, self.clock.now())
        for plan in plans:
            log.info(
                "plan_scheduled",
                plan=plan.plan,
                schedule=plan.schedule,
                timezone=plan.timezone,
                paused=plan.paused,
                next_fire=plan.next_fire.isoformat() if plan.next_fire else None,
            )
        jobs = self._jobs.announce(self.clock.now()) if self._jobs is not None else 0
        log.info("daemon_started", owner=self.owner, plans=len(plans), jobs=jobs)
        self.notifier.ready(f"running {len(plans)} plan(s)")

    def _loop(
        self,
        catalog: Catalog,
        scheduler: BackgroundScheduler,
        launcher: PointLauncher,
        slots: Slots,
    ) -> None:
        watchdog = self.notifier.watchdog_interval()
        reap_every = self.config.daemon.heartbeat_interval.total_seconds()
        next_reap = time.monotonic() + reap_every
        next_ping = time.monotonic()
        while not self.stop_requested.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._reload(scheduler, launcher, slots)
            now = time.monotonic()
            if now >= next_reap:
                self._reap(catalog)
                next_reap = now + self.config.daemon.heartbeat_interval.total_seconds()
            if watchdog is not None and now >= next_ping:
                self.notifier.watchdog()
                next_ping = now + watchdog / 2
            view = slots.view()
            self.metrics.set_steps(len(view.running), len(view.waiting))
            self.notifier.status(
                f"{len(view.running)} running, {len(view.waiting)} waiting, "
                f"{launcher.active()} restore point(s) and {self._active_jobs()} job(s) in progress"
            )

    # -- scheduling ---------------------------------------------------------------------------

    def _schedule(
        self, scheduler: BackgroundScheduler, launcher: PointLauncher, config: Config
    ) -> None:
        """One job per active plan: coalesced, one instance at a time, with the misfire grace
        from config. The job only claims the firing; the work runs in a worker thread. Then
        the plans' verify jobs and drills (``JobLauncher``), each on its own trigger."""
        grace = config.daemon.misfire_grace
        wanted = {f"plan:{p.name}": p for p in config.plans if not p.paused}
        for job in scheduler.get_jobs():
            if job.id.startswith("plan:") and job.id not in wanted:
                job.remove()
        for job_id, plan in wanted.items():
            scheduler.add_job(
                self._fire,
                trigger(plan),
                args=[launcher, plan.name],
                id=job_id,
                name=plan.name,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(grace.total_seconds()),
            )
        if self._jobs is not None:
            self._jobs.sync(scheduler)

    def _fire(self, launcher: PointLauncher, plan_name: str) -> None:
        config = self.config
        plan = _plan(config, plan_name)
        if plan is None or plan.paused or self.stop_requested.is_set():
            return
        now = self.clock.now()
        scheduled = current_firing(trigger(plan), now, config.daemon.misfire_grace) or now
        launcher.launch(config, plan, scheduled, Trigger.SCHEDULE)

    def _on_missed(self, launcher: PointLauncher, event: JobExecutionEvent) -> None:
        if not event.job_id.startswith("plan:"):
            if self._jobs is not None:
                self._jobs.missed(event.job_id, event.scheduled_run_time)
            return
        plan = _plan(self.config, event.job_id.removeprefix("plan:"))
        if plan is not None:
            launcher.record_missed(plan, event.scheduled_run_time, "missed by the scheduler")

    def _catch_up(
        self, lasts: dict[str, datetime | None], launcher: PointLauncher, config: Config
    ) -> None:
        """Firings since the last one recorded: the newest within the grace runs now; older
        ones are recorded as missed. (One the scheduler claims meanwhile is claimed once.)"""
        now = self.clock.now()
        for plan in config.plans:
            if plan.paused:
                continue
            last = lasts.get(plan.name)
            plan_catch_up = catch_up(trigger(plan), last, now, config.daemon.misfire_grace)
            for moment in plan_catch_up.missed:
                launcher.record_missed(plan, moment, "no daemon was running")
            if plan_catch_up.not_recorded:
                log.warning(
                    "firings_missed_unrecorded", plan=plan.name, count=plan_catch_up.not_recorded
                )
            if plan_catch_up.due is not None:
                log.info("firing_caught_up", plan=plan.name, scheduled_for=plan_catch_up.due)
                launcher.launch(config, plan, plan_catch_up.due, Trigger.SCHEDULE)

    # -- reload -------------------------------------------------------------------------------

    def _reload(
        self, scheduler: BackgroundScheduler, launcher: PointLauncher, slots: Slots
    ) -> None:
        """Validate the config file first; keep the running config when it is invalid."""
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error(
                "config_reload_rejected",
                path=str(self.config_path),
                errors=[str(p) for p in exc.problems],
            )
            self.notifier.ready("config reload rejected; running on the previous config")
            return
        self.config = new
        slots.resize(new.daemon.max_parallel, _per_jumpbox(new))
        self._schedule(scheduler, launcher, new)
        self._count_plans(new)
        if self._feed is not None:
            self._feed.use_config(new)
        log.info("config_reloaded", path=str(self.config_path), plans=len(new.plans))
        self.notifier.ready(f"config reloaded; running {len(new.plans)} plan(s)")

    # -- recovery -----------------------------------------------------------------------------

    def _reap(self, catalog: Catalog) -> None:
        """Reap stale rows in the background (a cleanup run can take minutes)."""
        if self._reaper is not None and self._reaper.is_alive():
            return
        config = self.config
        requester = Requester(Trigger.SCHEDULE, "recovery", self.owner)

        def work() -> None:
            try:
                reaped = reap(
                    catalog,
                    self.clock,
                    config.daemon.stale_after,
                    wiring.recovery_resolver(config, catalog, self.clock, requester),
                    requester,
                )
                for run in reaped:
                    log.warning("run_reaped", run_id=run.id, target=run.target)
            except OrchestratorError as exc:
                log.error("reaping_failed", error=str(exc))

        self._reaper = threading.Thread(target=work, name="reaper", daemon=True)
        self._reaper.start()

    # -- shutdown -----------------------------------------------------------------------------

    def _shutdown(self, scheduler: BackgroundScheduler, launcher: PointLauncher) -> None:
        """Stop firing; let running bbr commands finish within the grace period; then cancel
        them (SIGTERM to bbr, then its cleanup) and wait for the cleanups."""
        self.stop_requested.set()
        if scheduler.running:
            scheduler.shutdown(wait=False)
        grace = self.config.daemon.shutdown_grace.total_seconds()
        busy, jobs = launcher.active(), self._active_jobs()
        self.notifier.stopping(f"stopping: {busy} restore point(s) and {jobs} job(s) in progress")
        log.info("daemon_stopping", in_progress=busy, jobs=jobs, grace_seconds=grace)
        deadline = time.monotonic() + grace
        self._wait_workers(launcher, lambda: time.monotonic() >= deadline)
        if launcher.active() or self._active_jobs():
            log.warning("shutdown_grace_over", cancelling=launcher.active() + self._active_jobs())
            self.cancel.set()
            self._wait_workers(launcher, lambda: False)
        if self._reaper is not None:
            self._reaper.join()

    def _active_jobs(self) -> int:
        return self._jobs.active() if self._jobs is not None else 0

    def _wait_workers(self, launcher: PointLauncher, give_up: Callable[[], bool]) -> None:
        """Restore points' and jobs' workers (a drill cancelled past the grace cleans up)."""
        watchdog = self.notifier.watchdog_interval()
        while (launcher.active() or self._active_jobs()) and not give_up():
            launcher.join(self.tick / 2)
            if self._jobs is not None:
                self._jobs.join(self.tick / 2)
            if watchdog is not None:
                self.notifier.watchdog()


def _metrics_url(config: Config, port: int) -> str:
    host = config.metrics.listen_address
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/metrics"


def _plan(config: Config, name: str) -> PlanConfig | None:
    return next((p for p in config.plans if p.name == name), None)


def _per_jumpbox(config: Config) -> dict[str, int]:
    return {j.name: j.max_parallel for j in config.jumpboxes}
