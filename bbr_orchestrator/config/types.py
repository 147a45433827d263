"""Reusable field types for the config schema: durations, secret references, hosts, fingerprints."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """Accept ``90``, ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``, ``"2w"`` or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m, 24h or 7d")
    if isinstance(value, int):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            amount, unit = match.groups()
            return timedelta(seconds=int(amount) * _UNIT_SECONDS[unit or "s"])
    raise ValueError(f"expected a duration such as 30s, 15m, 24h or 7d, got {value!r}")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as UTC or Europe/Berlin"
        ) from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]


def _check_cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    from bbr_orchestrator.core.cron import parse_crontab

    try:
        CronTrigger(timezone="UTC", **parse_crontab(value).as_kwargs())
    except ValueError as exc:
        raise ValueError(f"invalid cron schedule {value!r}: {exc}") from exc
    return value


CronSchedule = Annotated[str, AfterValidator(_check_cron)]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-63 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def _check_host_port(value: str) -> str:
    """``host`` or ``host:port`` as bbr's ``--host`` takes it (IPv6 literals do not work in bbr)."""
    if value.count(":") > 1 or value.startswith("["):
        raise ValueError("IPv6 literals are not supported by bbr; use a host name or IPv4 address")
    host, _, port = value.partition(":")
    if not _HOSTNAME.match(host):
        raise ValueError(f"{host!r} is not a valid host name or IPv4 address")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"port {port!r} must be a number from 1 to 65535")
    return value


HostPort = Annotated[str, AfterValidator(_check_host_port)]


def _check_host(value: str) -> str:
    if not _HOSTNAME.match(value) and not re.match(r"^[0-9a-fA-F:]+$", value):
        raise ValueError(f"{value!r} is not a valid host name or IP address")
    return value


Host = Annotated[str, AfterValidator(_check_host)]

_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")


def _check_fingerprint(value: str) -> str:
    if not _FINGERPRINT.match(value):
        raise ValueError(
            "expected an OpenSSH SHA-256 fingerprint such as "
            "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8 (see `ssh-keygen -lf`)"
        )
    return value


Fingerprint = Annotated[str, AfterValidator(_check_fingerprint)]

Port = Annotated[int, Field(ge=1, le=65535)]


def _reject_inline_secret(value: Any) -> Any:
    if isinstance(value, str):
        raise ValueError(
            "secrets are never written inline; reference one with {env: VAR_NAME}, "
            "{file: /path/to/file} or {credential: NAME} (systemd $CREDENTIALS_DIRECTORY)"
        )
    return value


class SecretReference(BaseModel):
    """Where a secret lives: one of an environment variable, a file, or a systemd credential."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = Field(default=None, description="Name of an environment variable.")
    file: str | None = Field(default=None, description="Path of a file holding the secret.")
    credential: str | None = Field(
        default=None, description="Name of a systemd credential in $CREDENTIALS_DIRECTORY."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretReference:
        given = [k for k in ("env", "file", "credential") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of env, file or credential")
        if self.env is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.env):
            raise ValueError(f"{self.env!r} is not a valid environment variable name")
        if self.credential is not None and "/" in self.credential:
            raise ValueError("a credential name must not contain '/'")
        return self

    def describe(self) -> str:
        """A safe description of the reference (never the value)."""
        if self.env is not None:
            return f"env:{self.env}"
        if self.file is not None:
            return f"file:{self.file}"
        return f"credential:{self.credential}"


SecretRef = Annotated[SecretReference, BeforeValidator(_reject_inline_secret)]
