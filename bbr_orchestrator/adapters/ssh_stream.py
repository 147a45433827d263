"""Artifact files to and from the jumpbox at wire speed, exactly, in bounded memory.

Each transfer is one exec channel running ``dd``/``cat`` (no SFTP request round trips),
opened with a 16 MiB window and 256 KiB packets; a read channel batches sshd's 32 KiB packets
into 1 MiB blocks (``ssh_pipe.BatchingPipe``). A read first prints the file's size, so
truncation, growth, a killed reader or a dropped connection raise instead of returning short
data; a dropped read resumes on a new connection from the exact offset in the error. Memory
per stream is bounded by the window: what paramiko buffers plus one received block.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
from collections.abc import Iterable, Mapping
from typing import NoReturn, Protocol

import paramiko

from bbr_orchestrator.adapters.ssh_pipe import BatchingPipe
from bbr_orchestrator.errors import RemoteFileError, SshError, TransferInterrupted

PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
"""AES-GCM first: one AEAD call per packet, about twice paramiko's default aes128-ctr+HMAC."""
CLIENT_REKEY_BYTES = 2**40
"""paramiko rekeys every 512 MiB; a rekey it starts as a channel closes deadlocks for 30 s and
kills the read. Set above OpenSSH's own limit (2**32 blocks = 64 GiB for AES, both directions),
so the server starts every rekey."""
WINDOW_SIZE = 16 * 1024 * 1024
MAX_PACKET_SIZE = 256 * 1024
RECV_SIZE = 4 * 1024 * 1024
"""Large: paramiko memmoves what stays buffered after each recv (64 KiB reads halve speed)."""
IDLE_TIMEOUT = 300.0
_STDERR_LIMIT = 4096
_SEND_CHUNK = 1024 * 1024
_EMPTY = memoryview(b"")
_OUTPUT_LIMIT = 16 * 1024 * 1024

_READ_SCRIPT = """\
exec 3<"$1"
info=$(stat -L -c '%F|%s|%i|%y' /dev/fd/3) || exit 65
case $info in
  'regular file|'*|'regular empty file|'*) ;;
  *) echo "not a regular file (${info%%|*})" >&2; exit 65 ;;
esac
size=${info#*|}; size=${size%%|*}
if [ "$2" -gt "$size" ]; then echo "offset $2 is past the end ($size bytes)" >&2; exit 65; fi
echo "$size"
dd bs=1M iflag=skip_bytes skip="$2" status=none <&3 || exit $?
now=$(stat -L -c '%F|%s|%i|%y' /dev/fd/3) || exit 65
[ "$now" = "$info" ] || { echo "changed while being read: $info -> $now" >&2; exit 65; }
"""
_WRITE_SCRIPT = """\
set -eu
umask 077
: >"$1"
chmod "$2" "$1"
cat >"$1"
stat -c %s "$1"
"""
_LIST_SCRIPT = "cd \"$1\" && exec find . -mindepth 1 -maxdepth 1 -printf '%y %s %P\\0'"
_TYPES = {"d": "a directory", "l": "a symbolic link", "p": "a fifo", "s": "a socket"}


class Connected(Protocol):
    """What the streams need from a connection (``SshJumpbox`` fits)."""

    @property
    def host(self) -> str: ...

    @property
    def transport(self) -> paramiko.Transport: ...


def tuned_transport(
    sock: socket.socket | paramiko.Channel | paramiko.ProxyCommand | str | tuple[str, int],
    /,
    *,
    gss_kex: bool = False,
    gss_deleg_creds: bool = True,
    disabled_algorithms: Mapping[str, Iterable[str]] | None = None,
) -> paramiko.Transport:
    """``SSHClient.connect(transport_factory=...)``: AES-GCM preferred, rekeying left to sshd."""
    transport = paramiko.Transport(sock, disabled_algorithms=disabled_algorithms)
    options = transport.get_security_options()
    offered = tuple(options.ciphers)
    options.ciphers = tuple(c for c in PREFERRED_CIPHERS if c in offered) + tuple(
        c for c in offered if c not in PREFERRED_CIPHERS
    )
    transport.packetizer.REKEY_BYTES = CLIENT_REKEY_BYTES
    transport.packetizer.REKEY_PACKETS = CLIENT_REKEY_BYTES
    return transport


