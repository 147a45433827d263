"""The Prometheus endpoint: the daemon's own registry, served on loopback unless configured.

This is the daemon's first set of metrics (build info and what it is doing now); the gauges
rebuilt from the catalog (last success per target, durations, sizes) build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Info, start_http_server

from bbr_orchestrator.errors import OrchestratorError


class MetricsError(OrchestratorError):
    """The metrics endpoint cannot listen."""

    def __init__(self, address: str, port: int, reason: str) -> None:
        self.address = address
        self.port = port
        super().__init__(f"metrics endpoint {address}:{port}: {reason}")


@dataclass
class DaemonMetrics:
    """Metrics the daemon updates as it goes."""

    registry: CollectorRegistry
    steps: Gauge
    plans: Gauge

    @classmethod
    def create(cls, version: str, owner: str) -> DaemonMetrics:
        registry = CollectorRegistry(auto_describe=True)
        Info("bbr_orchestrator_build", "Build of the running daemon.", registry=registry).info(
            {"version": version, "instance_id": owner}
        )
        steps = Gauge(
            "bbr_orchestrator_daemon_steps",
            "Restore point steps this daemon drives now, by state (running or waiting).",
            ["state"],
            registry=registry,
        )
        plans = Gauge(
            "bbr_orchestrator_daemon_plans",
            "Plans in the loaded config, by whether they are scheduled or paused.",
            ["status"],
            registry=registry,
        )
        return cls(registry, steps, plans)

    def set_steps(self, running: int, waiting: int) -> None:
        self.steps.labels(state="running").set(running)
        self.steps.labels(state="waiting").set(waiting)

    def set_plans(self, scheduled: int, paused: int) -> None:
        self.plans.labels(status="scheduled").set(scheduled)
        self.plans.labels(status="paused").set(paused)

    def serve(self, address: str, port: int) -> Any:
        """Start the HTTP endpoint in a daemon thread; returns the server (``shutdown()``)."""
        try:
            server, _thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise MetricsError(address, port, exc.strerror or str(exc)) from exc
        return server
