"""Find and kill the remote side of a transfer: sshd is local, so its processes are ours."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def processes_reading(path: Path) -> list[int]:
    """Pids of the remote shells whose argv names ``path`` (ours: sshd is local)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if os.fsencode(str(path)) in argv:
                pids.append(int(entry.name))
    return pids


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def parent(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def command_name(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()


def kill_remote_dd(path: Path) -> None:
    targets = [c for p in processes_reading(path) for c in children(p) if command_name(c) == "dd"]
    assert len(targets) == 1, targets
    os.kill(targets[0], signal.SIGKILL)


def kill_session(path: Path) -> None:
    """SIGKILL the per-connection sshd process serving the reader of ``path``."""
    pid = processes_reading(path)[0]
    while not command_name(pid).startswith("sshd:"):
        pid = parent(pid)
    assert "@notty" in command_name(pid) or "[priv]" in command_name(pid), command_name(pid)
    os.kill(pid, signal.SIGKILL)
