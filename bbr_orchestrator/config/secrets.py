"""Resolve secret references at the moment they are needed; the value never enters logs or reprs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bbr_orchestrator.config.types import SecretReference
from bbr_orchestrator.errors import SecretError
from bbr_orchestrator.log import redactor


class Secret:
    """A resolved secret. ``str()`` and ``repr()`` are masked; call ``reveal()`` to use it.

    Creating one registers the value with the log redactor, so it is masked wherever it
    would otherwise appear in a log line.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source
        redactor.add([value])

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source}, '********')"

    __str__ = __repr__


def resolve_secret(
    ref: SecretReference,
    environ: Mapping[str, str] | None = None,
) -> Secret:
    """Read the secret a reference points at; raises ``SecretError`` naming the reference."""
    env = os.environ if environ is None else environ
    source = ref.describe()
    if ref.env is not None:
        value = env.get(ref.env)
        if value is None:
            raise SecretError(source, "environment variable is not set")
        return Secret(value, source)
    if ref.file is not None:
        path = Path(ref.file)
    else:
        creds = env.get("CREDENTIALS_DIRECTORY")
        if not creds:
            raise SecretError(
                source, "$CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)"
            )
        path = Path(creds) / str(ref.credential)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretError(source, f"cannot read {path}: {exc.strerror or exc}") from exc
    value = text.rstrip("\r\n")
    if not value:
        raise SecretError(source, f"{path} is empty")
    return Secret(value, source)
