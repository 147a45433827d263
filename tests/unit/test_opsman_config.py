"""The opsman target kind: one login pair, TLS choice, URL hygiene, cross-references, wiring."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bbr_orchestrator.config import validate_data
from bbr_orchestrator.config.example import EXAMPLE
from bbr_orchestrator.config.schema import Config, OpsmanTarget
from bbr_orchestrator.errors import ConfigError, InvalidOperation
from bbr_orchestrator.service.wiring import opsman_run, target_run

OPSMAN = 3
"""Index of the opsman target in the example's targets."""


def example() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE)


def problems(data: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_data(data)
    return {p.path: p.message for p in info.value.problems}


def with_opsman(**changes: Any) -> dict[str, Any]:
    data = example()
    target = data["targets"][OPSMAN]
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return data


def test_example_opsman_target_is_typed_with_defaults() -> None:
    """The example's opsman target loads as OpsmanTarget with om's defaults filled in."""
    target = validate_data(example()).target("opsman")
    assert isinstance(target, OpsmanTarget)
    assert (target.om_path, target.skip_ssl_validation) == ("om", False)
    assert target.request_timeout.total_seconds() == 7200


def test_client_credentials_instead_of_a_user() -> None:
    """A UAA client pair is a valid login on its own."""
    data = with_opsman(
        username=None,
        password=None,
        client_id="bbr_client",
        client_secret={"env": "OPSMAN_CLIENT_SECRET"},
    )
    target = validate_data(data).target("opsman")
    assert isinstance(target, OpsmanTarget) and target.client_id == "bbr_client"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"username": None, "password": None}, "set exactly one login"),
        ({"client_id": "c", "client_secret": {"env": "S"}}, "set exactly one login"),
        ({"password": None}, "username and password go together"),
        ({"client_id": "c"}, "client_id and client_secret go together"),
        ({"skip_ssl_validation": True}, "not both"),
        ({"url": "https://admin:pw@opsman.example"}, "contains credentials"),
        ({"url": "ftp://opsman.example"}, "scheme must be https"),
        ({"url": "https://"}, "not an Ops Manager URL"),
    ],
)
def test_bad_opsman_targets_are_named(changes: dict[str, Any], message: str) -> None:
    """Each mistake is reported under the target's path with a clear message."""
    found = problems(with_opsman(**changes))
    assert any(
        path.startswith(f"targets[{OPSMAN}]") and message in text for path, text in found.items()
    ), found


def test_inline_password_is_refused() -> None:
    """The password is a secret reference, never inline text."""
    found = problems(with_opsman(password="hunter2"))
    assert "secrets are never written inline" in found[f"targets[{OPSMAN}].password"]


def test_opsman_must_come_first_in_a_plan() -> None:
    """The installation export is the first step: an opsman target after the director is named."""
    data = example()
    data["plans"][0]["targets"] = ["bosh-director", "opsman", "cf"]
    assert "must come before" in problems(data)["plans[0].targets[1]"]
    data["plans"][0]["targets"] = ["opsman", "bosh-director", "cf"]
    validate_data(data)


def test_opsman_cannot_be_drilled() -> None:
    """A drill restores a bbr backup: an Ops Manager as its source is refused."""
    data = example()
    data["plans"][0]["targets"] = ["opsman", "bosh-director", "cf"]
    data["plans"][0]["drills"][0]["source"] = "opsman"
    assert "is an Ops Manager" in problems(data)["plans[0].drills[0].source"]


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Config:
    password = tmp_path / "password"
    password.write_text("opsman-secret-pw\n")
    data = with_opsman(
        password={"file": str(password)},
        decryption_passphrase={"env": "OPSMAN_PASSPHRASE"},
        request_timeout="90m",
    )
    monkeypatch.setenv("OPSMAN_PASSPHRASE", "the-passphrase")
    return validate_data(data)


def test_opsman_run_puts_secrets_in_env_and_flags_in_argv(config: Config) -> None:
    """The wiring resolves the secrets into OM_* variables; the argv has flags, never secrets."""
    spec = opsman_run(config, "opsman", plan="nightly")
    assert spec.env == {
        "OM_USERNAME": "admin",
        "OM_PASSWORD": "opsman-secret-pw",
        "OM_DECRYPTION_PASSPHRASE": "the-passphrase",
    }
    assert spec.build_argv("/w/r/installation.zip") == (
        "om",
        "--target",
        "https://opsman.example.internal",
        "--ca-cert",
        "/home/ubuntu/opsman_ca.pem",
        "--request-timeout",
        "5400",
        "export-installation",
        "--output-file",
        "/w/r/installation.zip",
    )
    assert (spec.target, spec.plan, spec.work_root) == ("opsman", "nightly", "bbr-orchestrator")


def test_bbr_and_om_wiring_refuse_each_others_targets(config: Config) -> None:
    """target_run refuses an Ops Manager, opsman_run refuses a director, each with the reason."""
    with pytest.raises(InvalidOperation, match="exported with om"):
        target_run(config, "opsman")
    with pytest.raises(InvalidOperation, match="not an Ops Manager"):
        opsman_run(config, "bosh-director")
