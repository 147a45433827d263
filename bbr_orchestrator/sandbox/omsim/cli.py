"""``om`` as the orchestrator uses it: global flags, ``version`` and ``export-installation``.

Credentials come from the OM_* environment only: a credential flag (or a secret's value)
on the command line is refused, since a command line is visible to every user in ``ps``.
Messages follow om's (``could not execute "export-installation": ...``, exit 1).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from . import faults as _faults
from . import installation
from . import record as _record

VERSION = "7.9.0"
_VALUE_FLAGS = {
    "-t": "target",
    "--target": "target",
    "--ca-cert": "ca_cert",
    "-r": "request_timeout",
    "--request-timeout": "request_timeout",
    "-o": "connect_timeout",
    "--connect-timeout": "connect_timeout",
    "-e": "env",
    "--env": "env",
}
_BOOL_FLAGS = {
    "-k": "skip_ssl_validation",
    "--skip-ssl-validation": "skip_ssl_validation",
    "-tr": "trace",
    "--trace": "trace",
    "-v": "version",
    "--version": "version",
    "-h": "help",
    "--help": "help",
}
_CHUNK = 64 * 1024
_EXPORT = "export-installation"


class Usage(Exception):
    """A command line om would refuse; the message is om's."""


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def parse(argv: Sequence[str]) -> tuple[dict[str, Any], str | None, list[str]]:
    """``(global options, command, command args)``; credential flags are taken as value flags
    so that the refusal can name them."""
    options: dict[str, Any] = {}
    args = list(argv)
    while args and args[0].startswith("-"):
        flag, eq, inline = args.pop(0).partition("=")
        if flag in _BOOL_FLAGS:
            options[_BOOL_FLAGS[flag]] = inline.lower() != "false" if eq else True
            continue
        if flag in _VALUE_FLAGS or flag in _record.CREDENTIAL_FLAGS:
            if not eq and not args:
                raise Usage(f"expected argument for flag `{flag}'")
            value = inline if eq else args.pop(0)
            options[_VALUE_FLAGS.get(flag, flag)] = value
            continue
        raise Usage(f"unknown flag `{flag.lstrip('-')}'")
    command = args.pop(0) if args else None
    return options, command, args


def _output_file(args: Sequence[str]) -> str:
    rest = list(args)
    found = ""
    while rest:
        flag, eq, inline = rest.pop(0).partition("=")
        if flag not in ("-o", "--output-file"):
            raise Usage(f"could not parse {_EXPORT} flags: unknown flag `{flag.lstrip('-')}'")
        if not eq and not rest:
            raise Usage(f"could not parse {_EXPORT} flags: expected argument for flag `{flag}'")
        found = inline if eq else rest.pop(0)
    if not found:
        raise Usage(f"expected flag --output-file. Run 'om help {_EXPORT}' for more information.")
    return found


class Invocation:
    """One om run: its record, written once, whichever way the run ends."""

    def __init__(self, state: Path, argv: Sequence[str], environ: Mapping[str, str]) -> None:
        self.state = state
        self.done = False
        creds = _record.credentials(environ)
        self.data: dict[str, Any] = {
            "argv": list(argv),
            "cwd": os.getcwd(),
            "pid": os.getpid(),
            "started_at": _record.now(),
            "credentials": creds,
            "credentials_present": (
                creds["OM_USERNAME"]["present"] and creds["OM_PASSWORD"]["present"]
            )
            or (creds["OM_CLIENT_ID"]["present"] and creds["OM_CLIENT_SECRET"]["present"]),
            "credential_flags_in_argv": _record.credential_flags(argv),
            "secret_in_argv": _record.secret_in_argv(argv, environ),
            "exit_code": None,
            "signal": None,
        }

    def finish(self, code: int | None, signal_name: str | None = None) -> int:
        if not self.done:
            self.done = True
            self.data.update(exit_code=code, signal=signal_name, finished_at=_record.now())
            _record.append(self.state, self.data)
        return 0 if code is None else code