_SSH_ERRORS = (paramiko.SSHException, OSError, EOFError)


def _close(channel: paramiko.Channel) -> None:
    """Close a channel; on a dead transport paramiko raises EOFError here, which changes nothing."""
    with contextlib.suppress(*_SSH_ERRORS):
        channel.close()


def _start(
    conn: Connected, argv: list[str], timeout: float, *, bulk: bool = False
) -> paramiko.Channel:
    """An exec channel with the large window and packets, running ``argv`` (shell-quoted).

    ``bulk``: the command's output is one long stream (a file read), so reads are batched
    (:class:`BatchingPipe`) instead of waking up once per 32 KiB packet.
    """
    transport = conn.transport
    command = " ".join(argv[:2]) if argv[:2] == ["sh", "-c"] else argv[0]
    try:
        channel = transport.open_session(
            window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE, timeout=timeout
        )
        if bulk:
            channel.in_buffer = BatchingPipe()
        channel.settimeout(timeout)
        channel.exec_command(shlex.join(argv))
    except _SSH_ERRORS as exc:
        raise SshError(conn.host, f"cannot start `{command}`: {exc or type(exc).__name__}") from exc
    return channel


def _stderr(channel: paramiko.Channel) -> str:
    """What the command wrote on stderr (its last few KiB), as one line."""
    tail = b""
    while channel.recv_stderr_ready():
        tail = (tail + channel.recv_stderr(_STDERR_LIMIT))[-_STDERR_LIMIT:]
    return " ".join(tail.decode("utf-8", errors="replace").split())


def _exit_status(channel: paramiko.Channel, timeout: float) -> int:
    """The exit status; -1 when the command died by a signal or the connection was lost."""
    channel.status_event.wait(timeout)
    return channel.exit_status if channel.exit_status_ready() else -1


