"""The shipped Prometheus rules (config/bbr-orchestrator.rules.yml): promtool's syntax check
and unit tests (config/tests/*.yml), and the conventions every alert follows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bbr_orchestrator.core.metrics_model import METRIC_NAMES
from tests.e2e.prometheus_kit import JOB_NAME, require_binary

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "config" / "bbr-orchestrator.rules.yml"
RULE_TESTS = sorted((REPO / "config" / "tests").glob("*.yml"))
README = REPO / "README.md"

# The alerts the issue asks for; more may be added, none of these removed.
REQUIRED_ALERTS = {
    "BackupStale",
    "OpsManagerExportStale",
    "BackupLastRunFailed",
    "PlatformPossiblyLocked",
    "VerificationStale",
    "DrillStale",
    "StorageDown",
    "JumpboxDown",
    "CatalogDown",
    "DaemonAbsent",
}
SEVERITIES = {"page", "ticket"}
# Words of PromQL that look like identifiers but are not metric names.
PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}
AGGREGATORS = {"sum", "min", "max", "avg", "group", "count", "stddev", "stdvar", "topk", "bottomk"}


def alerts() -> list[dict[str, Any]]:
    """Every alerting rule of the shipped file."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels dropped)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    # Label lists of grouping and matching modifiers: "by (plan, target)".
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1 ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if word.lower() in PROMQL_WORDS or word in AGGREGATORS or rest.startswith("("):
            continue  # a keyword, an aggregation, or a function call
        names.add(word)
    return names


def test_promtool_check_rules_accepts_the_rule_file() -> None:
    """`promtool check rules` accepts the shipped rule file."""
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda path: path.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    """`promtool test rules` passes for each unit test file in config/tests/."""
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_required_alerts_exist_once_each() -> None:
    """Every alert the issue asks for is shipped, and no alert name is used twice."""
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    assert REQUIRED_ALERTS - set(names) == set()


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_alert_has_for_severity_and_runbook(rule: dict[str, Any]) -> None:
    """Each alert has a `for:`, a page/ticket severity, a summary and a runbook description."""
    assert re.fullmatch(r"\d+[smhd]", str(rule.get("for", ""))), rule.get("for")
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert "\n" not in annotations["summary"]
    assert "`bbr-orchestrator " in annotations["description"]


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_alert_selects_only_exported_metrics(rule: dict[str, Any]) -> None:
    """Each expression selects only metrics the daemon exports, or the scrape's `up`."""
    names = metric_names(rule["expr"])
    assert names, rule["expr"]
    assert names <= METRIC_NAMES | {"up"}, names - METRIC_NAMES


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_alert_uses_no_lifetime_counter(rule: dict[str, Any]) -> None:
    """No rule reads a counter: ratios of lifetime counters go blind after a healthy year."""
    assert not any(name.endswith("_total") for name in metric_names(rule["expr"]))


def test_up_is_matched_by_the_documented_job_name() -> None:
    """Every `up` selector matches job="bbr-orchestrator", the job the README tells to use."""
    selectors = [s for rule in alerts() for s in re.findall(r"\bup\{[^}]*\}", rule["expr"])]
    assert selectors
    assert all(s == f'up{{job="{JOB_NAME}"}}' for s in selectors), selectors
    assert f"job_name: {JOB_NAME}" in README.read_text(encoding="utf-8")


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    """config/tests/ has, for every alert, a case where it fires and one where it does not."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "no firing case"
    assert names - quiet == set(), "no quiet case"


def test_metric_names_parser_sees_through_promql() -> None:
    """The parser used above keeps metric names and drops functions, labels and keywords."""
    expr = (
        'max by (plan, target) (last_over_time(a_b{kind="x", c="y"}[14d])) < on (plan) '
        "group_left () (time() - 1.5 * c_d) unless on () (up == 1) or absent(e_f offset 5m)"
    )
    assert metric_names(expr) == {"a_b", "c_d", "up", "e_f"}
