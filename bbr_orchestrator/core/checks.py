"""Pre-flight check results as records (after Barman's ``check``), and how they add up.

A check never raises: it ends as a :class:`CheckResult`. The records render as a table for
people, JSON for scripts, and an exit code with monitoring-plugin semantics (Nagios, Icinga,
Sensu): 0 OK, 1 WARNING, 2 CRITICAL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum


class CheckStatus(Enum):
    """How one check (or all of them) came out, in rising order of severity."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {CheckStatus.OK: 0, CheckStatus.WARNING: 1, CheckStatus.CRITICAL: 2}
_EXIT_CODES = {CheckStatus.OK: 0, CheckStatus.WARNING: 1, CheckStatus.CRITICAL: 2}


@dataclass(frozen=True)
class CheckResult:
    """One check: what was checked (``name``) on what (``subject``), and how it went."""

    name: str
    subject: str
    status: CheckStatus
    detail: str


def overall(results: Iterable[CheckResult]) -> CheckStatus:
    """The worst status among ``results`` (OK when there are none)."""
    return max((r.status for r in results), key=_SEVERITY.__getitem__, default=CheckStatus.OK)


def exit_code(status: CheckStatus) -> int:
    """Monitoring-plugin exit code: 0 OK, 1 WARNING, 2 CRITICAL."""
    return _EXIT_CODES[status]


SPACE_FACTOR = 2
"""Free space in the work root should hold this many times the last backup."""


def parse_df_available(lines: Sequence[str]) -> int:
    """Available bytes from ``df -Pk <dir>`` output (a header, then one line per filesystem).

    Raises ``ValueError`` when the output does not have that shape.
    """
    rows = [line.split() for line in lines if line.strip()]
    if len(rows) < 2 or len(rows[0]) < 4 or not rows[0][0].lower().startswith("filesystem"):
        raise ValueError(f"unexpected df output: {' / '.join(lines)[:200]!r}")
    fields = rows[-1]
    # POSIX df -P: Filesystem 1024-blocks Used Available Capacity Mounted-on; a filesystem
    # name with spaces shifts the columns right, so locate the capacity column ("NN%") instead.
    for index in range(len(fields) - 1, 0, -1):
        if fields[index].endswith("%") and fields[index - 1].isdigit():
            return int(fields[index - 1]) * 1024
    raise ValueError(f"no available-space column in df output: {' '.join(fields)!r}")


def space_check(
    subject: str, work_root: str, free_bytes: int, last_backup_bytes: int | None
) -> CheckResult:
    """WARNING when ``free_bytes`` is below ``SPACE_FACTOR`` times the last backup's size."""
    free = f"{free_bytes} bytes free in {work_root}"
    if last_backup_bytes is None:
        return CheckResult(
            "work-space", subject, CheckStatus.OK, f"{free} (no successful backup to compare)"
        )
    needed = SPACE_FACTOR * last_backup_bytes
    if free_bytes < needed:
        return CheckResult(
            "work-space",
            subject,
            CheckStatus.WARNING,
            f"{free}, below {SPACE_FACTOR}x the last backup ({last_backup_bytes} bytes)",
        )
    return CheckResult(
        "work-space",
        subject,
        CheckStatus.OK,
        f"{free} (>= {SPACE_FACTOR}x the last backup of {last_backup_bytes} bytes)",
    )
