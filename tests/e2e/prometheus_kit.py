"""A real Prometheus server for tests: it scrapes given targets every second under the job
name the shipped rules expect, evaluates config/bbr-orchestrator.rules.yml every second, and
answers queries, alerts and rule health over its HTTP API.

    with running_prometheus(tmp_path, ["127.0.0.1:9613"]) as prom:
        prom.wait_for_alert("BackupLastRunFailed", labels={"target": "cf"})

Rules with a long ``for:`` only reach "pending" within a test; that state is the proof that
Prometheus evaluated the rule against the scraped series and found it true.

Also here: :func:`serving_exposition`, a static metrics endpoint (a thread on 127.0.0.1) for
tests that need chosen series without a daemon, and :func:`require_binary`.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from bbr_orchestrator.sandbox.ports import LOOPBACK, free_port

REPO = Path(__file__).resolve().parents[2]
RULES_FILE = REPO / "config" / "bbr-orchestrator.rules.yml"
JOB_NAME = "bbr-orchestrator"
"""The scrape job name the shipped rules match (``up{job="bbr-orchestrator"}``)."""
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
T = TypeVar("T")


def require_binary(name: str) -> str:
    """The path of ``name`` on PATH; skips the test when it is missing, fails it under CI.

    ``dev/setup`` installs it (Debian package ``prometheus``), so CI must never skip.
    """
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian package prometheus: apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class PrometheusError(AssertionError):
    """The Prometheus server failed to start, answered an error, or a wait timed out."""


@dataclass
class PrometheusServer:
    """A running ``prometheus`` process and its HTTP API."""

    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    returncode: int | None = field(default=None)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; raise on an error status."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = f"{self.url}/api/v1/{path}{query}"
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{request}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate ``expr`` now; the ``result`` list (``[{"metric": {...}, "value": [t, v]}]``).

        A scalar or string result is returned as a one-element list of that pair."""
        data = self.api("query", {"query": expr})
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) from ``/api/v1/alerts``."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        """Loaded rule groups with each rule's health and last error, from ``/api/v1/rules``."""
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def wait_for_alert(
        self,
        name: str,
        states: Sequence[str] = ("pending", "firing"),
        timeout: float = 60.0,
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The first active alert ``name`` in one of ``states`` (and with ``labels``)."""
        wanted = dict(labels or {})

        def probe() -> dict[str, Any] | None:
            for alert in self.alerts():
                alert_labels = alert["labels"]
                if (
                    alert_labels.get("alertname") == name
                    and alert["state"] in states
                    and all(alert_labels.get(k) == v for k, v in wanted.items())
                ):
                    return alert
            return None

        return self._wait(
            f"alert {name} {wanted or ''} in state {'/'.join(states)}", probe, timeout
        )

    def wait_for_scrape(self, job: str = JOB_NAME, timeout: float = 30.0) -> None:
        """Wait until every target of ``job`` has been scraped successfully."""

        def probe() -> bool:
            up = self.query(f'up{{job="{job}"}}')
            return bool(up) and all(sample["value"][1] == "1" for sample in up)

        self._wait(f"a successful scrape of job {job}", probe, timeout)

    def wait_for_rule_evaluations(self, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until every loaded rule group has been evaluated ``count`` more times."""
        start = {g["name"]: g.get("lastEvaluation", "") for g in self.rule_groups()}
        seen = dict.fromkeys(start, 0)
        last = dict(start)

        def probe() -> bool:
            for group in self.rule_groups():
                stamp = group.get("lastEvaluation", "")
                if stamp != last.get(group["name"]):
                    last[group["name"]] = stamp
                    seen[group["name"]] = seen.get(group["name"], 0) + 1
            return bool(seen) and all(n >= count for n in seen.values())

        self._wait(f"{count} evaluation(s) of every rule group", probe, timeout)

    def _wait(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited {self.process.returncode} while waiting for {what}:\n"
                    + self.log_tail()
                )
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"timed out after {timeout:.0f}s waiting for {what}; active alerts: "
                    f"{json.dumps(self.alerts(), indent=1)[:3000]}\nlog:\n{self.log_tail(2000)}"
                )
            time.sleep(0.25)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for a clean exit (killed after ``timeout``); the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.returncode = self.process.returncode
        return self.returncode


