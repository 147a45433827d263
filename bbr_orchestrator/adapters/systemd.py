"""sd_notify, written against the protocol: tell systemd how the daemon is doing.

The protocol (``sd_notify(3)``): the service manager passes an ``AF_UNIX`` datagram socket in
``$NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for the abstract namespace); the service
sends it datagrams of newline-separated ``KEY=VALUE`` assignments. ``$WATCHDOG_USEC`` (with
``$WATCHDOG_PID``, when set, naming the process it is meant for) asks for ``WATCHDOG=1`` pings.

How the daemon is meant to use it, with the shipped unit (``Type=notify``, ``WatchdogSec=``):

- ``ready()`` once the scheduler and the metrics endpoint are up;
- ``watchdog()`` every ``watchdog_interval() / 2`` seconds, from the loop whose liveness it
  vouches for (systemd only watches while the unit is running: not during the stop grace);
- on SIGHUP: ``reloading()``, validate and apply the config, then ``ready()`` again (systemd
  stays in "reloading" until it gets ``READY=1``, whether or not the new config was accepted);
- on SIGTERM: ``stopping()``, then ``status()`` / ``extend_timeout()`` while runs drain.

Without ``$NOTIFY_SOCKET`` (a terminal, a container, the tests) every call is a no-op. A send
that fails is logged and swallowed: a notification must never take a backup down with it.
``$NOTIFY_SOCKET`` is read, never unset: the daemon starts no local process that could inherit it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)

_USEC_PER_SECOND = 1_000_000
_SEND_TIMEOUT_SECONDS = 5.0  # a wedged receiver must not stall the caller (the watchdog loop)


def _monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: the clock systemd compares ``MONOTONIC_USEC`` with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _one_line(text: str) -> str:
    """A value on one line: a newline would start another assignment (``STATUS=x\\nREADY=1``)."""
    return " ".join(text.splitlines())


def _socket_address(value: str) -> str | bytes | None:
    """The ``sendto`` address for ``$NOTIFY_SOCKET``, or None when it is not an AF_UNIX one."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + os.fsencode(value[1:])
    return None


def _positive_int(value: str | None) -> int | None:
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if number > 0 else None


class SystemdNotifier:
    """Sends sd_notify messages to ``notify_socket``; a no-op when that is None.

    Build it with :meth:`from_env`. Each message is one datagram on a fresh socket (as
    libsystemd does), so the notifier holds no descriptor and may be used from any thread.
    """

    def __init__(self, notify_socket: str | None, watchdog_usec: int | None = None) -> None:
        self._notify_socket = notify_socket
        self._address = None if notify_socket is None else _socket_address(notify_socket)
        self._watchdog_usec = watchdog_usec
        if notify_socket is not None and self._address is None:
            log.warning(
                "sd_notify_socket_unsupported",
                notify_socket=notify_socket,
                reason="expected an absolute path or @abstract-name (AF_UNIX)",
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, pid: int | None = None
    ) -> SystemdNotifier:
        """The notifier the environment asks for (``os.environ`` and ``os.getpid()`` by default).

        ``$WATCHDOG_USEC`` counts only when ``$WATCHDOG_PID`` is unset or names ``pid``: a
        watchdog request meant for another process (say, a parent) is not ours to answer.
        """
        env = os.environ if environ is None else environ
        own_pid = os.getpid() if pid is None else pid
        notify_socket = env.get("NOTIFY_SOCKET") or None
        watchdog_usec = _positive_int(env.get("WATCHDOG_USEC"))
        if env.get("WATCHDOG_USEC") and watchdog_usec is None:
            log.warning("sd_watchdog_usec_invalid", watchdog_usec=env.get("WATCHDOG_USEC"))
        watchdog_pid = env.get("WATCHDOG_PID")
        if watchdog_pid and _positive_int(watchdog_pid) != own_pid:
            watchdog_usec = None
        return cls(notify_socket, watchdog_usec)

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere (``$NOTIFY_SOCKET`` was set to a usable address)."""
        return self._address is not None

    def notify(self, **assignments: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; True when it was sent.

        Keys are sent as given, in order; values are folded onto one line.
        """
        if self._address is None:
            return False
        message = "\n".join(f"{key}={_one_line(value)}" for key, value in assignments.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(_SEND_TIMEOUT_SECONDS)
                sock.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            log.warning(
                "sd_notify_failed",
                notify_socket=self._notify_socket,
                keys=sorted(assignments),
                error=exc.strerror or str(exc),
            )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up (or a reload) is complete."""
        return self.notify(READY="1", **_status(status))

    def status(self, text: str) -> bool:
        """``STATUS=``: the one line ``systemctl status`` shows."""
        return self.notify(STATUS=text)

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC=`` (as ``Type=notify-reload`` requires)."""
        return self.notify(RELOADING="1", MONOTONIC_USEC=str(_monotonic_usec()))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: the daemon is shutting down (runs may still be draining)."""
        return self.notify(STOPPING="1", **_status(status))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the daemon is alive (a no-op when no watchdog was asked for)."""
        if self._watchdog_usec is None:
            return False
        return self.notify(WATCHDOG="1")

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC=``: the current start/stop step needs up to ``seconds`` more.

        Lets a shutdown grace longer than the unit's ``TimeoutStopSec=`` finish its drain.
        """
        return self.notify(EXTEND_TIMEOUT_USEC=str(max(0, round(seconds * _USEC_PER_SECOND))))

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds, or None; ping at half of it."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / _USEC_PER_SECOND


def _status(status: str | None) -> dict[str, str]:
    return {} if status is None else {"STATUS": status}


__all__ = ["SystemdNotifier"]
