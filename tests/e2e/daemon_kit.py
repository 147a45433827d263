"""A test bed for the daemon as a subprocess: jumpboxes (real sshd + bbr simulator), a
SeaweedFS bucket, a fresh PostgreSQL catalog, config files, and daemon processes whose JSON
log lines can be waited for."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bbr_orchestrator.adapters.catalog import SqlCatalog, open_catalog
from bbr_orchestrator.sandbox.s3server import S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox

EXE = str(Path(sys.executable).parent / "bbr-orchestrator")
POSTGRES_ADMIN = os.environ.get(
    "BBR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
CLIENT_SECRET = "e2e-bosh-client-secret"
T = TypeVar("T")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"bbr_e2e_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{secrets.token_hex(4)}"
    engine = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        yield make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        engine.dispose()


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


@dataclass
class DaemonProcess:
    """A ``bbr-orchestrator daemon`` subprocess with its log in a file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def wait_event(self, event: str, timeout: float = 60.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"daemon {self.name} exited {self.process.returncode}:\n"
                    + self.log_path.read_text(errors="replace")[-4000:]
                )
            found = self.named(event)
            return found[-1] if found else None

        return wait_until(f"{event} from daemon {self.name}", probe, timeout)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@dataclass
class Bed:
    """Everything one daemon test needs; config dicts are built here and written to files."""

    base: Path
    jumpboxes: list[Jumpbox]
    bbr_state: Path
    s3: S3Server
    bucket: str
    catalog_url: str
    daemons: list[DaemonProcess] = field(default_factory=list)

    def jumpbox_entries(self, max_parallel: int = 2) -> list[dict[str, Any]]:
        return [
            {
                "name": f"jumpbox-{i}",
                "host": box.host,
                "port": box.port,
                "user": box.user,
                "private_key_file": str(box.client_key_path),
                "known_hosts_file": str(box.known_hosts_path),
                "work_root": str(self.base / f"work-{i}"),
                "max_parallel": max_parallel,
            }
            for i, box in enumerate(self.jumpboxes)
        ]

    def director(self, name: str, host: str, jumpbox: int = 0) -> dict[str, Any]:
        key = self.secret_file("director_key", "-----BEGIN OPENSSH PRIVATE KEY-----\ne2e\n")
        return {
            "kind": "director",
            "name": name,
            "jumpbox": f"jumpbox-{jumpbox}",
            "host": host,
            "private_key": {"file": key},
        }

    def opsman(self, name: str, jumpbox: int = 0) -> dict[str, Any]:
        return {
            "kind": "opsman",
            "name": name,
            "jumpbox": f"jumpbox-{jumpbox}",
            "url": f"https://{name}.e2e.internal",
            "username": "admin",
            "password": {"file": self.secret_file("opsman_password", "e2e-opsman-password")},
            "skip_ssl_validation": True,
        }

    def deployment(self, name: str, deployment: str, jumpbox: int = 0) -> dict[str, Any]:
        ca = self.base / "root_ca_certificate"
        ca.write_text("-----BEGIN CERTIFICATE-----\ne2e\n-----END CERTIFICATE-----\n")
        return {
            "kind": "deployment",
            "name": name,
            "jumpbox": f"jumpbox-{jumpbox}",
            "bosh_target": "https://10.0.0.6:25555",
            "client": "bbr_client",
            "client_secret": {"file": self.secret_file("client_secret", CLIENT_SECRET)},
            "ca_cert_path": str(ca),
            "deployment": deployment,
        }

    def secret_file(self, name: str, value: str) -> str:
        path = self.base / "secrets" / name
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_text(value + "\n", encoding="utf-8")
        path.chmod(0o600)
        return str(path)

    def config(
        self,
        targets: list[dict[str, Any]],
        plans: list[dict[str, Any]],
        daemon: dict[str, Any] | None = None,
        max_parallel_per_jumpbox: int = 2,
    ) -> dict[str, Any]:
        settings = {
            "heartbeat_interval": "1s",
            "stale_after": "4s",
            "shutdown_grace": "60s",
            "misfire_grace": "30s",
            "preflight_checks": False,
        }
        settings.update(daemon or {})
        return {
            "state_dir": str(self.base / "state"),
            "catalog": {"url": self.catalog_url},
            "object_store": {
                "endpoint_url": self.s3.endpoint_url,
                "bucket": self.bucket,
                "region": self.s3.region,
                "addressing_style": "path",
                "credentials": {
                    "source": "secrets",
                    "access_key_id": {"file": self.secret_file("s3_key", self.s3.access_key)},
                    "secret_access_key": {
                        "file": self.secret_file("s3_secret", self.s3.secret_key)
                    },
                },
            },
            "jumpboxes": self.jumpbox_entries(max_parallel_per_jumpbox),
            "targets": targets,
            "plans": plans,
            "daemon": settings,
            "logging": {"level": "info", "format": "json"},
            # Several daemons share one config in these tests: one port would not do.
            "metrics": {"enabled": False},
        }

    def write_config(self, data: dict[str, Any], name: str = "config.yml") -> Path:
        path = self.base / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    def cli(self, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXE, "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start_daemon(
        self, config: Path, name: str = "a", env: dict[str, str] | None = None
    ) -> DaemonProcess:
        log_path = self.base / f"daemon-{name}-{len(self.daemons)}.log"
        with log_path.open("wb") as sink:
            process = subprocess.Popen(
                [EXE, "--config", str(config), "daemon"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
            )
        daemon = DaemonProcess(name, process, log_path)
        self.daemons.append(daemon)
        return daemon

    def catalog(self) -> SqlCatalog:
        return open_catalog(self.catalog_url)

    def with_metrics(self, data: dict[str, Any], port: int, **settings: str) -> dict[str, Any]:
        """``data`` with the metrics endpoint on loopback ``port`` (one daemon per config),
        refreshed every second unless ``settings`` say otherwise."""
        metrics = {"enabled": True, "listen_address": "127.0.0.1", "port": port}
        metrics.update({"refresh_interval": "1s", "probe_interval": "2s", "probe_timeout": "5s"})
        metrics.update(settings)
        return {**data, "metrics": metrics}

    def stop_all(self) -> None:
        for daemon in self.daemons:
            daemon.stop()


Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""A parsed scrape: ``(sample name, sorted labels) -> value``."""


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(url: str) -> Scrape:
    """Fetch a /metrics page and parse it as Prometheus does."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a test URL
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
