"""The sd_notify client against real AF_UNIX datagram sockets: the exact datagrams systemd gets."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bbr_orchestrator.adapters.systemd import SystemdNotifier


class Receiver:
    """The service manager's end: a bound datagram socket and the address to put in the env."""

    def __init__(self, sock: socket.socket, notify_socket: str) -> None:
        self.sock = sock
        self.notify_socket = notify_socket

    def datagram(self) -> bytes:
        self.sock.settimeout(2.0)
        return self.sock.recv(65536)

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(65536)
        except BlockingIOError:
            return True
        return False


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """A filesystem AF_UNIX datagram socket in tmp_path."""
    path = tmp_path / "notify"
    assert len(os.fsencode(path)) < 108, f"{path} is too long for sockaddr_un"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield Receiver(sock, str(path))


@pytest.fixture
def abstract_receiver() -> Iterator[Receiver]:
    """An abstract-namespace AF_UNIX datagram socket (``@name`` in $NOTIFY_SOCKET)."""
    name = f"bbr-orchestrator-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        yield Receiver(sock, "@" + name)


def notifier_for(receiver: Receiver, **env: str) -> SystemdNotifier:
    return SystemdNotifier.from_env({"NOTIFY_SOCKET": receiver.notify_socket, **env})


def test_no_notify_socket_is_a_silent_no_op() -> None:
    """Without $NOTIFY_SOCKET every call does nothing, raises nothing and reports False."""
    notifier = SystemdNotifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready("up")
    assert not notifier.status("idle")
    assert not notifier.reloading()
    assert not notifier.stopping()
    assert not notifier.watchdog()
    assert not notifier.extend_timeout(60)
    assert notifier.watchdog_interval() is None


def test_ready_with_status(receiver: Receiver) -> None:
    """ready(status) sends exactly READY=1 and STATUS= in one datagram."""
    assert notifier_for(receiver).ready("2 plans scheduled")
    assert receiver.datagram() == b"READY=1\nSTATUS=2 plans scheduled"


def test_ready_without_status(receiver: Receiver) -> None:
    """ready() without a status sends READY=1 alone."""
    assert notifier_for(receiver).ready()
    assert receiver.datagram() == b"READY=1"


def test_status(receiver: Receiver) -> None:
    """status(text) sends STATUS=text, UTF-8 encoded."""
    assert notifier_for(receiver).status("backing up cf — 3 GiB")
    assert receiver.datagram() == "STATUS=backing up cf — 3 GiB".encode()


def test_status_newlines_cannot_inject(receiver: Receiver) -> None:
    """A newline in a status is folded: it cannot smuggle in another assignment (READY=1)."""
    assert notifier_for(receiver).status("line one\nREADY=1\r\nline three")
    assert receiver.datagram() == b"STATUS=line one READY=1 line three"


def test_reloading_sends_monotonic_usec(receiver: Receiver) -> None:
    """reloading() sends RELOADING=1 and MONOTONIC_USEC= read from CLOCK_MONOTONIC, in µs."""
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier_for(receiver).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = receiver.datagram().split(b"\n")
    assert first == b"RELOADING=1"
    key, _, value = second.partition(b"=")
    assert key == b"MONOTONIC_USEC"
    assert value.isdigit() and before <= int(value) <= after


def test_stopping(receiver: Receiver) -> None:
    """stopping(status) sends STOPPING=1 and the status; stopping() alone just STOPPING=1."""
    notifier = notifier_for(receiver)
    assert notifier.stopping("waiting for 1 run (grace 30m)")
    assert receiver.datagram() == b"STOPPING=1\nSTATUS=waiting for 1 run (grace 30m)"
    assert notifier.stopping()
    assert receiver.datagram() == b"STOPPING=1"


def test_extend_timeout(receiver: Receiver) -> None:
    """extend_timeout(seconds) sends EXTEND_TIMEOUT_USEC= in whole microseconds."""
    assert notifier_for(receiver).extend_timeout(90.5)
    assert receiver.datagram() == b"EXTEND_TIMEOUT_USEC=90500000"


def test_watchdog_for_this_pid(receiver: Receiver) -> None:
    """With $WATCHDOG_PID = our pid, the interval is $WATCHDOG_USEC in s and pings go out."""
    notifier = notifier_for(receiver, WATCHDOG_USEC="120000000", WATCHDOG_PID=str(os.getpid()))
    assert notifier.watchdog_interval() == 120.0
    assert notifier.watchdog()
    assert receiver.datagram() == b"WATCHDOG=1"


