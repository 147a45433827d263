"""How bbr talks: log lines on stdout, Go-style error blocks on stderr, ``bbr-*.err.log`` files."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .clock import UTC, clock_stamp

VERSION = "1.9.79"
RED = "\x1b[0;31m"
RESET = "\x1b[0m"
SEPARATOR = "-------------------------"

BACKUP_CLEANUP_NOTICE = (
    "It is recommended that you run `bbr backup-cleanup` to ensure that any temp files are "
    "cleaned up and all jobs are unlocked."
)
ALL_DEPLOYMENTS_CLEANUP_NOTICE = (
    "It is recommended that you run `bbr deployment --all-deployments backup-cleanup` to ensure "
    "that any temp files are cleaned up and all jobs are unlocked."
)
RESTORE_CLEANUP_NOTICE = (
    "It is recommended that you run `bbr restore-cleanup` to ensure that any temp files are "
    "cleaned up and all jobs are unlocked."
)
BACKUP_SIGINT_QUESTION = (
    "Stopping a backup can leave the system in bad state. Are you sure you want to cancel? [yes/no]"
)
RESTORE_SIGINT_QUESTION = BACKUP_SIGINT_QUESTION.replace("a backup", "a restore")

# Kinds of step error, as bbr's orchestrator types them. Only LOCK, UNLOCK and CLEANUP have
# their own exit bit; everything else is bit 0 (value 1).
GENERAL = "general"
LOCK = "lock"
UNLOCK = "unlock"
CLEANUP = "cleanup"
ARTIFACT_DIR = "artifact-dir"
DRAIN = "drain"
_EXIT_BITS = {LOCK: 4, UNLOCK: 8, CLEANUP: 16}
_FOOTER_KINDS = (UNLOCK, CLEANUP, ARTIFACT_DIR, DRAIN)


@dataclass(frozen=True)
class StepError:
    """One error a workflow step returned (an element of bbr's ``orchestrator.Error``)."""

    kind: str
    message: str


def exit_code(errors: Iterable[StepError]) -> int:
    """bbr's exit bitmask: 1 general, 4 lock, 8 unlock, 16 cleanup; never 2."""
    code = 0
    for error in errors:
        code |= _EXIT_BITS.get(error.kind, 1)
    return code


def go_errors(messages: Sequence[str]) -> str:
    """Render errors as bbr's ``orchestrator.Error.Error()`` does (no newline between items)."""
    if not messages:
        return ""
    plural = "s" if len(messages) > 1 else ""
    parts = [f"{len(messages)} error{plural} occurred:\n"]
    for number, message in enumerate(messages, start=1):
        parts.append(f"error {number}:\n{message}")
    return "".join(parts)


def wants_cleanup_footer(errors: Iterable[StepError]) -> bool:
    """Whether bbr appends the ``bbr backup-cleanup`` advice after these errors."""
    return any(error.kind in _FOOTER_KINDS for error in errors)


def red(text: str) -> str:
    """``ansi.Color(text, "red")`` as bbr's flag errors use it."""
    return f"{RED}{text}{RESET}"


def exit_message(errors: Sequence[StepError], footer: str = "") -> str:
    """What bbr prints on stderr at exit: the error block, a newline, the footer, a newline."""
    return go_errors([error.message for error in errors]) + "\n" + footer + "\n"


_FAKE_FRAMES = (
    "github.com/cloudfoundry-incubator/bosh-backup-and-restore/orchestrator.(*Workflow).Run\n"
    "\t/tmp/build/bosh-backup-and-restore/orchestrator/workflow.go:17\n"
    "github.com/cloudfoundry-incubator/bosh-backup-and-restore/orchestrator.Backuper.Backup\n"
    "\t/tmp/build/bosh-backup-and-restore/orchestrator/backuper.go:66\n"
    "main.main\n\t/tmp/build/bosh-backup-and-restore/cmd/bbr/main.go:61\n"
    "runtime.main\n\t/usr/local/go/src/runtime/proc.go:267\n"
    "runtime.goexit\n\t/usr/local/go/src/runtime/asm_amd64.s:1650"
)


def write_err_log(directory: Path, messages: Sequence[str]) -> Path | None:
    """Write ``bbr-<RFC3339 UTC>.err.log`` (errors with fake Go stack traces) into ``directory``."""
    now = dt.datetime.now(UTC).replace(microsecond=0)
    path = directory / f"bbr-{now.strftime('%Y-%m-%dT%H:%M:%SZ')}.err.log"
    traced = [f"{message}\n{_FAKE_FRAMES}" for message in messages]
    try:
        path.write_text(go_errors(traced), encoding="utf-8")
    except OSError:  # an unwritable working directory: bbr carries on without its err.log
        return None
    return path


class Log:
    """bbr's logger: ``[bbr] YYYY/MM/DD HH:MM:SS LEVEL - msg`` lines, DEBUG only with --debug."""

    def __init__(self, debug: bool, sinks: list[TextIO] | None = None) -> None:
        self.debug_enabled = debug
        self.sinks: list[TextIO] = sinks if sinks is not None else [sys.stdout]

    def _line(self, level: str, message: str) -> None:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        body = message.rstrip("\n")
        text = f"[bbr] {stamp} {level} - {body}\n"
        for sink in self.sinks:
            sink.write(text)
            sink.flush()

    def info(self, message: str) -> None:
        self._line("INFO", message)

    def debug(self, message: str) -> None:
        if self.debug_enabled:
            self._line("DEBUG", message)

    def error(self, message: str) -> None:
        self._line("ERROR", message)


def say(text: str, stream: TextIO | None = None) -> None:
    """Print one line (bbr's plain ``fmt.Println``) and flush it at once."""
    target = stream if stream is not None else sys.stdout
    target.write(text + "\n")
    target.flush()


def say_with_clock(text: str) -> None:
    """bbr's ``printlnWithTimestamp``: ``[HH:MM:SS] text`` in UTC."""
    say(f"[{clock_stamp()}] {text}")
