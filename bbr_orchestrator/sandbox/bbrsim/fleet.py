"""``bbr deployment --all-deployments``: every deployment the director knows, one after another.

Backup writes ``<deployment>_<timestamp>.log`` (that deployment's log lines) next to the
artifacts; any failure makes the whole command exit 1, whatever the per-deployment bits.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

from . import faults as faults_mod
from .cli import Command
from .clock import artifact_stamp, utc_now
from .dispatch import deployment_access, execute, start_time
from .output import (
    ALL_DEPLOYMENTS_CLEANUP_NOTICE,
    ARTIFACT_DIR,
    CLEANUP,
    GENERAL,
    SEPARATOR,
    UNLOCK,
    Log,
    StepError,
    go_errors,
    say,
    say_with_clock,
    write_err_log,
)
from .report import indent_block
from .state import known_deployments
from .world import load_deployment

_SUMMARY = {
    "pre-backup-check": ("cannot be backed up", "can be backed up"),
    "backup": ("cannot be backed up", "backed up"),
    "backup-cleanup": ("could not be cleaned up", "were cleaned up"),
}


def run_all(command: Command, state_dir: Path, kill: Callable[[], None]) -> int:
    host = command.text("target").split("://")[-1].split(":")[0].split("/")[0]
    if command.sub == "backup":
        say("Starting backup...")
    if command.flag("unsafe-lock-free"):
        message = (
            "Cannot use the --unsafe-lock-free flag in conjunction with the --all-deployments flag"
        )
        return _fail_early(message)
    access = deployment_access(command, state_dir, faults_mod.peek(state_dir, host, command.sub))
    if access:
        return _fail_early(access)
    names = known_deployments(state_dir)
    say(f"Found {len(names)} deployments:")
    for name in names:
        say(f"  {name}")
    say(SEPARATOR)
    if not names:
        return _fail_early("Failed to find any deployments")
    failed: list[tuple[str, list[StepError]]] = []
    for name in names:
        errors = _one(command, state_dir, name, kill)
        if errors:
            failed.append((name, errors))
        say(SEPARATOR)
    error_summary, success_summary = _SUMMARY[command.sub]
    if not failed:
        say(f"All {len(names)} deployments {success_summary}.")
        return 0
    summary = f"{len(failed)} out of {len(names)} deployments {error_summary}:\n"
    summary += "".join(f"{name}\n" for name, _ in failed)
    message = summary + "\n"
    message += "".join(
        f"Deployment '{n}': {go_errors([e.message for e in errs])}\n" for n, errs in failed
    )
    write_err_log(Path.cwd(), [message])
    kinds = {e.kind for _, errs in failed for e in errs}
    footer = {
        "backup": ALL_DEPLOYMENTS_CLEANUP_NOTICE if kinds & {UNLOCK, CLEANUP} else "",
        "pre-backup-check": ALL_DEPLOYMENTS_CLEANUP_NOTICE if ARTIFACT_DIR in kinds else "",
    }.get(command.sub, "")
    sys.stderr.write(message + ("\n" + footer if footer else "") + "\n")
    return 1


def _one(command: Command, state_dir: Path, name: str, kill: Callable[[], None]) -> list[StepError]:
    faults = faults_mod.take(state_dir, name, command.sub)
    target = load_deployment(state_dir, name)
    if command.sub == "backup":
        started = start_time(faults, utc_now())
        parent = command.text("artifact-path")
        log_path = (Path(parent) if parent else Path()) / f"{name}_{artifact_stamp(started)}.log"
        buffer = io.StringIO()
        try:
            log_file = log_path.open("w", encoding="utf-8")
        except OSError as exc:
            return [StepError(GENERAL, f"open {log_path}: {(exc.strerror or str(exc)).lower()}")]
        with log_file:
            say_with_clock(f"Starting backup of {name}, log file: {log_path}")
            log = Log(command.flag("debug"), [buffer, log_file])
            errors = execute(command, target, faults, log, kill, started)
        if errors:
            say_with_clock(f"ERROR: failed to backup {name}")
            say(buffer.getvalue())
        else:
            say_with_clock(f"Finished backup of {name}")
        return errors
    if command.sub == "pre-backup-check":
        errors = execute(command, target, faults, Log(command.flag("debug"), [io.StringIO()]), kill)
        verdict = "cannot be backed up." if errors else "can be backed up."
        say_with_clock(f"Deployment '{name}' {verdict}")
        if errors:
            say(indent_block(go_errors([e.message for e in errors])))
        return errors
    errors = execute(command, target, faults, Log(command.flag("debug")), kill)
    say(f"Failed to cleanup deployment '{name}'" if errors else f"Cleaned up deployment '{name}'")
    return errors


def _fail_early(message: str) -> int:
    text = go_errors([message])
    write_err_log(Path.cwd(), [message])
    sys.stderr.write(text + "\n\n")
    return 1
