"""Faults on demand for the om simulator: what the next ``om export-installation`` gets wrong.

Faults live in ``$OM_SIM_STATE/faults.json`` as a JSON list of entries, each :class:`OmFaults`
as a dict. Every invocation merges the entries that match its ``--target`` and removes the
matching ``once`` entries (under a file lock, so parallel runs consume a one-shot fault once).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAULTS_FILE = "faults.json"
_LOCK_FILE = "faults.lock"
DAMAGES = ("truncate", "corrupt")


class OmFaultError(ValueError):
    """A fault specification that does not make sense; the message names the field."""


@dataclass
class OmFaults:
    """What to get wrong. Every field defaults to "behave like a healthy om"."""

    target: str | None = None
    """Only apply to invocations with this ``--target`` (the Ops Manager URL)."""
    once: bool = False
    """Consume the entry on the first invocation it applies to; otherwise it persists."""
    fail: str | None = None
    """Fail half-way through the download: exit 1 with ``could not execute
    "export-installation": failed to export installation: <fail>``; a partial file stays."""
    auth_fails: bool = False
    """Ops Manager's UAA refuses the credentials (401): exit 1 before anything is written."""
    delay_seconds: float = 0.0
    """Time the export takes, spread over the download (progress lines keep coming)."""
    damage: str | None = None
    """Exit 0 but leave a bad file: ``truncate`` (cut short, no zip end record) or ``corrupt``
    (a byte of the zip's central directory flipped)."""
    size_bytes: int | None = None
    """Size of the installation's asset blob (default ~384 KiB; the zip is a little larger)."""

    def validate(self) -> OmFaults:
        """Raise :class:`OmFaultError` naming the first field that does not make sense."""
        if self.damage is not None and self.damage not in DAMAGES:
            raise OmFaultError(f"damage: {self.damage!r} is not one of {', '.join(DAMAGES)}")
        delay = self.delay_seconds
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise OmFaultError("delay_seconds: must be a non-negative number of seconds")
        size = self.size_bytes
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise OmFaultError("size_bytes: must be a non-negative integer")
        return self

    def matches(self, target: str | None) -> bool:
        return self.target is None or self.target == target

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OmFaults:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OmFaultError(f"{unknown[0]}: unknown fault (known: {', '.join(sorted(known))})")
        return cls(**dict(data)).validate()


def merge(entries: Sequence[OmFaults]) -> OmFaults:
    """One :class:`OmFaults` that does everything any of ``entries`` does."""
    merged = OmFaults()
    for entry in entries:
        merged.fail = merged.fail or entry.fail
        merged.auth_fails = merged.auth_fails or entry.auth_fails
        merged.delay_seconds = max(merged.delay_seconds, entry.delay_seconds)
        merged.damage = merged.damage or entry.damage
        if entry.size_bytes is not None:
            merged.size_bytes = max(merged.size_bytes or 0, entry.size_bytes)
    return merged


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    fd = os.open(state_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(state_dir: Path) -> list[OmFaults]:
    path = state_dir / FAULTS_FILE
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise OmFaultError(f"{path}: not JSON: {exc}") from exc
    items = raw if isinstance(raw, list) else [raw]
    return [OmFaults.from_dict(item) for item in items]


def _write(state_dir: Path, entries: Sequence[OmFaults]) -> None:
    path = state_dir / FAULTS_FILE
    tmp = path.with_name(f".{FAULTS_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps([e.to_dict() for e in entries], indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save(state_dir: Path, entries: Sequence[OmFaults]) -> None:
    """Replace the faults for the next invocations."""
    with _locked(state_dir):
        _write(state_dir, entries)


def take(state_dir: Path, target: str | None) -> OmFaults:
    """The merged faults for one invocation; matching ``once`` entries are consumed."""
    with _locked(state_dir):
        entries = _read(state_dir)
        chosen = [e for e in entries if e.matches(target)]
        spent = [e for e in chosen if e.once]
        if spent:
            _write(state_dir, [e for e in entries if all(e is not s for s in spent)])
    return merge(chosen)
