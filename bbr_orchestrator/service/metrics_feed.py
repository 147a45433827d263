"""What feeds the metrics endpoint: the catalog's run aggregates (every ``refresh_interval``),
probes of the object store and the jumpboxes (every ``probe_interval``, in their own
thread, each bounded by ``probe_timeout``) and the schedule facts of the loaded config.

Nothing is counted in memory: each refresh rebuilds every family from the catalog, so a
restarted daemon exports what its predecessor did. ``start()`` refreshes and probes once
before it returns, so the endpoint's first scrape is already complete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import structlog

from bbr_orchestrator.config import Config
from bbr_orchestrator.config.schema import OpsmanTarget, PlanConfig
from bbr_orchestrator.core.metrics_families import build_families
from bbr_orchestrator.core.metrics_model import (
    DURATION_BOUNDS,
    Family,
    PlanFacts,
    ProbeResult,
    Probes,
    Snapshot,
)
from bbr_orchestrator.core.models import RunStats, TargetKind
from bbr_orchestrator.ports import Catalog, Clock
from bbr_orchestrator.service import wiring
from bbr_orchestrator.service.schedule import trigger

log = structlog.get_logger(__name__)

Probe = Callable[[], None]
"""Returns when the dependency answered; raises when it did not."""


def plan_facts(plan: PlanConfig, kinds: Mapping[str, TargetKind], now: datetime) -> PlanFacts:
    """The plan's targets and, unless paused, its next firing and the gap (in elapsed
    seconds, so 23 h across a spring-forward night) between its next two firings."""
    targets = tuple((name, kinds[name]) for name in plan.targets if name in kinds)
    if plan.paused:
        return PlanFacts(plan.name, True, targets)
    cron = trigger(plan)
    first = cron.get_next_fire_time(None, now)
    second = cron.get_next_fire_time(first, first) if first is not None else None
    # Timestamps, not datetime arithmetic: two datetimes of one zone subtract as wall clocks.
    interval = second.timestamp() - first.timestamp() if first and second else None
    return PlanFacts(plan.name, False, targets, interval, first)


def schedule_facts(config: Config, now: datetime) -> tuple[PlanFacts, ...]:
    kinds = {t.name: TargetKind(t.kind) for t in config.targets}
    return tuple(plan_facts(plan, kinds, now) for plan in config.plans)


def default_probes(config: Config) -> dict[str, Probe]:
    """``storage`` and ``jumpbox:<name>`` probes for ``config`` (built per round, so a
    secret that cannot be resolved makes its probe fail, not the feed)."""
    timeout = config.metrics.probe_timeout.total_seconds()

    def storage() -> None:
        wiring.storage_probe(config, timeout)()

    def jumpbox(name: str) -> Probe:
        return lambda: wiring.jumpbox_probe(config, name, timeout)()

    probes: dict[str, Probe] = {"storage": storage}
    probes.update({f"jumpbox:{j.name}": jumpbox(j.name) for j in config.jumpboxes})
    return probes


def run_probes(probes: Mapping[str, Probe], timeout: float) -> dict[str, bool]:
    """Every probe at once, each in a daemon thread; one still running after ``timeout``
    seconds counts as down (and never holds up the caller or the process's exit)."""
    answered: dict[str, bool] = {}

    def attempt(name: str, probe: Probe) -> None:
        try:
            probe()
        except Exception as exc:  # noqa: BLE001 - whatever failed, the dependency is down
            log.warning("probe_failed", probe=name, error=str(exc))
            answered[name] = False
        else:
            answered[name] = True

    threads = [
        threading.Thread(target=attempt, args=(n, p), name=f"probe-{n}", daemon=True)
        for n, p in probes.items()
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    up = {name: answered.get(name, False) for name in probes}
    for name in probes:
        if name not in answered:
            log.warning("probe_failed", probe=name, error=f"no answer within {timeout:g}s")
    return up


class MetricsFeed:
    """Keeps ``publish`` fed with the families of the latest snapshot."""

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        config: Config,
        publish: Callable[[Iterable[Family]], None],
        version: str,
        probes: Callable[[Config], Mapping[str, Probe]] = default_probes,
    ) -> None:
        self._catalog = catalog
        self._clock = clock
        self._publish = publish
        self._version = version
        self._make_probes = probes
        self._lock = threading.Lock()
        self._config = config
        self._stats: tuple[RunStats, ...] = ()
        self._probes = Probes()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def use_config(self, config: Config) -> None:
        """A reloaded config: its plans and targets show at once; probes follow it."""
        with self._lock:
            self._config = config
        self.publish()

    def start(self) -> None:
        """Refresh and probe once (the first scrape is complete), then keep at it."""
        self.probe()
        self.refresh()
        loops = (("metrics-refresh", self._refresh_loop), ("metrics-probe", self._probe_loop))
        for name, work in loops:
            thread = threading.Thread(target=work, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)

    def refresh(self) -> None:
        """Rebuild the run aggregates from the catalog (a failure keeps the last ones and
        marks the catalog down)."""
        try:
            stats = tuple(self._catalog.run_stats(DURATION_BOUNDS))
        except Exception as exc:  # noqa: BLE001 - any failure of the query means "catalog down"
            log.warning("metrics_refresh_failed", error=str(exc))
            self._set_catalog(None, up=False)
        else:
            self._set_catalog(stats, up=True)
        self.publish()

    def probe(self) -> None:
        """Probe the object store and every jumpbox of the current config."""
        with self._lock:
            config = self._config
        timeout = config.metrics.probe_timeout.total_seconds()
        up = run_probes(self._make_probes(config), timeout)
        at = self._clock.now()
        storage = ProbeResult(up["storage"], at) if "storage" in up else None
        jumpboxes = tuple(
            (name.removeprefix("jumpbox:"), ProbeResult(ok, at))
            for name, ok in sorted(up.items())
            if name.startswith("jumpbox:")
        )
        with self._lock:
            self._probes = Probes(storage, self._probes.catalog, jumpboxes)
        self.publish()

    def publish(self) -> None:
        """Build the families from what is known now and hand them over."""
        now = self._clock.now()
        with self._lock:
            config, stats, probes = self._config, self._stats, self._probes
        lockable = tuple(t.name for t in config.targets if not isinstance(t, OpsmanTarget))
        snapshot = Snapshot(
            version=self._version,
            stats=stats,
            plans=schedule_facts(config, now),
            lockable_targets=lockable,
            probes=probes,
        )
        self._publish(build_families(snapshot))

    def _set_catalog(self, stats: tuple[RunStats, ...] | None, *, up: bool) -> None:
        at = self._clock.now()
        with self._lock:
            if stats is not None:
                self._stats = stats
            self._probes = Probes(self._probes.storage, ProbeResult(up, at), self._probes.jumpboxes)

    def _refresh_loop(self) -> None:
        self._every("refresh_interval", self.refresh)

    def _probe_loop(self) -> None:
        self._every("probe_interval", self.probe)

    def _every(self, interval: str, work: Callable[[], None]) -> None:
        while not self._stop.wait(self._interval(interval)):
            try:
                work()
            except Exception as exc:  # noqa: BLE001 - the metrics must outlive one bad round
                log.error("metrics_update_failed", work=work.__name__, error=str(exc))

    def _interval(self, name: str) -> float:
        with self._lock:
            value = getattr(self._config.metrics, name)
        return float(value.total_seconds())
