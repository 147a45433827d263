"""The Prometheus test kit against a static exposition: a real prometheus scrapes it, loads the
shipped rule file, and the failure alert becomes pending (its ``for:`` is minutes long)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.prometheus_kit import (
    JOB_NAME,
    RULES_FILE,
    PrometheusServer,
    require_binary,
    running_prometheus,
    sample_exposition,
    serving_exposition,
)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Prometheus scraping a static exposition whose last backup of cf failed."""
    require_binary("prometheus")
    with (
        serving_exposition(lambda: sample_exposition(time.time(), failed=("cf",))) as target,
        running_prometheus(tmp_path_factory.mktemp("prometheus"), [target]) as server,
    ):
        server.wait_for_scrape()
        yield server
    assert server.returncode == 0, server.log_tail()


def test_scrapes_the_target_under_the_rules_job_name(prometheus: PrometheusServer) -> None:
    """The exposition is scraped as job bbr-orchestrator and its series can be queried."""
    assert JOB_NAME in RULES_FILE.read_text(encoding="utf-8")
    result = prometheus.query(
        'bbr_orchestrator_last_outcome{kind="backup", target="cf", outcome="failed"}'
    )
    assert [(r["metric"]["job"], r["value"][1]) for r in result] == [(JOB_NAME, "1")]


def test_loads_the_shipped_rule_file_without_errors(prometheus: PrometheusServer) -> None:
    """Every group and rule of the shipped file is loaded and evaluates without an error."""
    prometheus.wait_for_rule_evaluations(2)
    shipped = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    groups = prometheus.rule_groups()
    assert {g["file"] for g in groups} == {str(RULES_FILE)}
    assert {g["name"]: [r["name"] for r in g["rules"]] for g in groups} == {
        g["name"]: [r["alert"] for r in g["rules"]] for g in shipped
    }
    unhealthy = [(r["name"], r["health"], r.get("lastError")) for g in groups for r in g["rules"]]
    assert [u for u in unhealthy if u[1] != "ok" or u[2]] == []


def test_backup_failure_alert_becomes_pending_or_firing(prometheus: PrometheusServer) -> None:
    """BackupLastRunFailed is raised for cf, with the runbook rendered for that target."""
    alert = prometheus.wait_for_alert("BackupLastRunFailed", labels={"target": "cf"})
    assert alert["state"] in ("pending", "firing")
    assert alert["labels"] == {
        "alertname": "BackupLastRunFailed",
        "plan": "nightly",
        "target": "cf",
        "outcome": "failed",
        "severity": "ticket",
    }
    assert alert["annotations"]["summary"] == "Last backup of cf (plan nightly): failed"
    assert (
        "`bbr-orchestrator runs list --target cf --kind backup"
        in (alert["annotations"]["description"])
    )


def test_healthy_series_raise_no_other_alert(prometheus: PrometheusServer) -> None:
    """With fresh timestamps and every probe up, only the cf failure alerts."""
    prometheus.wait_for_alert("BackupLastRunFailed")
    prometheus.wait_for_rule_evaluations(2)
    assert {a["labels"]["alertname"] for a in prometheus.alerts()} == {"BackupLastRunFailed"}


def test_query_returns_scalars_and_vectors(prometheus: PrometheusServer) -> None:
    """query() answers instant vectors and scalars from the live server."""
    assert float(prometheus.query("time()")[0]["value"][1]) == pytest.approx(time.time(), abs=60)
    up = prometheus.query(f'up{{job="{JOB_NAME}"}}')
    assert [sample["value"][1] for sample in up] == ["1"]


def test_stale_backup_alert_goes_pending_when_the_success_is_old(tmp_path: Path) -> None:
    """BackupStale goes pending for a target whose last success is 2+ days old (daily plan)."""
    require_binary("prometheus")

    with (
        serving_exposition(lambda: sample_exposition(time.time(), (), ["director"])) as target,
        running_prometheus(tmp_path, [target]) as server,
    ):
        server.wait_for_scrape()
        alert = server.wait_for_alert("BackupStale")
        server.wait_for_rule_evaluations(2)
        assert (alert["labels"]["target"], alert["labels"]["severity"]) == ("director", "ticket")
        assert {a["labels"]["alertname"] for a in server.alerts()} == {"BackupStale"}
    assert server.returncode == 0, server.log_tail()
