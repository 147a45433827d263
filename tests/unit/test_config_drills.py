"""Config cross-checks that keep a restore drill off production targets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bbr_orchestrator.config import validate_data
from bbr_orchestrator.config.example import EXAMPLE
from bbr_orchestrator.errors import ConfigError

PATH = "plans[0].drills[0].target"


def _with_drill_into(target: str, **extra: Any) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE)
    data["plans"][0]["drills"][0].update(target=target, **extra)
    return data


def _problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_data(data)
    return {p.path: p.message for p in info.value.problems}


def test_a_drill_into_a_target_some_plan_backs_up_is_refused() -> None:
    """A drill target that a plan backs up is production: refused, naming the plan."""
    data = _with_drill_into("bosh-director-2")
    data["targets"].append({**data["targets"][0], "name": "bosh-director-2"})
    data["plans"].append({**copy.deepcopy(data["plans"][0]), "name": "other", "drills": []})
    data["plans"][1]["targets"] = ["bosh-director-2"]
    message = _problems(data)[PATH]
    assert "'bosh-director-2' is backed up by plan 'other'" in message
    assert "allow_source_as_target" in message


def test_the_explicit_flag_allows_a_drill_into_a_backed_up_target() -> None:
    """allow_source_as_target: true is the operator's explicit yes for that too."""
    data = _with_drill_into("bosh-director-2", allow_source_as_target=True)
    data["targets"].append({**data["targets"][0], "name": "bosh-director-2"})
    data["plans"].append({**copy.deepcopy(data["plans"][0]), "name": "other", "drills": []})
    data["plans"][1]["targets"] = ["bosh-director-2"]
    validate_data(data)


def test_a_sandbox_that_no_plan_backs_up_is_accepted() -> None:
    """The example's drill into a sandbox director that no plan backs up is valid."""
    validate_data(copy.deepcopy(EXAMPLE))
