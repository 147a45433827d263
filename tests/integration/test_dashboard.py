"""The shipped Grafana dashboard (config/grafana-dashboard.json): its structure, the metric
names its queries use, and every query evaluated by a real Prometheus."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bbr_orchestrator.core.metrics_model import METRIC_NAMES
from tests.e2e.prometheus_kit import (
    PrometheusServer,
    require_binary,
    running_prometheus,
    sample_exposition,
    serving_exposition,
)

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "config" / "grafana-dashboard.json"
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")
# What Grafana puts in place of its variables before a query reaches Prometheus.
GRAFANA_VARIABLES = {
    "${datasource}": "",
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$plan": ".*",
    "$target": ".*",
}


def dashboard() -> dict[str, Any]:
    """The dashboard JSON, parsed."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels() -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    out = []
    for panel in dashboard()["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    found = [
        (f"panel {p['title']!r} {t['refId']}", t["expr"])
        for p in panels()
        for t in p.get("targets", [])
    ]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            found.append((f"variable {variable['name']}", variable["definition"]))
    return found


def metric_names(expr: str) -> set[str]:
    """The bbr_orchestrator_* names in ``expr``, histogram series mapped to their family."""
    names = re.findall(r"bbr_orchestrator_[a-z_]+", expr)
    return {HISTOGRAM_SERIES.sub("", name) for name in names}


def substituted(expr: str) -> str:
    """``expr`` as Grafana sends it with every plan and target selected."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def test_dashboard_parses_with_datasource_and_filter_variables() -> None:
    """The JSON parses and has the Prometheus datasource, plan and target variables."""
    board = dashboard()
    assert board["title"] and board["uid"]
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("plan", "target"):
        assert variables[name]["type"] == "query"
        assert variables[name]["definition"].startswith("label_values(")
        assert variables[name]["definition"].endswith(f", {name})")
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"


def test_every_panel_has_a_title_and_a_unique_id() -> None:
    """Every panel (rows included) has a non-empty title and an id no other panel uses."""
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    assert [p for p in panels() if not str(p.get("title", "")).strip()] == []


def test_every_query_uses_the_datasource_variable() -> None:
    """Panels and their targets query Prometheus through ${datasource}, never a fixed uid."""
    expected = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == expected, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == expected for t in panel["targets"]), panel["title"]


def test_queries_use_only_exported_metric_names() -> None:
    """Every bbr_orchestrator_* name in a query is one the daemon exports (METRIC_NAMES)."""
    unknown = {
        where: sorted(metric_names(expr) - METRIC_NAMES)
        for where, expr in queries()
        if metric_names(expr) - METRIC_NAMES
    }
    assert unknown == {}


def test_dashboard_covers_the_main_metrics() -> None:
    """The dashboard shows last success, outcomes, durations, sizes, runs, locks and health."""
    used = set().union(*(metric_names(expr) for _, expr in queries()))
    wanted = {
        "last_success_timestamp_seconds",
        "last_outcome",
        "run_duration_seconds",
        "artifact_bytes",
        "runs_total",
        "platform_possibly_locked",
        "storage_up",
        "jumpbox_up",
        "catalog_up",
        "next_run_timestamp_seconds",
    }
    assert {f"bbr_orchestrator_{name}" for name in wanted} - used == set()


def test_metric_names_maps_histogram_series_to_the_family() -> None:
    """_bucket, _sum and _count series count as their histogram's family name."""
    expr = "rate(bbr_orchestrator_run_duration_seconds_bucket[5m]) + x_sum"
    assert metric_names(expr) == {"bbr_orchestrator_run_duration_seconds"}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus that has scraped an exposition of every metric family twice."""
    require_binary("prometheus")
    with (
        serving_exposition(lambda: sample_exposition(time.time())) as target,
        running_prometheus(tmp_path_factory.mktemp("prometheus"), [target]) as server,
    ):
        server.wait_for_scrape()
        time.sleep(2.5)  # a few scrapes, so that increase() has two samples
        yield server


@pytest.mark.parametrize(("where", "expr"), queries(), ids=[where for where, _ in queries()])
def test_query_evaluates_to_data_in_prometheus(
    prometheus: PrometheusServer, where: str, expr: str
) -> None:
    """Prometheus accepts the query and returns series for an exposition of every family."""
    if expr.startswith("label_values("):
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", expr)
        assert match, expr
        expr = f"count by ({match.group(2)}) ({match.group(1)})"
    result = prometheus.query(substituted(expr))
    assert result, f"{where}: no series for {substituted(expr)}"
