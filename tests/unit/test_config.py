"""Config schema: validation with path-named errors, cross-references, example file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from bbr_orchestrator.config import load_config, validate_data
from bbr_orchestrator.config.example import EXAMPLE, render_example
from bbr_orchestrator.config.loader import format_location
from bbr_orchestrator.config.schema import DeploymentTarget, DirectorTarget
from bbr_orchestrator.config.types import parse_duration
from bbr_orchestrator.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_FILE = REPO / "config" / "bbr-orchestrator.example.yml"


def example() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE)


def problems(data: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_data(data)
    return {p.path: p.message for p in info.value.problems}


def test_checked_in_example_is_current() -> None:
    """The checked-in example file is exactly what the schema generates (`config example`)."""
    assert EXAMPLE_FILE.read_text(encoding="utf-8") == render_example()


def test_example_file_is_valid() -> None:
    """The generated example loads, and its targets come out as typed director/deployment models."""
    config = load_config(EXAMPLE_FILE)
    assert isinstance(config.target("bosh-director"), DirectorTarget)
    assert isinstance(config.target("cf"), DeploymentTarget)
    assert config.plans[0].timezone == "Europe/Berlin"


def test_example_documents_every_setting() -> None:
    """Every schema field appears in the example, active or commented out."""
    text = render_example()
    for key in (
        "state_dir",
        "url:",
        "password_secret",
        "sse_kms_key_id",
        "request_checksums",
        "host_key_fingerprint",
        "keepalive_interval",
        "with_manifest",
        "all_deployments",
        "keep_within",
        "min_verified",
        "smoke_command",
        "listen_address",
        "rolling_percent",
    ):
        assert key in text, key


def test_five_mistakes_give_five_path_named_errors() -> None:
    """Five independent mistakes are all reported at once, each under its own path."""
    data = example()
    data["plans"][0]["schedule"] = "0 25 * * *"
    data["plans"][0]["timezone"] = "Europe/Atlantis"
    data["jumpboxes"][0]["port"] = 70000
    data["targets"][1]["client_secret"] = "hunter2"
    data["targets"][0]["jumpbox"] = "jumpbox-9"
    found = problems(data)
    assert set(found) == {
        "plans[0].schedule",
        "plans[0].timezone",
        "jumpboxes[0].port",
        "targets[1].client_secret",
        "targets[0].jumpbox",
    }
    assert "hunter2" not in " ".join(found.values())
    assert "unknown jumpbox 'jumpbox-9'" in found["targets[0].jumpbox"]


def test_inline_secret_is_refused_with_the_way_to_reference_one() -> None:
    """A plain string where a secret belongs is refused, explaining how to reference one."""
    data = example()
    data["targets"][1]["client_secret"] = "s3cr3t"
    message = problems(data)["targets[1].client_secret"]
    assert "{env: VAR_NAME}" in message and "{credential: NAME}" in message


def test_secret_reference_needs_exactly_one_source() -> None:
    """A secret reference with two sources (or none) is rejected."""
    data = example()
    data["targets"][1]["client_secret"] = {"env": "A", "file": "/x"}
    assert "exactly one" in problems(data)["targets[1].client_secret"]


def test_jumpbox_without_host_key_verification_is_refused() -> None:
    """There is no accept-any-host-key default: a jumpbox needs known_hosts or a fingerprint."""
    data = example()
    del data["jumpboxes"][0]["known_hosts_file"]
    assert "host keys are always verified" in problems(data)["jumpboxes[0]"]


def test_bad_fingerprint_is_refused() -> None:
    """A pinned fingerprint must look like ssh-keygen's SHA256:... output."""
    data = example()
    del data["jumpboxes"][0]["known_hosts_file"]
    data["jumpboxes"][0]["host_key_fingerprint"] = "MD5:aa:bb"
    assert "SHA256:" in problems(data)["jumpboxes[0].host_key_fingerprint"]


def test_ipv6_director_host_is_refused() -> None:
    """bbr cannot take an IPv6 literal in --host, so the config refuses it."""
    data = example()
    data["targets"][0]["host"] = "fd00::6"
    assert "IPv6" in problems(data)["targets[0].host"]


def test_unknown_kind_and_unknown_key() -> None:
    """A wrong target kind and a misspelt key are named by path."""
    data = example()
    data["targets"][0]["kind"] = "tile"
    data["jumpboxes"][0]["hots"] = "x"
    found = problems(data)
    assert found["targets[0].kind"] == "kind must be 'director', 'deployment' or 'opsman'"
    assert "not a known setting" in found["jumpboxes[0].hots"]


def test_deployment_needs_a_name_or_all() -> None:
    """A deployment target sets exactly one of deployment or all_deployments."""
    data = example()
    data["targets"][1]["all_deployments"] = True
    assert "exactly one of deployment" in problems(data)["targets[1]"]


def test_duplicate_names_and_unknown_plan_targets() -> None:
    """Duplicate names and plan references to missing targets are reported by path."""
    data = example()
    data["targets"][2]["name"] = "cf"
    data["plans"][0]["targets"] = ["bosh-director", "diego"]
    found = problems(data)
    assert "duplicate name 'cf'" in found["targets[2].name"]
    assert "unknown target 'diego'" in found["plans[0].targets[1]"]


def test_drill_into_its_own_source_is_refused() -> None:
    """A drill that would restore over its source needs an explicit allow flag."""
    data = example()
    data["plans"][0]["drills"][0]["target"] = "bosh-director"
    assert "restores over it" in problems(data)["plans[0].drills[0]"]
    data["plans"][0]["drills"][0]["allow_source_as_target"] = True
    validate_data(data)


