"""The jumpbox over SSH (paramiko): verified host keys, keepalives, timeouts, and commands whose
output streams line by line while secrets travel on stdin.
"""

from __future__ import annotations

import base64
import hashlib
import select
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import paramiko

from bbr_orchestrator.adapters import ssh_stream
from bbr_orchestrator.core.models import LogStream
from bbr_orchestrator.errors import HostKeyError, RemoteTimeout, SshError
from bbr_orchestrator.ports import PID_FILE, CancelToken, LineSink

MAX_LINE = 64 * 1024
_CHUNK = 32 * 1024
_DRAIN_SECONDS = 5.0


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA-256 fingerprint of a public key (``SHA256:...``, as ``ssh-keygen -lf``)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class SshSettings:
    """How to reach one jumpbox. Exactly one of ``known_hosts_file`` / ``host_key_fingerprint``."""

    host: str
    port: int
    user: str
    private_key_file: Path
    known_hosts_file: Path | None = None
    host_key_fingerprint: str | None = None
    private_key_passphrase: str | None = None
    connect_timeout: float = 15.0
    keepalive_interval: float = 30.0

    @property
    def address(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


class _VerifyHostKey(paramiko.MissingHostKeyPolicy):
    """Called for every key not already trusted: accepts only the pinned fingerprint."""

    def __init__(self, settings: SshSettings) -> None:
        self._settings = settings

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        seen = f"{key.get_name()} {fingerprint(key)}"
        pinned = self._settings.host_key_fingerprint
        if pinned is None:
            where = self._settings.known_hosts_file
            raise HostKeyError(self._settings.address, seen, f"host key is not in {where}")
        if fingerprint(key) != pinned:
            raise HostKeyError(
                self._settings.address, seen, f"host key does not match the pinned {pinned}"
            )


def write_script(
    argv: Sequence[str],
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    record_pid: bool = False,
) -> str:
    """The POSIX shell script sent on stdin: environment (secrets) first, then ``exec argv``.

    ``ps`` on the jumpbox shows only ``sh -s``, then the argv, which holds no secret. With
    ``record_pid`` the shell writes its pid (which ``exec`` hands to the command) to
    ``PID_FILE`` in ``cwd``, so the command can be sent SIGTERM later.
    """
    lines = ["set -e", "umask 077"]
    for name, value in (env or {}).items():
        lines.append(f"export {name}={shlex.quote(value)}")
    if cwd:
        lines.append(f"cd {shlex.quote(cwd)}")
    if record_pid:
        lines.append(f'printf "%s\\n" "$$" > {PID_FILE}')
    lines.append(f"exec {shlex.join(argv)}")
    return "\n".join(lines) + "\n"


class _LineSplitter:
    """Cuts a byte stream into text lines (bounded length) and hands each to the sink."""

    def __init__(self, stream: LogStream, sink: LineSink) -> None:
        self._stream = stream
        self._sink = sink
        self._buffer = b""

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) >= MAX_LINE:
                    self._emit(self._buffer[:MAX_LINE])
                    self._buffer = self._buffer[MAX_LINE:]
                    continue
                return
            self._emit(self._buffer[:newline])
            self._buffer = self._buffer[newline + 1 :]

    def close(self) -> None:
        if self._buffer:
            self._emit(self._buffer)
            self._buffer = b""

    def _emit(self, raw: bytes) -> None:
        self._sink(self._stream, raw.decode("utf-8", errors="replace").rstrip("\r"))


class _Stopper:
    """Sends SIGTERM (once) to a running command through a second channel."""

    def __init__(self, shell: SshJumpbox, pid_file: str | None) -> None:
        self._shell = shell
        self._pid_file = pid_file
        self.sent = False

    def terminate(self) -> None:
        if self.sent or self._pid_file is None:
            return
        self.sent = True
        script = 'pid=$(cat "$1" 2>/dev/null) && kill -TERM "$pid" 2>/dev/null || true'
        self._shell.run(["sh", "-c", script, "sh", self._pid_file], on_line=_ignore, timeout=30)


def _ignore(_stream: LogStream, _text: str) -> None:
    return None


