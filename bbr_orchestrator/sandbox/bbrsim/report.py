"""The end of a single-target run as bbr prints it: verdict, stderr block, err.log, status."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import Command
from .output import (
    ARTIFACT_DIR,
    BACKUP_CLEANUP_NOTICE,
    CLEANUP,
    RESTORE_CLEANUP_NOTICE,
    UNLOCK,
    StepError,
    exit_code,
    exit_message,
    go_errors,
    say,
    say_with_clock,
    wants_cleanup_footer,
    write_err_log,
)


def indent_block(text: str) -> str:
    """bbr's IndentBlock: every line of an error, indented under its verdict."""
    return "\n".join(f"  {line}" for line in text.splitlines())


def footer_for(sub: str, errors: Sequence[StepError]) -> str:
    """The cleanup advice bbr appends after some errors (empty when it appends none)."""
    if sub == "backup" and wants_cleanup_footer(errors):
        return BACKUP_CLEANUP_NOTICE
    if sub == "restore" and any(e.kind in (UNLOCK, CLEANUP) for e in errors):
        return RESTORE_CLEANUP_NOTICE
    if sub == "pre-backup-check" and any(e.kind == ARTIFACT_DIR for e in errors):
        return BACKUP_CLEANUP_NOTICE
    return ""


def finish(command: Command, errors: Sequence[StepError], name: str) -> int:
    """Print what bbr prints at exit for ``command`` on ``name`` and return its exit status."""
    messages = [error.message for error in errors]
    if errors:
        write_err_log(Path.cwd(), messages)
    if command.sub == "pre-backup-check":
        return _pre_backup_check(command, errors, name)
    sys.stderr.write(exit_message(errors, footer_for(command.sub, errors)))
    sys.stderr.flush()
    return exit_code(errors)


def _pre_backup_check(command: Command, errors: Sequence[StepError], name: str) -> int:
    if command.mode == "director":
        say("Director cannot be backed up." if errors else "Director can be backed up.")
        if errors:
            sys.stderr.write(go_errors([e.message for e in errors]) + "\n")
        return 1 if errors else 0
    if not errors:
        say_with_clock(f"Deployment '{name}' can be backed up.")
        return 0
    say_with_clock(f"Deployment '{name}' cannot be backed up.")
    say(indent_block(go_errors([e.message for e in errors])))
    sys.stderr.write(exit_message(errors, footer_for(command.sub, errors)))
    return 1