def test_watchdog_without_pid_is_ours(receiver: Receiver) -> None:
    """$WATCHDOG_USEC without $WATCHDOG_PID applies to this process."""
    notifier = notifier_for(receiver, WATCHDOG_USEC="500000")
    assert notifier.watchdog_interval() == 0.5
    assert notifier.watchdog()
    assert receiver.datagram() == b"WATCHDOG=1"


def test_watchdog_for_another_pid_is_ignored(receiver: Receiver) -> None:
    """A watchdog for another process ($WATCHDOG_PID ≠ our pid) is neither timed nor pinged."""
    other = str(os.getpid() + 1)
    notifier = notifier_for(receiver, WATCHDOG_USEC="120000000", WATCHDOG_PID=other)
    assert notifier.watchdog_interval() is None
    assert not notifier.watchdog()
    assert receiver.nothing_pending()


def test_watchdog_pid_defaults_to_getpid(receiver: Receiver) -> None:
    """from_env compares $WATCHDOG_PID with os.getpid() unless a pid is passed."""
    env = {"NOTIFY_SOCKET": receiver.notify_socket, "WATCHDOG_USEC": "1000000"}
    mine = SystemdNotifier.from_env({**env, "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_interval() == 1.0
    given = SystemdNotifier.from_env({**env, "WATCHDOG_PID": "4242"}, pid=4242)
    assert given.watchdog_interval() == 1.0


@pytest.mark.parametrize("value", ["", "0", "abc", "-5", "1.5", "١٢"])
def test_invalid_watchdog_usec_means_no_watchdog(receiver: Receiver, value: str) -> None:
    """An empty, zero, negative or non-integer $WATCHDOG_USEC turns the watchdog off."""
    notifier = notifier_for(receiver, WATCHDOG_USEC=value)
    assert notifier.watchdog_interval() is None
    assert not notifier.watchdog()


def test_abstract_socket(abstract_receiver: Receiver) -> None:
    """An @name $NOTIFY_SOCKET reaches the abstract-namespace socket of that name."""
    assert abstract_receiver.notify_socket.startswith("@")
    assert notifier_for(abstract_receiver).ready("up")
    assert abstract_receiver.datagram() == b"READY=1\nSTATUS=up"


def test_send_failure_is_logged_not_raised(tmp_path: Path) -> None:
    """A socket nobody listens on: the send fails, is logged as sd_notify_failed, and returns."""
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.enabled
    with capture_logs() as logs:
        assert not notifier.ready("up")
    assert [entry["event"] for entry in logs] == ["sd_notify_failed"]
    assert logs[0]["log_level"] == "warning" and logs[0]["keys"] == ["READY", "STATUS"]


def test_receiver_gone_after_start(receiver: Receiver) -> None:
    """When the receiver closes between sends, the next send fails quietly and the next
    notifier to a live socket still works."""
    notifier = notifier_for(receiver)
    assert notifier.status("one")
    assert receiver.datagram() == b"STATUS=one"
    receiver.sock.close()
    with capture_logs() as logs:
        assert not notifier.status("two")
    assert [entry["event"] for entry in logs] == ["sd_notify_failed"]


@pytest.mark.parametrize("value", ["relative/notify", "vsock:2:1234", "@"])
def test_unsupported_socket_address_disables(value: str) -> None:
    """A $NOTIFY_SOCKET that is not an AF_UNIX path or @name is logged once and ignored."""
    with capture_logs() as logs:
        notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": value})
        assert not notifier.enabled
        assert not notifier.ready()
    assert [entry["event"] for entry in logs] == ["sd_notify_socket_unsupported"]


def test_environment_is_left_alone(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """from_env() reads os.environ by default and never unsets $NOTIFY_SOCKET or the watchdog."""
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.notify_socket)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = SystemdNotifier.from_env()
    assert notifier.ready()
    assert receiver.datagram() == b"READY=1"
    assert os.environ["NOTIFY_SOCKET"] == receiver.notify_socket
    assert os.environ["WATCHDOG_USEC"] == "2000000"
    assert notifier.watchdog_interval() == 2.0
