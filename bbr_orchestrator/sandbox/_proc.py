"""Start, watch and reliably end sandbox processes (and everything they spawned)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bbr_orchestrator.errors import SandboxError

Probe = Callable[[], str | None]
"""Readiness probe: returns None when ready, else why not (yet)."""


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, stdout+stderr appended to ``log_path``.

    The child dies with its parent (``setpriv --pdeathsig KILL``) so a killed
    test run does not leave servers behind.
    """
    full = list(argv)
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        full = [setpriv, "--pdeathsig", "KILL", "--", *full]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=None if env is None else dict(env),
            start_new_session=True,
        )


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def failure(component: str, reason: str, log_path: Path) -> SandboxError:
    """A SandboxError whose reason ends with the log's tail."""
    return SandboxError(component, f"{reason}\n--- {log_path} (tail) ---\n{log_tail(log_path)}")


def wait_ready(
    proc: subprocess.Popen[bytes],
    probe: Probe,
    *,
    component: str,
    log_path: Path,
    timeout: float,
    interval: float = 0.1,
) -> None:
    """Poll ``probe`` until it reports ready; fail fast if the process exits."""
    deadline = time.monotonic() + timeout
    reason = "not probed yet"
    while True:
        code = proc.poll()
        if code is not None:
            raise failure(component, f"exited with code {code} before it was ready", log_path)
        reason = probe() or ""
        if not reason:
            return
        if time.monotonic() >= deadline:
            raise failure(component, f"not ready after {timeout:.0f}s: {reason}", log_path)
        time.sleep(interval)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Linux /proc), nearest first."""
    children = _children_map()
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def marked(name: str, value: str) -> list[int]:
    """Pids of live processes whose environment holds ``name=value`` exactly.

    Finds what a sandbox spawned even after it was re-parented to init (an
    SSH session's background job outlives its shell).
    """
    needle = f"{name}={value}".encode()
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :][:1] not in ("Z", "X")


def _signal(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_gone(pids: Sequence[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def terminate(
    proc: subprocess.Popen[bytes], grace: float = 3.0, marker: tuple[str, str] | None = None
) -> None:
    """End ``proc`` (started by :func:`spawn`), its process group and every descendant.

    Children go first, so a parent that is still running (sshd) reaps them;
    whatever ignores SIGTERM for ``grace`` seconds gets SIGKILL. With ``marker``
    (an env ``(name, value)`` its children inherit), also every process
    carrying it, wherever it was re-parented to.
    """

    def others() -> list[int]:
        found = descendants(proc.pid) + (marked(*marker) if marker else [])
        return sorted(set(found) - {proc.pid})

    tree = others()
    _signal(tree, signal.SIGTERM)
    _wait_gone(tree, min(grace, 1.0))
    _signal_group(proc.pid, signal.SIGTERM)  # its own session: pgid == pid
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
    _signal([*tree, *others()], signal.SIGKILL)
    proc.wait()
