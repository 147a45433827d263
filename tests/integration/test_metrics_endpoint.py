"""The metrics endpoint over HTTP: a SQLite catalog with a crafted history, the daemon's
collector served on a free loopback port, scraped and parsed as Prometheus would."""

from __future__ import annotations

import secrets
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bbr_orchestrator.adapters.catalog import SqlCatalog
from bbr_orchestrator.adapters.metrics import DaemonMetrics, MetricsError
from bbr_orchestrator.config import Config, validate_data
from bbr_orchestrator.core.models import (
    NewRun,
    RunKind,
    RunState,
    RunUpdate,
    TargetKind,
    Trigger,
    new_run_id,
)
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox
from bbr_orchestrator.service.metrics_feed import MetricsFeed, Probe, default_probes, run_probes

from .test_check import WRONG_FINGERPRINT, check_config_data

T = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
P = "bbr_orchestrator_"
Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class FixedClock:
    def now(self) -> datetime:
        return NOW


def record(
    catalog: SqlCatalog,
    kind: RunKind,
    target: str,
    state: RunState,
    *,
    hours: float,
    seconds: float = 60,
    outcome: str | None = None,
    bytes_total: int | None = None,
    plan: str | None = "nightly",
) -> None:
    """A finished run that started ``hours`` after T and took ``seconds``."""
    started = T + timedelta(hours=hours)
    target_kind = TargetKind.OPSMAN if kind is RunKind.OPSMAN_EXPORT else TargetKind.DIRECTOR
    run = catalog.create_run(
        NewRun(
            id=new_run_id(started, secrets.token_hex(4)),
            kind=kind,
            target=target,
            target_kind=target_kind,
            trigger=Trigger.SCHEDULE if plan else Trigger.OPERATOR,
            triggered_by="test",
            created_at=started,
            plan=plan,
        )
    )
    update = RunUpdate(
        started_at=started,
        finished_at=started + timedelta(seconds=seconds),
        outcome=outcome or state.value,
        bytes_total=bytes_total,
    )
    catalog.transition(run.id, [RunState.QUEUED], state, update)


def history(catalog: SqlCatalog) -> None:
    """director: success, failure, unlock-failed whose cleanup unlocked; cf: success, then an
    unlock failure its cleanup could not fix; om: one export; an operator check of cf."""
    ok, failed = RunState.SUCCEEDED, RunState.FAILED
    b, cleanup = RunKind.BACKUP, RunKind.BACKUP_CLEANUP
    record(catalog, b, "bosh-director", ok, hours=0, seconds=120, bytes_total=1000)
    record(catalog, b, "bosh-director", failed, hours=1, seconds=400, outcome="failed")
    record(catalog, cleanup, "bosh-director", ok, hours=1.2)
    record(catalog, b, "bosh-director", failed, hours=2, outcome="unlock-failed", bytes_total=7)
    record(catalog, cleanup, "bosh-director", ok, hours=2.2)
    record(catalog, b, "cf", ok, hours=0, seconds=5000, bytes_total=3000)
    record(catalog, b, "cf", failed, hours=3, outcome="unlock-failed")
    record(catalog, cleanup, "cf", failed, hours=3.2, outcome="unlock-failed")
    record(catalog, RunKind.OPSMAN_EXPORT, "om", ok, hours=0, bytes_total=50)
    record(catalog, RunKind.PRE_BACKUP_CHECK, "cf", ok, hours=4, plan=None)


def config_data(base: Path) -> dict[str, Any]:
    """Targets bosh-director, cf, om and a never-run sandbox; nightly (active) and weekly
    (paused). No real peer: the probes are injected."""
    key = base / "key"
    key.write_text("not used\n")
    return {
        "state_dir": str(base / "state"),
        "object_store": {"endpoint_url": "http://127.0.0.1:9", "bucket": "backups"},
        "jumpboxes": [
            {
                "name": name,
                "host": "127.0.0.1",
                "user": "bbr",
                "private_key_file": str(key),
                "host_key_fingerprint": WRONG_FINGERPRINT,
                "work_root": "/tmp/w",
            }
            for name in ("jb-1", "jb-2")
        ],
        "targets": [
            {
                "kind": "director",
                "name": n,
                "jumpbox": "jb-1",
                "host": f"10.0.0.{i}",
                "private_key_path": "/home/bbr/director.pem",
            }
            for i, n in ((6, "bosh-director"), (7, "cf"), (8, "sandbox"))
        ]
        + [
            {
                "kind": "opsman",
                "name": "om",
                "jumpbox": "jb-2",
                "url": "https://om.example",
                "username": "admin",
                "password": {"env": "OM_PASSWORD"},
            }
        ],
        "plans": [
            {
                "name": "nightly",
                "targets": ["om", "bosh-director", "cf", "sandbox"],
                "schedule": "0 2 * * *",
                "timezone": "UTC",
            },
            {
                "name": "weekly",
                "targets": ["bosh-director"],
                "schedule": "0 3 * * 0",
                "timezone": "UTC",
                "paused": True,
            },
        ],
    }


