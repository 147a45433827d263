"""object_store.object_lock: validation with path-named errors, and the retention it writes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bbr_orchestrator.adapters.s3.lock import Retention, retain_until, retained_reason
from bbr_orchestrator.config import validate_data
from bbr_orchestrator.config.example import EXAMPLE, render_example
from bbr_orchestrator.config.object_store import ObjectLockMode
from bbr_orchestrator.errors import ConfigError


def with_lock(lock: Any) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE)
    data["object_store"]["object_lock"] = lock
    return data


def problems(data: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_data(data)
    return {p.path: p.message for p in info.value.problems}


def test_object_lock_is_off_by_default() -> None:
    """Without the setting no retention is written (and deletes stay plain)."""
    assert validate_data(copy.deepcopy(EXAMPLE)).object_store.object_lock is None


def test_mode_and_retain_for_parse() -> None:
    """Both modes are accepted; retain_for takes a duration and defaults to 30 days."""
    lock = validate_data(with_lock({"mode": "governance"})).object_store.object_lock
    assert lock is not None
    assert lock.mode is ObjectLockMode.GOVERNANCE and lock.retain_for == timedelta(days=30)
    lock = validate_data(
        with_lock({"mode": "compliance", "retain_for": "5w"})
    ).object_store.object_lock
    assert lock is not None
    assert lock.mode is ObjectLockMode.COMPLIANCE and lock.retain_for == timedelta(weeks=5)


def test_mode_is_required() -> None:
    """The mode is a deliberate choice (compliance cannot be undone): no default."""
    assert "object_store.object_lock.mode" in problems(with_lock({"retain_for": "30d"}))


def test_unknown_mode_is_named() -> None:
    """A mode other than governance or compliance is an error naming its path."""
    message = problems(with_lock({"mode": "legal-hold"}))["object_store.object_lock.mode"]
    assert "governance" in message and "compliance" in message


@pytest.mark.parametrize("value", ["0s", "0", "-1d", "soon"])
def test_retain_for_must_be_a_positive_duration(value: str) -> None:
    """retain_for of zero, negative or not a duration is refused."""
    found = problems(with_lock({"mode": "compliance", "retain_for": value}))
    assert "object_store.object_lock.retain_for" in found


def test_retain_for_over_ten_years_is_taken_for_a_typo() -> None:
    """A retention longer than ten years is refused (a compliance lock cannot be shortened)."""
    found = problems(with_lock({"mode": "compliance", "retain_for": "3651d"}))
    assert "at most 3650 days" in found["object_store.object_lock.retain_for"]
    validate_data(with_lock({"mode": "compliance", "retain_for": "3650d"}))


def test_unknown_key_is_refused() -> None:
    """A misspelt key in the section is an error, not silently ignored."""
    found = problems(with_lock({"mode": "compliance", "retain_until": "30d"}))
    assert "object_store.object_lock.retain_until" in found


def test_example_documents_object_lock() -> None:
    """The generated example shows the setting (commented out) with its explanation."""
    text = render_example()
    assert "# object_lock: {mode: compliance, retain_for: 35d}" in text
    assert "Needs a versioned bucket" in " ".join(text.split())


def test_retention_rounds_retain_until_up_to_a_whole_second() -> None:
    """Stores keep whole seconds: retain-until is write time + retain_for, rounded up."""
    now = datetime(2026, 1, 2, 3, 4, 5, 250_000, tzinfo=UTC)
    params = Retention(ObjectLockMode.COMPLIANCE, timedelta(days=1), lambda: now).params()
    assert params == {
        "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": datetime(2026, 1, 3, 3, 4, 6, tzinfo=UTC),
    }
    exact = now.replace(microsecond=0)
    params = Retention(ObjectLockMode.GOVERNANCE, timedelta(hours=1), lambda: exact).params()
    assert params["ObjectLockMode"] == "GOVERNANCE"
    assert params["ObjectLockRetainUntilDate"] == exact + timedelta(hours=1)


def test_retain_until_is_read_in_utc() -> None:
    """A HeadObject date in any zone comes back as UTC; no date means not locked."""
    local = datetime(2026, 1, 2, 4, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=1)))
    assert retain_until({"ObjectLockRetainUntilDate": local}) == datetime(
        2026, 1, 2, 4, 0, tzinfo=UTC
    )
    assert retain_until({}) is None


def test_retained_reason_names_the_date_and_mode() -> None:
    """The per-key failure text prune relies on: "retained until <ISO date> (<mode> mode)"."""
    until = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert retained_reason(until, "COMPLIANCE") == (
        "retained until 2026-01-02T03:04:05Z (compliance mode)"
    )
    assert retained_reason(until, None) == "retained until 2026-01-02T03:04:05Z"
