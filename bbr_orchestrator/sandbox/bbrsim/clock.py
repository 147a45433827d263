"""Time as bbr shows it: artifact stamps (UTC), metadata times (local zone), Go's Time.String()."""

from __future__ import annotations

import datetime as dt
import time

UTC = dt.timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11; the jumpbox may be older
_PROCESS_START = time.monotonic()
ARTIFACT_STAMP = "%Y%m%dT%H%M%SZ"


def utc_now() -> dt.datetime:
    """Now, in UTC, to the second (bbr names artifacts with a one-second resolution)."""
    return dt.datetime.now(UTC).replace(microsecond=0)


def parse_utc(text: str) -> dt.datetime:
    """Parse ``2026-11-27T03:58:59Z`` (RFC 3339, UTC)."""
    try:
        moment = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        raise ValueError(
            f"{text!r} is not an RFC 3339 UTC time like 2026-11-27T03:58:59Z"
        ) from None
    return moment.replace(tzinfo=UTC)


def artifact_stamp(moment: dt.datetime) -> str:
    """``20261127T035859Z``: the suffix of an artifact directory name."""
    return moment.astimezone(UTC).strftime(ARTIFACT_STAMP)


def metadata_time(moment: dt.datetime) -> str:
    """``2006/01/02 15:04:05 MST`` in the local zone, as bbr writes backup_activity times."""
    local = moment.astimezone()
    return local.strftime("%Y/%m/%d %H:%M:%S ") + (local.tzname() or local.strftime("%z"))


def go_time_string(moment: dt.datetime) -> str:
    """Go's ``time.Now().String()``: ``2026-11-27 03:59:07.603289 +0000 UTC m=+8.626623703``."""
    local = moment.astimezone()
    fraction = f"{local.microsecond:06d}".rstrip("0")
    seconds = local.strftime("%Y-%m-%d %H:%M:%S") + (f".{fraction}" if fraction else "")
    zone = local.tzname() or local.strftime("%z")
    return f"{seconds} {local.strftime('%z')} {zone} m=+{time.monotonic() - _PROCESS_START:.9f}"


def clock_stamp() -> str:
    """``HH:MM:SS`` in UTC, as bbr's ``printlnWithTimestamp`` uses."""
    return dt.datetime.now(UTC).strftime("%H:%M:%S")


def nap(seconds: float) -> None:
    """Sleep in short slices: a signal whose delivery did not interrupt the sleep itself (it
    can land on another thread) is still handled within a slice, as Go's bbr would at once."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))