def prometheus_config(
    targets: Iterable[str],
    rule_files: Iterable[Path] = (RULES_FILE,),
    job: str = JOB_NAME,
    metrics_path: str = "/metrics",
) -> dict[str, Any]:
    """The config: scrape and evaluate every second, ``targets`` (host:port) under ``job``."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": metrics_path,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }


@contextmanager
def running_prometheus(
    workdir: Path,
    targets: Iterable[str],
    *,
    rule_files: Iterable[Path] = (RULES_FILE,),
    job: str = JOB_NAME,
    metrics_path: str = "/metrics",
    binary: str | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[PrometheusServer]:
    """Start ``prometheus`` on a free 127.0.0.1 port with its TSDB under ``workdir``, wait
    until ``/-/ready``, yield it, and stop it with SIGTERM (its exit code in ``returncode``).
    """
    executable = binary or require_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config = prometheus_config(targets, rule_files, job, metrics_path)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    server = _start(executable, workdir, config_path, startup_timeout)
    try:
        yield server
    finally:
        server.stop()


def _start(executable: str, workdir: Path, config_path: Path, timeout: float) -> PrometheusServer:
    """Start and wait for readiness; retry on a new port if the free one was taken meanwhile."""
    for attempt in range(3):
        port = free_port()
        log_path = workdir / f"prometheus-{attempt}.log"
        argv = [
            executable,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=info",
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir
            )
        server = PrometheusServer(f"http://{LOOPBACK}:{port}", process, workdir, log_path)
        if _wait_ready(server, timeout):
            return server
        server.stop()
        if "address already in use" not in server.log_tail():
            break
    raise PrometheusError(
        f"prometheus did not become ready ({' '.join(argv)}):\n{server.log_tail()}"
    )


def _wait_ready(server: PrometheusServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


class _ExpositionHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body_of: Callable[[], str] = self.server.body_of  # type: ignore[attr-defined]
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        body = body_of().encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", EXPOSITION_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def serving_exposition(body: str | Callable[[], str]) -> Iterator[str]:
    """Serve ``body`` (text exposition, or a callable returning it per scrape) at
    ``/metrics`` from a thread on 127.0.0.1; yields the ``host:port`` to scrape."""
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _ExpositionHandler)
    server.body_of = body if callable(body) else (lambda: body)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="exposition", daemon=True)
    thread.start()
    try:
        yield f"{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400)


def sample_exposition(
    now: float, failed: Iterable[str] = ("cf",), stale: Iterable[str] = ()
) -> str:
    """A text exposition with every metric family the daemon exports (labels as the exporter
    uses them): plan ``nightly`` backs up the targets ``director`` and ``cf`` and exports Ops
    Manager ``opsman`` daily. Every run succeeded an hour before ``now``, except that the last
    run of each target in ``failed`` ended ``failed`` (its last success a day earlier) and the
    last success of each target in ``stale`` is two days old. Only those should alert."""
    failed, stale = set(failed), set(stale)
    plan = "nightly"
    steps = [("director", "backup"), ("cf", "backup"), ("opsman", "opsman-export")]
    lines: list[str] = []

    def family(name: str, kind: str, samples: Iterable[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {name.removeprefix('bbr_orchestrator_')}.")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    def labels(**pairs: str) -> str:
        return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"

    family("bbr_orchestrator_build_info", "gauge", [(labels(version="0.1.0"), 1)])
    success = {t: now - 3600 - 86400 * ((t in failed) + 2 * (t in stale)) for t, _ in steps}
    family(
        "bbr_orchestrator_last_success_timestamp_seconds",
        "gauge",
        [(labels(plan=plan, target=t, kind=k), success[t]) for t, k in steps],
    )
    family(
        "bbr_orchestrator_last_attempt_timestamp_seconds",
        "gauge",
        [(labels(plan=plan, target=t, kind=k), now - 3600) for t, k in steps],
    )
    family(
        "bbr_orchestrator_last_outcome",
        "gauge",
        [
            (
                labels(plan=plan, target=t, kind=k, outcome=o),
                float((t in failed) == (o != "succeeded")),
            )
            for t, k in steps
            for o in ("succeeded", "failed")
        ],
    )
    family(
        "bbr_orchestrator_runs_total",
        "counter",
        [
            (labels(plan=plan, target=t, kind=k, outcome=o), 30 if o == "succeeded" else 1)
            for t, k in steps
            for o in ("succeeded", "failed")
        ],
    )
    # 31 runs per step, each between 15 and 30 minutes long.
    duration = "bbr_orchestrator_run_duration_seconds"
    lines += [f"# HELP {duration} run_duration_seconds.", f"# TYPE {duration} histogram"]
    for t, k in steps:
        for le in DURATION_BUCKETS:
            bucket = labels(plan=plan, target=t, kind=k, le=str(le))
            lines.append(f"{duration}_bucket{bucket} {0 if le < 1800 else 31}")
        lines.append(f"{duration}_bucket{labels(plan=plan, target=t, kind=k, le='+Inf')} 31")
        lines.append(f"{duration}_sum{labels(plan=plan, target=t, kind=k)} {31 * 1500}")
        lines.append(f"{duration}_count{labels(plan=plan, target=t, kind=k)} 31")
    sizes = [(labels(plan=plan, target=t), 2**30 * (i + 1)) for i, (t, _) in enumerate(steps)]
    family("bbr_orchestrator_artifact_bytes", "gauge", sizes)
    family("bbr_orchestrator_uploaded_bytes_total", "counter", [(s, v * 31) for s, v in sizes])
    family(
        "bbr_orchestrator_platform_possibly_locked",
        "gauge",
        [(labels(target=t), 0) for t, k in steps if k == "backup"],
    )
    family(
        "bbr_orchestrator_last_verified_timestamp_seconds",
        "gauge",
        [(labels(plan=plan, target=t), now - 86400) for t, _ in steps],
    )
    family(
        "bbr_orchestrator_last_drill_success_timestamp_seconds",
        "gauge",
        [(labels(plan=plan, target=t), now - 7 * 86400) for t, _ in steps],
    )
    family(
        "bbr_orchestrator_schedule_expected_interval_seconds", "gauge", [(labels(plan=plan), 86400)]
    )
    family(
        "bbr_orchestrator_next_run_timestamp_seconds", "gauge", [(labels(plan=plan), now + 3600)]
    )
    family("bbr_orchestrator_plan_paused", "gauge", [(labels(plan=plan), 0)])
    family("bbr_orchestrator_storage_up", "gauge", [("", 1)])
    family("bbr_orchestrator_jumpbox_up", "gauge", [(labels(jumpbox="jumpbox-0"), 1)])
    family("bbr_orchestrator_catalog_up", "gauge", [("", 1)])
    family(
        "bbr_orchestrator_probe_timestamp_seconds",
        "gauge",
        [(labels(probe=p), now - 30) for p in ("storage", "jumpbox", "catalog")],
    )
    family(
        "bbr_orchestrator_daemon_steps",
        "gauge",
        [(labels(state="running"), 0), (labels(state="waiting"), 0)],
    )
    family(
        "bbr_orchestrator_daemon_plans",
        "gauge",
        [(labels(status="scheduled"), 1), (labels(status="paused"), 0)],
    )
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Exposition number: integers as such, other floats exactly (``repr``)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
