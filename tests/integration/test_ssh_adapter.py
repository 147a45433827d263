"""The paramiko adapter against a real OpenSSH sshd on 127.0.0.1."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import paramiko
import pytest

from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
from bbr_orchestrator.core.models import LogStream
from bbr_orchestrator.errors import HostKeyError, RemoteTimeout, SshError
from bbr_orchestrator.sandbox.sshd import Jumpbox


def settings(box: Jumpbox, **overrides: object) -> SshSettings:
    values: dict[str, object] = {
        "host": box.host,
        "port": box.port,
        "user": box.user,
        "private_key_file": box.client_key_path,
        "known_hosts_file": box.known_hosts_path,
        "connect_timeout": 10.0,
    }
    values.update(overrides)
    return SshSettings(**values)  # type: ignore[arg-type]


class Collector:
    def __init__(self) -> None:
        self.lines: list[tuple[LogStream, str]] = []

    def __call__(self, stream: LogStream, text: str) -> None:
        self.lines.append((stream, text))

    def texts(self, stream: LogStream) -> list[str]:
        return [t for s, t in self.lines if s is stream]


def test_runs_a_command_with_known_hosts(jumpbox: Jumpbox) -> None:
    """With the host key in known_hosts, a command runs and its lines and exit status come back."""
    out = Collector()
    with SshJumpbox.connect(settings(jumpbox)) as shell:
        code = shell.run(["sh", "-c", "echo one; echo two >&2; exit 3"], on_line=out)
    assert code == 3
    assert out.texts(LogStream.STDOUT) == ["one"]
    assert out.texts(LogStream.STDERR) == ["two"]


def test_pinned_fingerprint_is_accepted(jumpbox: Jumpbox) -> None:
    """A pinned SHA256 fingerprint of the host key is enough to connect (no known_hosts)."""
    pinned = settings(
        jumpbox, known_hosts_file=None, host_key_fingerprint=jumpbox.host_key_fingerprint
    )
    out = Collector()
    with SshJumpbox.connect(pinned) as shell:
        assert shell.run(["bbr", "version"], on_line=out) == 0
    assert out.texts(LogStream.STDOUT) == ["bbr version 1.9.79"]


def test_wrong_fingerprint_is_refused_naming_host_and_key(jumpbox: Jumpbox) -> None:
    """A different pinned fingerprint refuses the connection and names the host and the key seen."""
    wrong = "SHA256:" + "A" * 43
    with pytest.raises(HostKeyError) as info:
        SshJumpbox.connect(settings(jumpbox, known_hosts_file=None, host_key_fingerprint=wrong))
    message = str(info.value)
    assert f"[{jumpbox.host}]:{jumpbox.port}" in message
    assert jumpbox.host_key_fingerprint in message
    assert "refused" in message


def test_unknown_host_is_refused(jumpbox: Jumpbox, tmp_path: Path) -> None:
    """A known_hosts file without the jumpbox refuses it: there is no accept-anything default."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match="is not in") as info:
        SshJumpbox.connect(settings(jumpbox, known_hosts_file=empty))
    assert jumpbox.host_key_fingerprint in str(info.value)


def test_changed_host_key_is_refused(jumpbox: Jumpbox, tmp_path: Path) -> None:
    """A known_hosts entry with another key for the same host refuses the connection."""
    other = paramiko.Ed25519Key.from_private_key_file(str(jumpbox.client_key_path))
    changed = tmp_path / "known_hosts"
    changed.write_text(f"[{jumpbox.host}]:{jumpbox.port} ssh-ed25519 {other.get_base64()}\n")
    with pytest.raises(HostKeyError, match="differs") as info:
        SshJumpbox.connect(settings(jumpbox, known_hosts_file=changed))
    assert jumpbox.host_key_fingerprint in str(info.value)


def test_wrong_user_key_names_the_user(jumpbox: Jumpbox, tmp_path: Path) -> None:
    """An unauthorised key fails authentication with an error naming the user."""
    stranger = tmp_path / "stranger"
    paramiko.ECDSAKey.generate().write_private_key_file(str(stranger))
    with pytest.raises(SshError, match=f"authentication as {jumpbox.user} failed"):
        SshJumpbox.connect(settings(jumpbox, private_key_file=stranger))


def test_dead_port_is_a_clear_error(jumpbox: Jumpbox) -> None:
    """Nothing listening: the error names the address instead of hanging."""
    from bbr_orchestrator.sandbox.ports import free_port

    port = free_port()
    with pytest.raises(SshError, match=rf"\[127.0.0.1\]:{port}: cannot connect"):
        SshJumpbox.connect(settings(jumpbox, port=port, connect_timeout=3.0))


def test_large_interleaved_output_does_not_deadlock(jumpbox: Jumpbox) -> None:
    """Megabytes on stdout and stderr at once are read concurrently, line by line, in order."""
    script = "i=0; while [ $i -lt 20000 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done"
    out = Collector()
    with SshJumpbox.connect(settings(jumpbox)) as shell:
        assert shell.run(["sh", "-c", script], on_line=out, timeout=120) == 0
    assert out.texts(LogStream.STDOUT) == [f"out-{i}" for i in range(20000)]
    assert out.texts(LogStream.STDERR) == [f"err-{i}" for i in range(20000)]


def test_cwd_is_used(jumpbox: Jumpbox, tmp_path: Path) -> None:
    """The command runs in the requested working directory."""
    out = Collector()
    with SshJumpbox.connect(settings(jumpbox)) as shell:
        shell.run(["pwd"], on_line=out, cwd=str(tmp_path))
    assert out.texts(LogStream.STDOUT) == [str(tmp_path)]


def test_timeout_stops_the_command(jumpbox: Jumpbox) -> None:
    """A command running past its timeout raises RemoteTimeout naming the command."""
    with (
        SshJumpbox.connect(settings(jumpbox)) as shell,
        pytest.raises(RemoteTimeout, match="sleep 30"),
    ):
        shell.run(["sleep", "30"], on_line=Collector(), timeout=1.0)


def test_secret_travels_on_stdin_never_in_the_process_list(jumpbox: Jumpbox) -> None:
    """A secret in env reaches the command's environment but never appears in `ps` output."""
    secret = "s3cr3t-" + hashlib.sha256(b"ps-test").hexdigest()[:16]
    seen_by_command = Collector()
    process_list = Collector()
    with SshJumpbox.connect(settings(jumpbox)) as shell:
        worker = threading.Thread(
            target=shell.run,
            args=(["sh", "-c", 'sleep 2; printf %s "$BOSH_CLIENT_SECRET" | sha256sum'],),
            kwargs={"on_line": seen_by_command, "env": {"BOSH_CLIENT_SECRET": secret}},
        )
        worker.start()
        with SshJumpbox.connect(settings(jumpbox)) as observer:
            observer.run(["sh", "-c", "sleep 1; ps -eo args"], on_line=process_list)
        worker.join(timeout=30)
    assert any("sleep 2" in line for line in process_list.texts(LogStream.STDOUT))
    assert not any(secret in line for _, line in process_list.lines)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert seen_by_command.texts(LogStream.STDOUT) == [f"{digest}  -"]
