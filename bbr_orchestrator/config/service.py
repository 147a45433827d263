"""How the process itself runs: logging, the metrics endpoint, the daemon's scheduling and
guards. Part of the one config schema (``schema.Config``)."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from bbr_orchestrator.config.base import Model as _Model
from bbr_orchestrator.config.types import Duration, Port


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class LoggingConfig(_Model):
    """How bbr-orchestrator logs."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="debug, info, warning or error."
    )
    format: LogFormat = Field(
        default=LogFormat.AUTO,
        description="auto (console on a terminal, else JSON), json, console.",
    )


class MetricsConfig(_Model):
    """The Prometheus endpoint."""

    enabled: bool = Field(default=True, description="Serve /metrics while the daemon runs.")
    listen_address: str = Field(
        default="127.0.0.1", description="Address to listen on (loopback unless you need more)."
    )
    port: Port = Field(default=9613, description="Port of the /metrics endpoint.")
    refresh_interval: Duration = Field(
        default=timedelta(seconds=15),
        description="How often the run metrics are rebuilt from the catalog.",
    )
    probe_interval: Duration = Field(
        default=timedelta(seconds=60),
        description=(
            "How often the object store (a listing of one key under the prefix) and each "
            "jumpbox (an SSH connection, host key verified) are probed."
        ),
    )
    probe_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="How long one probe may take before its dependency counts as down.",
    )


class DaemonConfig(_Model):
    """How the daemon schedules, shares out and guards its work."""

    max_parallel: int = Field(
        default=4, ge=1, description="Most runs at once across all jumpboxes (more wait queued)."
    )
    misfire_grace: Duration = Field(
        default=timedelta(hours=1),
        description=(
            "A firing missed (daemon down, machine asleep) by less than this runs once on "
            "start; older missed firings are recorded as missed."
        ),
    )
    heartbeat_interval: Duration = Field(
        default=timedelta(seconds=15),
        description="How often the daemon marks its active runs alive in the catalog.",
    )
    stale_after: Duration = Field(
        default=timedelta(minutes=2),
        description=(
            "A run with no heartbeat for this long belongs to a dead daemon: it is marked "
            "interrupted and cleaned up (backup-cleanup, open uploads aborted, work dir removed)."
        ),
    )
    shutdown_grace: Duration = Field(
        default=timedelta(minutes=30),
        description=(
            "On SIGTERM, how long a running bbr command may go on before it is cancelled "
            "(SIGTERM to bbr, then its cleanup). Keep systemd's TimeoutStopSec above this."
        ),
    )
    preflight_checks: bool = Field(
        default=True,
        description="Run the `check` records (jumpbox, bbr, bucket) before each scheduled plan.",
    )

    @model_validator(mode="after")
    def _stale_after_heartbeats(self) -> DaemonConfig:
        if self.stale_after < 3 * self.heartbeat_interval:
            raise ValueError(
                "stale_after must be at least 3 heartbeat_intervals, or live runs of a busy "
                "daemon would be reaped as dead"
            )
        return self
