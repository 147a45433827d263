"""The simulator's entry point: parse like bbr, record the invocation, run, report like bbr."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import cli, fleet, report, signals, state
from .clock import utc_now
from .dispatch import deployment_access, director_access, director_name, director_port, execute
from .faults import FaultError, take
from .output import GENERAL, Log, StepError
from .state import Recorder, SimError
from .world import load_deployment, load_director


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one simulated bbr invocation; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    started = utc_now()
    parsed = cli.parse(args, env)
    try:
        state_dir: Path | None = state.state_dir_from_env(env)
        problem = ""
    except SimError as exc:
        state_dir, problem = None, str(exc)
    if isinstance(parsed, cli.Outcome):
        sys.stdout.write(parsed.stdout)
        sys.stderr.write(parsed.stderr)
        if state_dir is not None:
            Recorder(state_dir, _record(args, env, parsed.mode, parsed.sub)).finish(parsed.code)
        return parsed.code
    if state_dir is None:
        sys.stderr.write(f"bbr simulator: {problem}\n")
        return 1
    recorder = Recorder(state_dir, _record(args, env, parsed.mode, parsed.sub, parsed))
    recorder.start()
    signals.die_on(recorder.finish, signal.SIGTERM, signal.SIGHUP)
    if parsed.sub == "pre-backup-check":
        signals.die_on(recorder.finish, signal.SIGINT)
    else:
        signals.trap_sigint(recorder.finish, backup=parsed.sub.startswith("backup"))
    code = 1
    try:
        code = _dispatch(parsed, state_dir, recorder, started)
    except (SimError, FaultError) as exc:
        sys.stderr.write(f"bbr simulator: {exc}\n")
    finally:
        sys.stdout.flush()
        recorder.finish(code)
    return code


def _record(
    args: Sequence[str],
    env: Mapping[str, str],
    mode: str | None,
    sub: str | None,
    command: cli.Command | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {"argv": ["bbr", *args], "cwd": os.getcwd(), "mode": mode,
                              "subcommand": sub}  # fmt: skip
    if command is not None and mode == "director":
        record["target"] = director_name(command.text("host"))
        record["port"] = director_port(command)
    if command is not None and mode == "deployment":
        all_deployments = command.flag("all-deployments")
        record["target"] = None if all_deployments else command.text("deployment")
        record["all_deployments"] = all_deployments
        record["password_on_command_line"] = command.password_on_command_line
    if mode == "deployment":
        record.update(state.secret_facts(env))
    if command is not None:
        record["artifact_path"] = command.text("artifact-path") or None
    return record


def _dispatch(
    command: cli.Command, state_dir: Path, recorder: Recorder, started: dt.datetime
) -> int:
    def kill() -> None:
        signals.die(recorder.finish, signal.SIGKILL)

    log = Log(command.flag("debug"))
    if command.mode == "director":
        name = director_name(command.text("host"))
        faults = take(state_dir, name, command.sub)
        problem = director_access(command, faults)
        if problem:
            return report.finish(command, [StepError(GENERAL, problem)], name)
        target = load_director(state_dir, name)
    elif command.flag("all-deployments"):
        return fleet.run_all(command, state_dir, kill)
    else:
        name = command.text("deployment")
        faults = take(state_dir, name, command.sub)
        problem = deployment_access(command, state_dir, faults)
        if problem is None and not state.valid_name(name):
            problem = f"Deployment '{name}' not found"
        if problem:
            return report.finish(command, [StepError(GENERAL, problem)], name)
        target = load_deployment(state_dir, name)
    errors = execute(command, target, faults, log, kill, started)
    return report.finish(command, errors, name)