def _die_on_signals(invocation: Invocation) -> None:
    """SIGTERM, SIGHUP and SIGINT end om at once (Go's default), recorded first."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        invocation.finish(None, signal.Signals(signum).name)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # not reached

    wanted = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    for signum in wanted:
        signal.signal(signum, handler)
    # A parent may hand us a blocked mask (nohup-style wrappers, some CI runners): the real
    # om (Go) still gets these signals, so unblock them.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, wanted)


def _fail(invocation: Invocation, message: str) -> int:
    _say(f'could not execute "{_EXPORT}": {message}')
    return invocation.finish(1)


def _check_ca(options: Mapping[str, Any]) -> str | None:
    ca = options.get("ca_cert")
    if ca is None or str(ca).startswith("-----BEGIN"):
        return None
    if not Path(ca).is_file():
        return f"could not load ca cert from {ca}: open {ca}: no such file or directory"
    return None


def export_installation(
    invocation: Invocation, options: Mapping[str, Any], args: Sequence[str]
) -> int:
    """Write the installation zip to ``--output-file``, with om's progress lines."""
    target = options.get("target")
    invocation.data["target"] = target
    output = _output_file(args)
    invocation.data["output_file"] = output
    if not target:
        return _fail(invocation, "target flag is required. Run 'om help' for more info.")
    ca_problem = _check_ca(options)
    if ca_problem:
        return _fail(invocation, ca_problem)
    if not invocation.data["credentials_present"]:
        return _fail(
            invocation,
            "could not create authenticated client: must provide either "
            "OM_USERNAME and OM_PASSWORD or OM_CLIENT_ID and OM_CLIENT_SECRET",
        )
    fault = _faults.take(invocation.state, str(target))
    invocation.data["faults"] = fault.to_dict()
    _say("exporting installation")
    if fault.auth_fails:
        return _fail(
            invocation,
            "failed to export installation: token could not be retrieved from target url: "
            "oauth2: cannot fetch token: 401 Unauthorized",
        )
    size = installation.DEFAULT_BLOB_SIZE if fault.size_bytes is None else fault.size_bytes
    data = installation.installation_zip(str(target), size)
    if fault.damage == "truncate":
        data = installation.truncated(data)
    elif fault.damage == "corrupt":
        data = installation.corrupted(data)
    stop_at = len(data) // 2 if fault.fail else len(data)
    try:
        _download(output, data, stop_at, fault.delay_seconds)
    except OSError as exc:
        return _fail(invocation, f"failed to export installation: {exc}")
    if fault.fail:
        return _fail(invocation, f"failed to export installation: {fault.fail}")
    invocation.data["bytes_written"] = len(data)
    _say("finished exporting installation")
    return invocation.finish(0)


def _download(output: str, data: bytes, stop_at: int, delay: float) -> None:
    """Write ``data[:stop_at]`` in chunks, as a download arrives, printing progress."""
    chunks = max(1, -(-stop_at // _CHUNK))
    pause = delay / chunks
    reported = 0
    with open(output, "wb") as handle:
        for start in range(0, stop_at, _CHUNK):
            if pause:
                time.sleep(pause)
            handle.write(data[start : min(start + _CHUNK, stop_at)])
            handle.flush()
            done = min(start + _CHUNK, stop_at)
            percent = done * 100 // len(data)
            if percent >= reported + 25 or done == len(data):
                reported = percent
                _say(f"downloading installation: {done} of {len(data)} bytes ({percent}%)")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    try:
        state = _record.state_dir_from_env(env)
    except _record.OmSimError as exc:
        _say(f"omsim: {exc}")
        return 2
    invocation = Invocation(state, args, env)
    _die_on_signals(invocation)
    try:
        options, command, rest = parse(args)
    except Usage as exc:
        _say(str(exc))
        return invocation.finish(1)
    invocation.data["command"] = command
    flags = invocation.data["credential_flags_in_argv"]
    if flags or invocation.data["secret_in_argv"]:
        what = ", ".join(flags) if flags else "a secret's value"
        _say(
            f"omsim: refusing {what} on the command line: credentials travel in OM_* "
            "environment variables (a command line is visible to every user in ps)"
        )
        return invocation.finish(1)
    if options.get("version") or command == "version":
        print(VERSION, flush=True)
        return invocation.finish(0)
    if command == _EXPORT:
        try:
            return export_installation(invocation, options, rest)
        except Usage as exc:
            return _fail(invocation, str(exc))
    _say(f"unknown command {command!r}. Run 'om help' for a list of commands." if command else
         "usage: om [options] <command> [<args>]")  # fmt: skip
    return invocation.finish(1)
