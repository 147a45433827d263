"""The Prometheus endpoint: the daemon's own registry, served on loopback unless configured.

The only module that imports prometheus_client. It renders metric families built elsewhere
(``core.metrics_families``): the latest snapshot of what the catalog, the config and the
probes say, swapped in whole, plus the daemon's live gauges (steps, plans).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bbr_orchestrator.core.metrics_families import daemon_families
from bbr_orchestrator.core.metrics_model import Family, MetricType
from bbr_orchestrator.errors import OrchestratorError


class MetricsError(OrchestratorError):
    """The metrics endpoint cannot listen."""

    def __init__(self, address: str, port: int, reason: str) -> None:
        self.address = address
        self.port = port
        super().__init__(f"metrics endpoint {address}:{port}: {reason}")


@dataclass(frozen=True)
class _Live:
    running: int = 0
    waiting: int = 0
    scheduled: int = 0
    paused: int = 0


class MetricsServer:
    """The running HTTP endpoint (its ``port`` is the real one, also when 0 was asked)."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.port: int = int(server.server_port)

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class DaemonMetrics(Collector):
    """The daemon's registry and its one collector. Thread-safe: ``publish`` swaps the
    snapshot while a scrape may be rendering the previous one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: tuple[Family, ...] = ()
        self._live = _Live()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    @classmethod
    def create(cls) -> DaemonMetrics:
        return cls()

    # -- updates ------------------------------------------------------------------------------

    def publish(self, families: Iterable[Family]) -> None:
        """Replace the snapshot (everything but the live gauges) in one swap."""
        snapshot = tuple(families)
        with self._lock:
            self._snapshot = snapshot

    def set_steps(self, running: int, waiting: int) -> None:
        with self._lock:
            self._live = _Live(running, waiting, self._live.scheduled, self._live.paused)

    def set_plans(self, scheduled: int, paused: int) -> None:
        with self._lock:
            self._live = _Live(self._live.running, self._live.waiting, scheduled, paused)

    def families(self) -> list[Family]:
        """What a scrape shows now."""
        with self._lock:
            snapshot, live = self._snapshot, self._live
        return [
            *snapshot,
            *daemon_families(live.running, live.waiting, live.scheduled, live.paused),
        ]

    # -- prometheus_client --------------------------------------------------------------------

    def describe(self) -> Sequence[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for family in self.families():
            yield render(family)

    def serve(self, address: str, port: int) -> MetricsServer:
        """Start the HTTP endpoint in a daemon thread (``shutdown()`` it when done)."""
        try:
            server, thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise MetricsError(address, port, exc.strerror or str(exc)) from exc
        return MetricsServer(server, thread)


def render(family: Family) -> Metric:
    """One family as prometheus_client's metric (a counter is named without ``_total``)."""
    name = family.name
    if family.type is MetricType.COUNTER:
        name = name.removesuffix("_total")
    metric = Metric(name, family.help, family.type.value)
    for sample in family.samples:
        metric.add_sample(sample.name, dict(sample.labels), float(sample.value))
    return metric
