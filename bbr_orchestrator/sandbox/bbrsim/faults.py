"""Faults on demand: what the next simulated bbr runs should get wrong.

Faults live in ``$BBR_SIM_STATE/faults.json`` as a JSON list of entries, each one
:class:`Faults` as a dict. Every invocation reads the file, merges the entries that
match its target and subcommand, and removes the matching ``once`` entries (under a
file lock, so parallel runs consume a one-shot fault exactly once).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .clock import parse_utc

SCRIPTS = (
    "pre-backup-lock",
    "backup",
    "post-backup-unlock",
    "pre-restore-lock",
    "restore",
    "post-restore-unlock",
)
SUBCOMMANDS = ("pre-backup-check", "backup", "restore", "backup-cleanup", "restore-cleanup")
FAULTS_FILE = "faults.json"
_LOCK_FILE = "faults.lock"


class FaultError(ValueError):
    """A fault specification that does not make sense; the message names the field."""


@dataclass
class Faults:
    """What to get wrong. Every field defaults to "behave like a healthy bbr"."""

    target: str | None = None
    """Only apply to this target: a director's host (without port) or a deployment name."""
    commands: list[str] | None = None
    """Only apply to these subcommands (e.g. ``["backup"]``); None means every subcommand."""
    once: bool = False
    """Consume the entry on the first invocation it applies to; otherwise it persists."""
    fail_scripts: list[str] = field(default_factory=list)
    """Scripts that exit 1 with stderr ``injected failure in <job>/<script>``, written
    ``"<job>/<script>"`` or ``"<job>/<script>@<group>/<index>"`` for one instance only.
    Exit bits: pre-backup-lock 4, post-backup-unlock / post-restore-unlock 8, others 1."""
    cleanup_fails: bool = False
    """The final ``rm -rf /var/vcap/store/bbr-backup`` fails (bit 16); the busy marker stays."""
    backup_delay_seconds: float = 0.0
    """Time the backup scripts take (silent, as real backup scripts are)."""
    drain_delay_seconds: float = 0.0
    """Time the copy of each job's artifact takes, spread over its ``-- N% complete`` lines."""
    progress_interval_seconds: float = 0.0
    """With ``drain_delay_seconds``: print a ``Copying backup for job <job> on <instance> --
    N% complete`` line this often (default: every 5% of the copy, as bbr does)."""
    large_artifacts: dict[str, int] = field(default_factory=dict)
    """Job name -> size in bytes of an extra member ``./large-artifact.bin`` in that job's tar
    (deterministic pseudo-random content, streamed; ~1 GiB is fine)."""
    corrupt_artifacts: list[str] = field(default_factory=list)
    """Jobs whose tar gets one content byte flipped after bbr recorded its checksums
    (silent: the backup still exits 0, as with later bit rot; restore must refuse it)."""
    truncate_artifacts: list[str] = field(default_factory=list)
    """Jobs whose tar is cut short after bbr recorded its checksums (silent, exit 0)."""
    pre_backup_check_fails: bool = False
    """The pre-checks fail (``Deployment '<name>' has no backup scripts``): pre-backup-check
    and backup exit 1 without touching anything."""
    auth_fails: bool = False
    """Authentication fails: the director's SSH key is refused / UAA answers 401; exit 1."""
    leave_busy: bool = False
    """Before running, leave ``/var/vcap/store/bbr-backup`` behind on every instance, as a
    killed earlier run would; the run then fails as bbr does when it finds it."""
    kill_during_backup: bool = False
    """Die by SIGKILL right after the backup scripts ran (busy marker, jobs locked, artifact
    with only ``metadata``): the simulated jumpbox lost bbr mid-run."""
    start_time: str | None = None
    """Pretend the command started at this UTC instant (``2026-11-27T03:58:59Z``), which names
    the artifact; two runs with the same value collide as two backups in one second do."""

    def validate(self) -> Faults:
        """Raise :class:`FaultError` naming the first field that does not make sense."""
        for spec in self.fail_scripts:
            job_script = spec.split("@", 1)[0]
            job, _, script = job_script.partition("/")
            if not job or script not in SCRIPTS:
                raise FaultError(
                    f"fail_scripts: {spec!r} is not '<job>/<script>[@<group>/<index>]' "
                    f"with a script in {', '.join(SCRIPTS)}"
                )
        for command in self.commands or []:
            if command not in SUBCOMMANDS:
                raise FaultError(f"commands: {command!r} is not one of {', '.join(SUBCOMMANDS)}")
        for job, size in self.large_artifacts.items():
            if not isinstance(size, int) or size < 0:
                raise FaultError(f"large_artifacts.{job}: size must be a non-negative integer")
        for name in ("backup_delay_seconds", "drain_delay_seconds", "progress_interval_seconds"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise FaultError(f"{name}: must be a non-negative number of seconds")
        if self.start_time is not None:
            try:
                parse_utc(self.start_time)
            except ValueError as exc:
                raise FaultError(f"start_time: {exc}") from exc
        return self

    def matches(self, target: str, command: str) -> bool:
        """Whether this entry applies to an invocation of ``command`` against ``target``."""
        target_ok = self.target is None or self.target == target
        return target_ok and (self.commands is None or command in self.commands)

    def script_fails(self, job: str, script: str, instance: str) -> bool:
        """Whether ``job``'s ``script`` on ``instance`` (``group/index``) must fail."""
        for spec in self.fail_scripts:
            job_script, _, where = spec.partition("@")
            if job_script == f"{job}/{script}" and (not where or where == instance):
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FaultError(f"{unknown[0]}: unknown fault (known: {', '.join(sorted(known))})")
        return cls(**dict(data)).validate()


def merge(entries: Sequence[Faults]) -> Faults:
    """One :class:`Faults` that does everything any of ``entries`` does."""
    merged = Faults()
    for entry in entries:
        merged.fail_scripts += entry.fail_scripts
        merged.corrupt_artifacts += entry.corrupt_artifacts
        merged.truncate_artifacts += entry.truncate_artifacts
        merged.large_artifacts.update(entry.large_artifacts)
        for flag in (
            "cleanup_fails",
            "pre_backup_check_fails",
            "auth_fails",
            "leave_busy",
            "kill_during_backup",
        ):
            if getattr(entry, flag):
                setattr(merged, flag, True)
        for delay in ("backup_delay_seconds", "drain_delay_seconds", "progress_interval_seconds"):
            setattr(merged, delay, max(getattr(merged, delay), getattr(entry, delay)))
        merged.start_time = merged.start_time or entry.start_time
    return merged


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    fd = os.open(state_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(state_dir: Path) -> list[Faults]:
    path = state_dir / FAULTS_FILE
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FaultError(f"{path}: not JSON: {exc}") from exc
    items = raw if isinstance(raw, list) else [raw]
    return [Faults.from_dict(item) for item in items]


def _write(state_dir: Path, entries: Sequence[Faults]) -> None:
    path = state_dir / FAULTS_FILE
    tmp = path.with_name(f".{FAULTS_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps([e.to_dict() for e in entries], indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save(state_dir: Path, entries: Sequence[Faults]) -> None:
    """Replace the faults for the next invocations."""
    with _locked(state_dir):
        _write(state_dir, entries)


def take(state_dir: Path, target: str, command: str) -> Faults:
    """The merged faults for one invocation; matching ``once`` entries are consumed."""
    with _locked(state_dir):
        entries = _read(state_dir)
        chosen = [e for e in entries if e.matches(target, command)]
        spent = [e for e in chosen if e.once]
        if spent:
            _write(state_dir, [e for e in entries if all(e is not s for s in spent)])
    return merge(chosen)


def peek(state_dir: Path, target: str, command: str) -> Faults:
    """The merged faults that would apply, without consuming anything."""
    with _locked(state_dir):
        entries = _read(state_dir)
    return merge([e for e in entries if e.matches(target, command)])