def test_drill_target_of_the_wrong_kind_is_refused() -> None:
    """A director backup cannot be drilled into a deployment target."""
    data = example()
    data["plans"][0]["drills"][0]["target"] = "cf"
    assert "cannot be restored into" in problems(data)["plans[0].drills[0].target"]


def test_a_plan_verify_job_is_typed_and_defaults_to_latest() -> None:
    """The example's verify job loads (rolling, 10%); without mode it re-reads the latest;
    a plan without one has none."""
    config = validate_data(example())
    verify = config.plans[0].verify
    assert verify is not None
    assert (verify.schedule, verify.timezone, verify.mode, verify.rolling_percent) == (
        "0 8 * * *",
        "Europe/Berlin",
        "rolling",
        10,
    )
    data = example()
    data["plans"][0]["verify"] = {"schedule": "*/5 * * * * *", "timezone": "UTC"}
    assert validate_data(data).plans[0].verify.mode == "latest"  # type: ignore[union-attr]
    del data["plans"][0]["verify"]
    assert validate_data(data).plans[0].verify is None


def test_a_bad_verify_job_is_reported_by_path() -> None:
    """Schedule, time zone, mode and a percentage outside 1..100 each name their path."""
    data = example()
    data["plans"][0]["verify"] = {
        "schedule": "0 25 * * *",
        "timezone": "Mars/Olympus",
        "mode": "sometimes",
        "rolling_percent": 0,
    }
    found = problems(data)
    for field in ("schedule", "timezone", "mode", "rolling_percent"):
        assert f"plans[0].verify.{field}" in found, found
    data["plans"][0]["verify"] = {"schedule": "0 8 * * *", "timezone": "UTC", "every": "day"}
    assert "plans[0].verify.every" in problems(data)
    data["plans"][0]["verify"] = {"timezone": "UTC", "rolling_percent": 101}
    found = problems(data)
    assert "plans[0].verify.schedule" in found and "plans[0].verify.rolling_percent" in found


def test_catalog_url_with_password_is_refused() -> None:
    """A password inside the catalog URL is refused in favour of password_secret."""
    data = example()
    data["catalog"] = {"url": "postgresql://bbr:pw@db/bbr"}
    assert "password_secret" in problems(data)["catalog.url"]


def test_default_catalog_is_sqlite_under_state_dir(tmp_path: Path) -> None:
    """Without a catalog URL, the catalog is a SQLite file under state_dir."""
    data = example()
    data["state_dir"] = str(tmp_path)
    assert validate_data(data).catalog_url() == f"sqlite:///{tmp_path}/catalog.sqlite3"


def test_empty_section_means_defaults() -> None:
    """A section left empty in YAML (only comments under it) takes its defaults."""
    data = example()
    data["catalog"] = None
    data["logging"] = None
    assert validate_data(data).logging.level == "info"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90),
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 604800),
        ("2w", 1209600),
    ],
)
def test_parse_duration(text: object, seconds: int) -> None:
    """Durations accept plain seconds and s/m/h/d/w suffixes."""
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "1y", "-5s", "5 minutes", True])
def test_parse_duration_rejects(text: object) -> None:
    """Malformed durations are refused."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_location() -> None:
    """pydantic locations become plans[1].schedule paths, without union tags."""
    assert format_location(("plans", 1, "schedule")) == "plans[1].schedule"
    assert format_location(("targets", 0, "director", "host")) == "targets[0].host"
    assert format_location(()) == ""


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    """A missing file and a YAML syntax error both name the file (and the line)."""
    with pytest.raises(ConfigError, match="file not found") as info:
        load_config(tmp_path / "nope.yml")
    assert str(tmp_path / "nope.yml") in str(info.value)
    bad = tmp_path / "bad.yml"
    bad.write_text("plans: [\n  - x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2, column 3"):
        load_config(bad)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    """An empty file or a list at the top is a clear error, not a crash."""
    empty = tmp_path / "empty.yml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got empty"):
        load_config(empty)


def test_example_round_trips_through_yaml() -> None:
    """The example is plain YAML (no tags), so other tools can read it too."""
    assert yaml.safe_load(render_example())["object_store"]["bucket"] == "foundation-backups"


def test_encryption_keys_and_the_plan_key_are_typed() -> None:
    """encryption.keys holds id + secret reference; a plan names its key by id (the example
    encrypts its plan); a plan without one is not encrypted."""
    config = validate_data(example())
    assert [k.id for k in config.encryption.keys] == ["key-2026-01"]
    assert config.encryption.keys[0].key.describe() == "credential:backup_key_2026_01"
    assert config.plans[0].encryption_key == "key-2026-01"
    data = example()
    del data["encryption"], data["plans"][0]["encryption_key"]
    bare = validate_data(data)
    assert bare.encryption.keys == [] and bare.plans[0].encryption_key is None


def test_unknown_and_duplicate_encryption_keys_are_reported_by_path() -> None:
    """A plan naming a key that is not configured, a duplicate key id and an inline key are
    each reported under their own path, at once."""
    data = example()
    data["plans"][0]["encryption_key"] = "key-2027-01"
    data["encryption"]["keys"].append({"id": "key-2026-01", "key": {"env": "OTHER_KEY"}})
    data["encryption"]["keys"].append({"id": "key-inline", "key": "c2VjcmV0"})
    found = problems(data)
    assert "unknown encryption key 'key-2027-01'" in found["plans[0].encryption_key"]
    assert "(known: key-2026-01, key-inline)" in found["plans[0].encryption_key"]
    assert "duplicate key id 'key-2026-01'" in found["encryption.keys[1].id"]
    assert "never written inline" in found["encryption.keys[2].key"]
    assert "c2VjcmV0" not in " ".join(found.values())
