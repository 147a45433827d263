"""bbr's signal behaviour: SIGTERM kills it on the spot, SIGINT asks first."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from .output import (
    BACKUP_CLEANUP_NOTICE,
    BACKUP_SIGINT_QUESTION,
    RESTORE_CLEANUP_NOTICE,
    RESTORE_SIGINT_QUESTION,
    say,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    Record = Callable[[int | None, str | None], None]


def die(record: Record, signum: int) -> None:
    """Record the invocation, then die by ``signum`` as an unhandled signal would."""
    record(None, signal.Signals(signum).name)
    # The signal may land while stdout is mid-flush: a second flush would raise
    # "reentrant call"; a dying process owes nobody a flush.
    with contextlib.suppress(RuntimeError, OSError):
        sys.stdout.flush()
    if signum != signal.SIGKILL:
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # not reached: the default action has already ended the process


def die_on(record: Record, *signums: int) -> None:
    """These signals end bbr at once (Go default), leaving busy marker and partial artifact."""

    def handler(signum: int, frame: FrameType | None) -> None:
        die(record, signum)

    for signum in signums:
        signal.signal(signum, handler)
    # A parent may hand us a blocked signal mask (nohup-style wrappers, some CI runners); the
    # Go runtime of the real bbr still receives these signals, so unblock them here too.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signums)


def trap_sigint(record: Record, backup: bool) -> None:
    """bbr's trapSigint: ask on stdout, read stdin in the background, stop only on ``yes``."""
    question = BACKUP_SIGINT_QUESTION if backup else RESTORE_SIGINT_QUESTION
    notice = BACKUP_CLEANUP_NOTICE if backup else RESTORE_CLEANUP_NOTICE
    what = "backup" if backup else "restore"
    asking = threading.Event()

    def ask() -> None:
        say("\n" + question)
        answer = sys.stdin.readline() if sys.stdin is not None else ""
        if not answer:
            say(f"\nCouldn't read from Stdin, if you still want to stop the {what} send SIGTERM.")
        elif answer.strip().lower() == "yes":
            say(notice)
            record(1, None)
            os._exit(1)
        asking.clear()

    def handler(signum: int, frame: FrameType | None) -> None:
        if not asking.is_set():
            asking.set()
            threading.Thread(target=ask, name="sigint-question", daemon=True).start()

    signal.signal(signal.SIGINT, handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
