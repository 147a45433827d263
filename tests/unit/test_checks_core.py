"""Check records: how they add up, and the monitoring-plugin exit codes."""

from __future__ import annotations

import pytest

from bbr_orchestrator.core.checks import (
    CheckResult,
    CheckStatus,
    exit_code,
    overall,
    parse_df_available,
    space_check,
)


def rec(status: CheckStatus) -> CheckResult:
    return CheckResult("ssh", "jumpbox-1", status, "detail")


def test_overall_of_nothing_is_ok() -> None:
    """No records at all is OK (exit 0)."""
    assert overall([]) is CheckStatus.OK
    assert exit_code(overall([])) == 0


@pytest.mark.parametrize(
    ("statuses", "worst"),
    [
        ([CheckStatus.OK, CheckStatus.OK], CheckStatus.OK),
        ([CheckStatus.OK, CheckStatus.WARNING], CheckStatus.WARNING),
        ([CheckStatus.CRITICAL, CheckStatus.WARNING, CheckStatus.OK], CheckStatus.CRITICAL),
    ],
)
def test_overall_is_the_worst(statuses: list[CheckStatus], worst: CheckStatus) -> None:
    """The overall status is the worst record's, whatever the order."""
    assert overall(rec(s) for s in statuses) is worst
    assert overall(rec(s) for s in reversed(statuses)) is worst


def test_exit_codes_follow_monitoring_plugins() -> None:
    """OK 0, WARNING 1, CRITICAL 2, as Nagios/Icinga plugins exit."""
    assert [exit_code(s) for s in CheckStatus] == [0, 1, 2]


def test_df_available_is_parsed_in_bytes() -> None:
    """`df -Pk` output gives the Available column times 1024, even with spaces in the device."""
    out = [
        "Filesystem     1024-blocks     Used Available Capacity Mounted on",
        "/dev/sda1         10000000  4000000   6000000      40% /var/vcap",
    ]
    assert parse_df_available(out) == 6_000_000 * 1024
    spaced = [out[0], "map auto home  10 5 5 50% /home/my dir"]
    assert parse_df_available(spaced) == 5 * 1024


def test_df_garbage_is_rejected() -> None:
    """Output that is not df's shape raises ValueError (the check turns it into CRITICAL)."""
    with pytest.raises(ValueError, match="unexpected df output"):
        parse_df_available(["df: /nope: No such file or directory"])


def test_space_warning_below_twice_the_last_backup() -> None:
    """Free space under 2x the last backup warns; at 2x or more, or with no backup, it is OK."""
    assert space_check("j", "/w", 199, 100).status is CheckStatus.WARNING
    ok = space_check("j", "/w", 200, 100)
    assert ok.status is CheckStatus.OK and "200 bytes free in /w" in ok.detail
    assert space_check("j", "/w", 1, None).status is CheckStatus.OK