def fake_probes(config: Config) -> Mapping[str, Probe]:
    def down() -> None:
        raise OSError("no route to host")

    return {"storage": lambda: None, "jumpbox:jb-1": lambda: None, "jumpbox:jb-2": down}


def scrape(port: int) -> Scrape:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def pick(found: Scrape, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples named ``name`` with ``labels``, keyed by their other labels."""
    out = {}
    for (sample, sample_labels), value in found.items():
        have = dict(sample_labels)
        if sample == name and all(have.get(k) == v for k, v in labels.items()):
            out[tuple((k, v) for k, v in sample_labels if k not in labels)] = value
    return out


def value(found: Scrape, name: str, **labels: str) -> float:
    (only,) = pick(found, name, **labels).values()
    return only


@pytest.fixture
def served(catalog: SqlCatalog, tmp_path: Path) -> Iterator[tuple[int, DaemonMetrics]]:
    """The crafted history, a feed refreshed once, the endpoint on a free loopback port."""
    history(catalog)
    metrics = DaemonMetrics.create()
    config = validate_data(config_data(tmp_path))
    feed = MetricsFeed(catalog, FixedClock(), config, metrics.publish, "9.9.9", fake_probes)
    feed.probe()
    feed.refresh()
    server = metrics.serve("127.0.0.1", 0)
    try:
        yield server.port, metrics
    finally:
        server.shutdown()


def test_scrape_shows_last_success_attempt_and_outcome(served: tuple[int, DaemonMetrics]) -> None:
    """Per (plan, target, kind): last success, last attempt, the last outcome one-hot."""
    found = scrape(served[0])
    director = {"plan": "nightly", "target": "bosh-director", "kind": "backup"}
    last_success = value(found, P + "last_success_timestamp_seconds", **director)
    assert last_success == (T + timedelta(seconds=120)).timestamp()
    last_attempt = value(found, P + "last_attempt_timestamp_seconds", **director)
    assert last_attempt == (T + timedelta(hours=2, seconds=60)).timestamp()
    assert pick(found, P + "last_outcome", **director) == {
        (("outcome", "failed"),): 0,
        (("outcome", "succeeded"),): 0,
        (("outcome", "unlock-failed"),): 1,
    }
    assert pick(found, P + "runs_total", **director) == {
        (("outcome", "failed"),): 1,
        (("outcome", "succeeded"),): 1,
        (("outcome", "unlock-failed"),): 1,
    }
    operator = {"plan": "", "target": "cf", "kind": "pre-backup-check"}
    assert value(found, P + "runs_total", outcome="succeeded", **operator) == 1
    assert value(found, P + "build_info", version="9.9.9") == 1


def test_never_run_targets_of_active_plans_show_zero(served: tuple[int, DaemonMetrics]) -> None:
    """The never-run sandbox of the active plan shows last success 0; the paused plan adds
    nothing; the Ops Manager's export is its own kind."""
    found = scrape(served[0])
    success = pick(found, P + "last_success_timestamp_seconds")
    assert success[(("kind", "backup"), ("plan", "nightly"), ("target", "sandbox"))] == 0
    assert not [k for k in success if ("plan", "weekly") in k]
    om = (("kind", "opsman-export"), ("plan", "nightly"), ("target", "om"))
    assert success[om] == (T + timedelta(seconds=60)).timestamp()


def test_possibly_locked_follows_unlock_failures_and_cleanups(
    served: tuple[int, DaemonMetrics],
) -> None:
    """cf's cleanup failed to unlock too: possibly locked. The director's cleanup succeeded
    after its unlock failure: not. Every director/deployment target has a series; om none."""
    locked = pick(scrape(served[0]), P + "platform_possibly_locked")
    assert locked == {
        (("target", "bosh-director"),): 0,
        (("target", "cf"),): 1,
        (("target", "sandbox"),): 0,
    }


def test_histogram_and_bytes(served: tuple[int, DaemonMetrics]) -> None:
    """Durations land in their buckets up to 24 h; artifact and stored bytes come from
    succeeded backups and exports only (an unlock-failed backup's bytes do not count)."""
    found = scrape(served[0])
    director = {"plan": "nightly", "target": "bosh-director", "kind": "backup"}
    buckets = pick(found, P + "run_duration_seconds_bucket", **director)
    assert buckets[(("le", "60.0"),)] == 1
    assert buckets[(("le", "300.0"),)] == 2
    assert buckets[(("le", "900.0"),)] == 3
    assert buckets[(("le", "86400.0"),)] == 3
    assert buckets[(("le", "+Inf"),)] == 3
    assert value(found, P + "run_duration_seconds_count", **director) == 3
    assert value(found, P + "run_duration_seconds_sum", **director) == 580
    assert value(found, P + "artifact_bytes", plan="nightly", target="bosh-director") == 1000
    assert value(found, P + "artifact_bytes", plan="nightly", target="om") == 50
    assert value(found, P + "uploaded_bytes_total", plan="nightly", target="cf") == 3000


def test_schedule_probes_and_daemon_gauges(served: tuple[int, DaemonMetrics]) -> None:
    """Schedule facts for the active plan, paused for both; probe results; live gauges."""
    port, metrics = served
    metrics.set_steps(2, 1)
    metrics.set_plans(1, 1)
    found = scrape(port)
    next_run = datetime(2026, 3, 3, 2, 0, tzinfo=UTC).timestamp()
    assert pick(found, P + "next_run_timestamp_seconds") == {(("plan", "nightly"),): next_run}
    assert pick(found, P + "schedule_expected_interval_seconds") == {(("plan", "nightly"),): 86400}
    assert pick(found, P + "plan_paused") == {(("plan", "nightly"),): 0, (("plan", "weekly"),): 1}
    assert value(found, P + "storage_up") == 1
    assert value(found, P + "catalog_up") == 1
    assert pick(found, P + "jumpbox_up") == {(("jumpbox", "jb-1"),): 1, (("jumpbox", "jb-2"),): 0}
    assert set(pick(found, P + "probe_timestamp_seconds").values()) == {NOW.timestamp()}
    assert pick(found, P + "daemon_steps") == {
        (("state", "running"),): 2,
        (("state", "waiting"),): 1,
    }
    assert pick(found, P + "daemon_plans") == {
        (("status", "paused"),): 1,
        (("status", "scheduled"),): 1,
    }


def test_a_fresh_feed_on_the_same_catalog_scrapes_identically(
    served: tuple[int, DaemonMetrics], catalog: SqlCatalog, tmp_path: Path
) -> None:
    """What a restart does: a new registry and feed over the same catalog export the same."""
    before = scrape(served[0])
    metrics = DaemonMetrics.create()
    config = validate_data(config_data(tmp_path))
    feed = MetricsFeed(catalog, FixedClock(), config, metrics.publish, "9.9.9", fake_probes)
    feed.probe()
    feed.refresh()
    server = metrics.serve("127.0.0.1", 0)
    try:
        assert scrape(server.port) == before
    finally:
        server.shutdown()


def test_a_busy_port_is_a_metrics_error(served: tuple[int, DaemonMetrics]) -> None:
    """Listening on a port already taken fails with the address in the message."""
    with pytest.raises(MetricsError, match=rf"127\.0\.0\.1:{served[0]}"):
        DaemonMetrics.create().serve("127.0.0.1", served[0])


def test_real_probes_against_the_test_bed(
    tmp_path: Path, jumpbox: Jumpbox, seaweedfs: S3Server, bucket: BucketFactory
) -> None:
    """storage_up: a listing under the prefix of the real bucket (down for a missing bucket);
    jumpbox_up: an SSH connection with the host key verified (down for a wrong key)."""
    data = check_config_data(tmp_path, jumpbox, seaweedfs, bucket(seaweedfs))
    data["metrics"] = {"probe_timeout": "5s"}
    good = validate_data(data)
    assert run_probes(default_probes(good), 5) == {"storage": True, "jumpbox:check-jumpbox": True}
    data["object_store"]["bucket"] = f"missing-{secrets.token_hex(4)}"
    data["jumpboxes"][0].pop("known_hosts_file")
    data["jumpboxes"][0]["host_key_fingerprint"] = WRONG_FINGERPRINT
    bad = validate_data(data)
    assert run_probes(default_probes(bad), 5) == {"storage": False, "jumpbox:check-jumpbox": False}