class RemoteReader:
    """``ReadStream`` over one exec channel; ``size`` is the whole file's size."""

    def __init__(
        self, conn: Connected, path: str, offset: int = 0, idle_timeout: float = IDLE_TIMEOUT
    ) -> None:
        if offset < 0:
            raise ValueError(f"offset must be >= 0, not {offset}")
        self.host, self.path, self._idle = conn.host, path, idle_timeout
        self._transport = conn.transport
        self.position = offset
        """Absolute offset of the next byte ``readinto`` returns."""
        self._channel = _start(
            conn, ["sh", "-c", _READ_SCRIPT, "sh", path, str(offset)], 30.0, bulk=True
        )
        self._channel.settimeout(idle_timeout)
        self._pending = _EMPTY
        self._finished = False
        self.size = -1
        header = b""
        while b"\n" not in header:
            if len(header) > 32:
                self._fail(RemoteFileError(self.host, path, f"bad size header {header[:32]!r}"))
            header += bytes(self._recv())
        line, _, rest = header.partition(b"\n")
        self.size = int(line)
        self._pending = memoryview(rest)

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` from what has arrived; 0 only once every byte came and sshd said OK."""
        if self.position >= self.size:
            self._finish()
            return 0
        if not self._pending:
            self._pending = memoryview(self._recv())
        n = min(len(buffer), len(self._pending), self.size - self.position)
        buffer[:n] = self._pending[:n]
        # An empty slice still pins the whole received block: drop it before the next recv.
        self._pending = self._pending[n:] if n < len(self._pending) else _EMPTY
        self.position += n
        return n

    def close(self) -> None:
        """Close the channel (an unfinished remote reader gets EPIPE and stops)."""
        self._pending = _EMPTY
        _close(self._channel)

    def _recv(self, *, eof_ok: bool = False) -> bytes:
        try:
            data = self._channel.recv(RECV_SIZE)
        except TimeoutError:
            self._fail(self._interrupted(f"no data for {self._idle:.0f}s"))
        except _SSH_ERRORS as exc:
            self._fail(self._interrupted(f"connection lost: {exc or type(exc).__name__}"))
        if not data and not eof_ok:
            total = str(self.size) if self.size >= 0 else "?"
            self._fail(self._ended(f"ended after {self.position} of {total} bytes"))
        return data

    def _finish(self) -> None:
        """At the expected end: the stream must end here and the script must exit 0."""
        if self._finished:
            return
        if self._pending or self._recv(eof_ok=True):
            self._fail(RemoteFileError(self.host, self.path, f"grew past {self.size} bytes"))
        status = _exit_status(self._channel, self._idle)
        if status != 0:
            self._fail(self._ended("reader failed after the last byte"))
        self._finished = True
        _close(self._channel)

    def _ended(self, what: str) -> SshError:
        """Why the stream ended early: a lost connection, a killed reader or a file error."""
        if not self._transport.is_active():
            return self._interrupted(f"connection lost ({what})")
        status = _exit_status(self._channel, min(self._idle, 30.0))
        errors = _stderr(self._channel)
        if status < 0 or status >= 128:
            return self._interrupted(f"remote reader killed ({what}) {errors}".rstrip())
        return RemoteFileError(self.host, self.path, errors or f"{what}, exit status {status}")

    def _interrupted(self, reason: str) -> TransferInterrupted:
        return TransferInterrupted(self.host, self.path, self.position, reason)

    def _fail(self, error: SshError) -> NoReturn:
        self.close()
        raise error


class RemoteWriter:
    """``WriteStream`` into one remote file, created with ``mode`` before any byte arrives."""

    def __init__(
        self, conn: Connected, path: str, mode: int = 0o600, idle_timeout: float = IDLE_TIMEOUT
    ) -> None:
        self.host, self.path, self._idle = conn.host, path, idle_timeout
        self._transport = conn.transport
        self.written = 0
        self._closed = False
        self._channel = _start(conn, ["sh", "-c", _WRITE_SCRIPT, "sh", path, f"{mode:04o}"], 30.0)
        self._channel.settimeout(idle_timeout)

    def write(self, data: memoryview | bytes) -> None:
        """Send ``data`` (blocks while sshd's window is full)."""
        if self._closed:
            raise ValueError(f"{self.path}: write after close")
        if self._channel.exit_status_ready():
            self._fail("the remote writer exited early")
        view = memoryview(data).cast("B")
        try:
            for start in range(0, len(view), _SEND_CHUNK):
                self._channel.sendall(bytes(view[start : start + _SEND_CHUNK]))
        except TimeoutError:
            self._fail(f"could not send for {self._idle:.0f}s")
        except _SSH_ERRORS as exc:
            self._fail(str(exc) or type(exc).__name__)
        self.written += len(view)

    def close(self) -> None:
        """Send EOF, wait for the remote side, and check that the file holds every byte."""
        if self._closed:
            return
        self._closed = True
        out = b""
        try:
            self._channel.shutdown_write()
            while chunk := self._channel.recv(4096):
                out += chunk
        except TimeoutError:
            self._fail(f"no answer for {self._idle:.0f}s after the last byte")
        except _SSH_ERRORS as exc:
            self._fail(str(exc) or type(exc).__name__)
        status = _exit_status(self._channel, self._idle)
        if status != 0 or not out.strip().isdigit():
            self._fail(f"exit status {status}")
        if int(out) != self.written:
            self._fail(f"holds {int(out)} bytes, {self.written} were sent", interrupted=False)
        _close(self._channel)

    def abort(self) -> None:
        """Stop without finishing (the partial file is left for the workdir cleanup)."""
        self._closed = True
        _close(self._channel)

    def _fail(self, reason: str, *, interrupted: bool | None = None) -> NoReturn:
        self._closed = True
        if interrupted is None:
            interrupted = not self._transport.is_active()
        if not interrupted:
            status = _exit_status(self._channel, min(self._idle, 30.0))
            errors = _stderr(self._channel)
            interrupted = status < 0 and not errors
            reason = errors or reason
        _close(self._channel)
        if interrupted:
            raise TransferInterrupted(self.host, self.path, None, reason)
        raise RemoteFileError(self.host, self.path, reason)


def open_read(conn: Connected, path: str, offset: int = 0) -> RemoteReader:
    """Stream ``path`` from byte ``offset``; raises ``RemoteFileError`` if it cannot be read."""
    return RemoteReader(conn, path, offset)


def open_write(conn: Connected, path: str, mode: int = 0o600) -> RemoteWriter:
    """Create (or truncate) ``path`` with ``mode`` and stream bytes into it."""
    return RemoteWriter(conn, path, mode)


def _run(conn: Connected, path: str, argv: list[str], timeout: float = 120.0) -> bytes:
    """Run a short command; its stdout, or ``RemoteFileError`` naming ``path`` and stderr."""
    channel = _start(conn, argv, timeout)
    out = bytearray()
    try:
        while chunk := channel.recv(RECV_SIZE):
            out += chunk
            if len(out) > _OUTPUT_LIMIT:
                raise RemoteFileError(conn.host, path, f"more than {_OUTPUT_LIMIT} bytes of output")
        status = _exit_status(channel, timeout)
        errors = _stderr(channel)
    except TimeoutError as exc:
        raise SshError(conn.host, f"`{argv[0]}` on {path}: no answer for {timeout:.0f}s") from exc
    except _SSH_ERRORS as exc:
        raise SshError(conn.host, f"`{argv[0]}` on {path}: {exc or type(exc).__name__}") from exc
    finally:
        _close(channel)
    if status != 0:
        raise RemoteFileError(conn.host, path, errors or f"`{argv[0]}` exit status {status}")
    return bytes(out)


def _entries(conn: Connected, directory: str) -> list[tuple[str, int, str]]:
    raw = _run(conn, directory, ["sh", "-c", _LIST_SCRIPT, "sh", directory])
    entries = []
    for record in raw.split(b"\0")[:-1]:
        kind, size, name = record.split(b" ", 2)
        entries.append((kind.decode(), int(size), os.fsdecode(name)))
    return sorted(entries, key=lambda entry: entry[2])


def list_files(conn: Connected, directory: str) -> list[tuple[str, int]]:
    """``(name, size)`` of the files in an artifact directory, which holds only regular files."""
    entries = _entries(conn, directory)
    for kind, _size, name in entries:
        if kind != "f":
            what = _TYPES.get(kind, f"not a regular file (type {kind})")
            raise RemoteFileError(
                conn.host, f"{directory.rstrip('/')}/{name}", f"is {what}; expected only files"
            )
    return [(name, size) for _kind, size, name in entries]


def list_dirs(conn: Connected, directory: str) -> list[str]:
    """Names of the subdirectories of ``directory`` (symbolic links are not followed)."""
    return [name for kind, _size, name in _entries(conn, directory) if kind == "d"]


def file_sha256(conn: Connected, path: str) -> str:
    """SHA-256 (hex) of a file, computed on the jumpbox by ``sha256sum``."""
    out = _run(conn, path, ["sh", "-c", 'exec sha256sum <"$1"', "sh", path], timeout=3600.0)
    digest = out.split(b" ", 1)[0].decode("ascii", errors="replace")
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise RemoteFileError(conn.host, path, f"unexpected sha256sum output {out[:100]!r}")
    return digest
