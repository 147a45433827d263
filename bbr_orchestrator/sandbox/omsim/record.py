"""The record of every om invocation, in ``$OM_SIM_STATE/invocations.jsonl``.

Credentials are recorded as present or not and by SHA-256, never by value, so tests can prove
which secret reached om and that none reached its command line.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

STATE_ENV = "OM_SIM_STATE"
INVOCATIONS = "invocations.jsonl"
CREDENTIAL_VARIABLES = (
    "OM_USERNAME",
    "OM_PASSWORD",
    "OM_CLIENT_ID",
    "OM_CLIENT_SECRET",
    "OM_DECRYPTION_PASSPHRASE",
)
CREDENTIAL_FLAGS = frozenset(
    {
        "-u",
        "--username",
        "-p",
        "--password",
        "-c",
        "--client-id",
        "-s",
        "--client-secret",
        "-d",
        "-dp",
        "--decryption-passphrase",
    }
)


class OmSimError(Exception):
    """The simulator itself cannot run (no state dir); not an om error."""


def state_dir_from_env(environ: Mapping[str, str]) -> Path:
    value = environ.get(STATE_ENV, "")
    if not value:
        raise OmSimError(f"{STATE_ENV} is not set: it must name the om simulator's state dir")
    path = Path(value)
    if not path.is_dir():
        raise OmSimError(f"{STATE_ENV}={value}: no such directory")
    return path


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def credentials(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """For each OM_* credential variable: whether it is set (non-empty) and its SHA-256."""
    found: dict[str, dict[str, Any]] = {}
    for name in CREDENTIAL_VARIABLES:
        value = environ.get(name, "")
        digest = hashlib.sha256(value.encode()).hexdigest() if value else None
        found[name] = {"present": bool(value), "sha256": digest}
    return found


def credential_flags(argv: Sequence[str]) -> list[str]:
    """Credential flags on the command line (``--password x`` or ``--password=x``)."""
    return [arg.split("=", 1)[0] for arg in argv if arg.split("=", 1)[0] in CREDENTIAL_FLAGS]


def secret_in_argv(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether the value of a secret OM_* variable appears anywhere in the command line."""
    secrets = [
        environ.get(name, "")
        for name in ("OM_PASSWORD", "OM_CLIENT_SECRET", "OM_DECRYPTION_PASSPHRASE")
    ]
    return any(secret and secret in arg for secret in secrets for arg in argv)


def append(state_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one invocation (a single locked write: parallel invocations do not interleave)."""
    line = (json.dumps(dict(record), sort_keys=True) + "\n").encode()
    fd = os.open(state_dir / INVOCATIONS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)


def read(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / INVOCATIONS
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
