"""A real Prometheus scrapes the live daemon and evaluates the shipped alert rules."""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from bbr_orchestrator.sandbox import bbrsim
from bbr_orchestrator.sandbox.s3server import BucketFactory, S3Server
from bbr_orchestrator.sandbox.sshd import Jumpbox, running_sshd

from .daemon_kit import CLIENT_SECRET, Bed, free_port, postgres_database
from .prometheus_kit import running_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def bed(tmp_path: Path, seaweedfs: S3Server, bucket: BucketFactory) -> Iterator[Bed]:
    base = tmp_path / "jumpbox"
    bin_dir, state = base / "bin", base / "bbr-state"
    bbrsim.install(bin_dir, state)
    (state / "deployment_secret").write_text(CLIENT_SECRET, encoding="utf-8")
    env = {"BBR_SIM_STATE": str(state)}
    box: Jumpbox
    with running_sshd(base / "sshd", bin_dir=bin_dir, env=env) as box, postgres_database() as url:
        test_bed = Bed(tmp_path, [box], state, seaweedfs, bucket(seaweedfs), url)
        try:
            yield test_bed
        finally:
            test_bed.stop_all()


def test_a_failed_backup_raises_the_shipped_alert_in_a_real_prometheus(bed: Bed) -> None:
    """Prometheus scrapes the daemon on loopback; a plan whose backup fails makes the shipped
    BackupLastRunFailed alert pending or firing for that plan and target; no paging alert fires."""
    token = secrets.token_hex(3)
    director, host = f"dir-{token}", f"10.9.{secrets.randbelow(250)}.6"
    plan = {
        "name": f"alerting-{token}",
        "targets": [director],
        "schedule": "*/5 * * * * *",
        "timezone": "UTC",
        "pre_backup_check": False,
    }
    port = free_port()
    data = bed.with_metrics(bed.config([bed.director(director, host)], [plan]), port)
    config = bed.write_config(data)
    assert bed.cli(config, "db", "upgrade").returncode == 0
    bbrsim.set_faults(
        bed.bbr_state,
        bbrsim.Faults(target=host, commands=["backup"], fail_scripts=["fake-db/backup"]),
    )
    daemon = bed.start_daemon(config)
    daemon.wait_event("metrics_listening", timeout=60)
    with running_prometheus(bed.base / "prometheus", [f"127.0.0.1:{port}"]) as prometheus:
        prometheus.wait_for_scrape()
        alert = prometheus.wait_for_alert(
            "BackupLastRunFailed", labels={"plan": plan["name"], "target": director}, timeout=120
        )
        assert alert["state"] in ("pending", "firing")
        assert alert["labels"]["outcome"] == "failed"
        assert "bbr-orchestrator" in alert["annotations"]["description"]
        unhealthy = [
            rule["name"]
            for group in prometheus.rule_groups()
            for rule in group["rules"]
            if rule.get("health") not in ("ok", "unknown")
        ]
        assert unhealthy == [], unhealthy
        paging = [
            a["labels"]["alertname"]
            for a in prometheus.alerts()
            if a["labels"].get("severity") == "page" and a["state"] == "firing"
        ]
        assert paging == [], paging
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit(60) == 0