class SshJumpbox:
    """A connected jumpbox. Implements the ``RemoteShell`` port."""

    def __init__(self, settings: SshSettings, client: paramiko.SSHClient) -> None:
        self._settings = settings
        self._client = client

    @classmethod
    def connect(cls, settings: SshSettings) -> SshJumpbox:
        """Connect and authenticate, refusing any host key that is not trusted."""
        client = paramiko.SSHClient()
        if settings.known_hosts_file is not None:
            try:
                client.load_host_keys(str(settings.known_hosts_file))
            except OSError as exc:
                raise SshError(
                    settings.address, f"cannot read known_hosts {settings.known_hosts_file}: {exc}"
                ) from exc
        client.set_missing_host_key_policy(_VerifyHostKey(settings))
        try:
            key = paramiko.PKey.from_path(
                settings.private_key_file, password=settings.private_key_passphrase
            )
        except (OSError, paramiko.SSHException) as exc:
            raise SshError(
                settings.address, f"cannot load private key {settings.private_key_file}: {exc}"
            ) from exc
        timeout = settings.connect_timeout
        try:
            client.connect(
                settings.host,
                port=settings.port,
                username=settings.user,
                pkey=key,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                allow_agent=False,
                look_for_keys=False,
                transport_factory=ssh_stream.tuned_transport,
            )
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            seen = f"{exc.key.get_name()} {fingerprint(exc.key)}"
            raise HostKeyError(
                settings.address,
                seen,
                f"host key differs from the one in {settings.known_hosts_file}",
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise SshError(settings.address, f"authentication as {settings.user} failed") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise SshError(
                settings.address, f"cannot connect: {exc or type(exc).__name__}"
            ) from exc
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(max(1, int(settings.keepalive_interval)))
        return cls(settings, client)

    @property
    def host(self) -> str:
        return self._settings.address

    @property
    def transport(self) -> paramiko.Transport:
        """The live SSH transport (raises ``SshError`` once the connection is gone)."""
        return self._transport()

    def open_read(self, path: str, offset: int = 0) -> ssh_stream.RemoteReader:
        """Stream a remote file from ``offset`` (see ``ssh_stream``)."""
        return ssh_stream.open_read(self, path, offset)

    def open_write(self, path: str, mode: int = 0o600) -> ssh_stream.RemoteWriter:
        """Stream bytes into a remote file created with ``mode`` (see ``ssh_stream``)."""
        return ssh_stream.open_write(self, path, mode)

    def list_files(self, directory: str) -> list[tuple[str, int]]:
        return ssh_stream.list_files(self, directory)

    def list_dirs(self, directory: str) -> list[str]:
        return ssh_stream.list_dirs(self, directory)

    def sha256(self, path: str) -> str:
        return ssh_stream.file_sha256(self, path)

    def run(
        self,
        argv: Sequence[str],
        *,
        on_line: LineSink,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cancel: CancelToken | None = None,
    ) -> int:
        """Run ``argv`` on the jumpbox; stream its output; return its exit status.

        A command that needs stopping (``cancel`` set, or ``timeout`` passed) gets SIGTERM when
        it runs in a ``cwd`` (its pid is recorded there); otherwise its channel is closed.
        """
        script = write_script(argv, cwd, env, record_pid=cwd is not None)
        command = shlex.join(argv)
        stop = _Stopper(self, f"{cwd}/{PID_FILE}" if cwd else None)
        try:
            channel = self._transport().open_session(timeout=self._settings.connect_timeout)
            channel.exec_command("/bin/sh -s")
            channel.sendall(script.encode("utf-8"))
            channel.shutdown_write()
            return self._pump(channel, on_line, command, timeout, cancel, stop)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshError(self.host, f"`{command}` failed: {exc or type(exc).__name__}") from exc

    def write_file(self, path: str, data: bytes, mode: int = 0o600) -> None:
        """Write a file over SFTP; its mode is set before any content is written."""
        try:
            with self._client.open_sftp() as sftp, sftp.open(path, "wx") as remote:
                sftp.chmod(path, mode)
                remote.write(data)
        except (paramiko.SSHException, OSError) as exc:
            raise SshError(self.host, f"cannot write {path}: {exc}") from exc

    def _pump(
        self,
        channel: paramiko.Channel,
        sink: LineSink,
        command: str,
        timeout: float | None,
        cancel: CancelToken | None,
        stop: _Stopper,
    ) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        out, err = _LineSplitter(LogStream.STDOUT, sink), _LineSplitter(LogStream.STDERR, sink)
        try:
            while True:
                got = False
                while channel.recv_ready():
                    out.feed(channel.recv(_CHUNK))
                    got = True
                while channel.recv_stderr_ready():
                    err.feed(channel.recv_stderr(_CHUNK))
                    got = True
                if channel.exit_status_ready() and not (
                    channel.recv_ready() or channel.recv_stderr_ready()
                ):
                    break
                if channel.closed and not got:
                    break
                if cancel is not None and cancel.is_set():
                    stop.terminate()
                if deadline is not None and time.monotonic() > deadline:
                    stop.terminate()
                    raise RemoteTimeout(self.host, command, float(timeout or 0))
                if not got:
                    select.select([channel], [], [], 0.2)
            # Drain whatever arrived between the exit status and EOF (bounded wait: a
            # background process left holding stdout must not hang us).
            channel.settimeout(_DRAIN_SECONDS)
            try:
                for data in iter(lambda: channel.recv(_CHUNK), b""):
                    out.feed(data)
            except TimeoutError:
                pass
            while channel.recv_stderr_ready():
                err.feed(channel.recv_stderr(_CHUNK))
            out.close()
            err.close()
            return channel.recv_exit_status()
        finally:
            channel.close()

    def _transport(self) -> paramiko.Transport:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise SshError(self.host, "the SSH connection is closed")
        return transport

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SshJumpbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
