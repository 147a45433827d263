"""Streaming artifact files over exec channels against a real OpenSSH sshd on 127.0.0.1.

sshd runs locally as the current user, so the remote files are local paths the tests create
and inspect directly, and the remote processes can be found (and killed) locally.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bbr_orchestrator.adapters import ssh_stream
from bbr_orchestrator.adapters.ssh import SshJumpbox, SshSettings
from bbr_orchestrator.errors import RemoteFileError, SshError, TransferInterrupted
from bbr_orchestrator.sandbox.sshd import Jumpbox
from tests.integration.remote_procs import kill_remote_dd, kill_session

MIB = 1024 * 1024


def connect(box: Jumpbox) -> SshJumpbox:
    return SshJumpbox.connect(
        SshSettings(
            host=box.host,
            port=box.port,
            user=box.user,
            private_key_file=box.client_key_path,
            known_hosts_file=box.known_hosts_path,
            connect_timeout=10.0,
        )
    )


@pytest.fixture
def shell(jumpbox: Jumpbox) -> Iterator[SshJumpbox]:
    with connect(jumpbox) as connected:
        yield connected


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def read_all(stream: ssh_stream.RemoteReader, chunk: int = MIB) -> bytes:
    out = bytearray()
    buffer = bytearray(chunk)
    while n := stream.readinto(memoryview(buffer)):
        out += buffer[:n]
    return bytes(out)


def read_some(stream: ssh_stream.RemoteReader, at_least: int) -> bytes:
    out = bytearray()
    buffer = bytearray(256 * 1024)
    while len(out) < at_least:
        n = stream.readinto(memoryview(buffer))
        assert n > 0
        out += buffer[:n]
    return bytes(out)


def drain(stream: ssh_stream.RemoteReader, into: bytearray) -> None:
    """Append the rest of the stream to ``into`` (what arrived before an error stays there)."""
    buffer = bytearray(MIB)
    while n := stream.readinto(memoryview(buffer)):
        into += buffer[:n]


def write_and_close(shell: SshJumpbox, path: str, data: bytes) -> None:
    stream = shell.open_write(path)
    stream.write(data)
    stream.close()


def test_reads_a_large_random_file_byte_exact(shell: SshJumpbox, tmp_path: Path) -> None:
    """Tens of MiB of random bytes arrive exactly (SHA-256 equal) and then 0 marks the end."""
    data = random_file(tmp_path / "big.tar", 40 * MIB + 12345)
    stream = shell.open_read(str(tmp_path / "big.tar"))
    assert stream.size == len(data)
    got = read_all(stream, chunk=3 * MIB + 7)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    assert stream.readinto(memoryview(bytearray(10))) == 0
    stream.close()


def test_reads_from_an_offset(shell: SshJumpbox, tmp_path: Path) -> None:
    """open_read(offset) returns exactly the bytes from that offset; offset == size is empty."""
    data = random_file(tmp_path / "f", 5 * MIB + 3)
    for offset in (1, 4 * MIB + 4097, len(data)):
        stream = shell.open_read(str(tmp_path / "f"), offset)
        assert read_all(stream, chunk=64 * 1024) == data[offset:]


def test_empty_file_reads_as_immediate_end(shell: SshJumpbox, tmp_path: Path) -> None:
    """An empty file is a size-0 stream whose first readinto returns 0."""
    (tmp_path / "empty").write_bytes(b"")
    stream = shell.open_read(str(tmp_path / "empty"))
    assert stream.size == 0
    assert stream.readinto(memoryview(bytearray(16))) == 0


def test_missing_file_names_host_and_path(shell: SshJumpbox, tmp_path: Path) -> None:
    """A missing file raises RemoteFileError naming the jumpbox, the path and the cause."""
    missing = tmp_path / "no-such.tar"
    with pytest.raises(RemoteFileError) as info:
        shell.open_read(str(missing))
    assert info.value.path == str(missing)
    assert shell.host in str(info.value)
    assert str(missing) in str(info.value)
    assert "No such file" in str(info.value) or "nonexistent" in str(info.value)


def test_directory_is_refused(shell: SshJumpbox, tmp_path: Path) -> None:
    """Reading a directory is a clear error, not an empty or garbled stream."""
    with pytest.raises(RemoteFileError, match="not a regular file \\(directory\\)"):
        shell.open_read(str(tmp_path))


def test_offset_past_the_end_is_refused(shell: SshJumpbox, tmp_path: Path) -> None:
    """Resuming past the end of the file is an error, not a silent empty read."""
    random_file(tmp_path / "f", 100)
    with pytest.raises(RemoteFileError, match="offset 101 is past the end \\(100 bytes\\)"):
        shell.open_read(str(tmp_path / "f"), 101)


def test_file_truncated_mid_read_is_detected(shell: SshJumpbox, tmp_path: Path) -> None:
    """A file that shrinks while being read raises; the bytes handed out are all genuine."""
    path = tmp_path / "shrinks"
    data = random_file(path, 64 * MIB)
    stream = shell.open_read(str(path))
    got = bytearray(read_some(stream, MIB))
    os.truncate(path, 40 * MIB)
    with pytest.raises(RemoteFileError, match="changed while being read"):
        drain(stream, got)
    assert len(got) < len(data)
    assert got == data[: len(got)]


def test_file_growing_mid_read_is_detected(shell: SshJumpbox, tmp_path: Path) -> None:
    """A file that grows while being read raises instead of returning a mixed stream."""
    path = tmp_path / "grows"
    random_file(path, 64 * MIB)
    stream = shell.open_read(str(path))
    read_some(stream, MIB)
    with path.open("ab") as more:
        more.write(b"x" * MIB)
    with pytest.raises(RemoteFileError, match=r"grew past|changed while being read"):
        read_all(stream)


def test_killed_reader_is_an_interruption_with_the_exact_offset(
    shell: SshJumpbox, tmp_path: Path
) -> None:
    """A remote reader killed mid-file raises TransferInterrupted; resuming at its offset on the
    same connection completes the file byte-exact."""
    path = tmp_path / "killed"
    data = random_file(path, 64 * MIB)
    stream = shell.open_read(str(path))
    got = bytearray(read_some(stream, MIB))
    kill_remote_dd(path)
    with pytest.raises(TransferInterrupted, match="remote reader killed") as info:
        drain(stream, got)
    assert info.value.offset == len(got) < len(data)
    got += read_all(shell.open_read(str(path), info.value.offset))
    assert got == data


def test_resumes_on_a_new_connection_after_the_session_is_killed(
    jumpbox: Jumpbox, tmp_path: Path
) -> None:
    """When the sshd session dies mid-read, the error carries the exact offset and a new
    connection resumes from it: the concatenated bytes equal the file."""
    path = tmp_path / "dropped"
    data = random_file(path, 64 * MIB)
    with connect(jumpbox) as first:
        stream = first.open_read(str(path))
        got = bytearray(read_some(stream, 2 * MIB))
        kill_session(path)
        with pytest.raises(TransferInterrupted, match="connection lost") as info:
            drain(stream, got)
    assert isinstance(info.value, SshError)
    assert info.value.offset == len(got) < len(data)
    with connect(jumpbox) as second:
        got += read_all(second.open_read(str(path), len(got)))
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_writes_a_file_byte_exact_with_its_mode_set_first(
    shell: SshJumpbox, tmp_path: Path
) -> None:
    """open_write creates the file with mode 0600 before any data, and close checks the size."""
    path = tmp_path / "restored.tar"
    data = os.urandom(20 * MIB + 5)
    stream = shell.open_write(str(path))
    stream.write(memoryview(data)[:1000])
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for start in range(1000, len(data), 3 * MIB):
        stream.write(data[start : start + 3 * MIB])
    stream.close()
    assert stream.written == len(data)
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_replaces_an_existing_file_with_the_requested_mode(
    shell: SshJumpbox, tmp_path: Path
) -> None:
    """Writing over an existing (longer, world-readable) file truncates it and sets the mode."""
    path = tmp_path / "again"
    path.write_bytes(b"old content that is longer")
    path.chmod(0o644)
    stream = shell.open_write(str(path), mode=0o640)
    stream.write(b"new")
    stream.close()
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_write_into_a_missing_directory_raises_naming_the_path(
    shell: SshJumpbox, tmp_path: Path
) -> None:
    """When the remote side cannot create the file, write/close raise RemoteFileError."""
    path = tmp_path / "no-such-dir" / "f"
    with pytest.raises(RemoteFileError) as info:
        write_and_close(shell, str(path), b"x" * MIB)
    assert str(path) in str(info.value)
    assert shell.host in str(info.value)
    assert "cannot create" in str(info.value) or "nonexistent" in str(info.value)


def test_lists_the_files_of_an_artifact_directory(shell: SshJumpbox, tmp_path: Path) -> None:
    """list_files returns (name, size) of every regular file, hidden ones too, sorted by name."""
    (tmp_path / "metadata").write_bytes(b"m" * 10)
    (tmp_path / "bosh-0-db.tar").write_bytes(b"t" * 3000)
    (tmp_path / ".hidden").write_bytes(b"")
    (tmp_path / "name with spaces").write_bytes(b"s")
    assert shell.list_files(str(tmp_path)) == [
        (".hidden", 0),
        ("bosh-0-db.tar", 3000),
        ("metadata", 10),
        ("name with spaces", 1),
    ]


def test_list_files_refuses_subdirectories_and_symlinks(shell: SshJumpbox, tmp_path: Path) -> None:
    """A subdirectory or a symlink in an artifact directory is an error naming it."""
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "sub").mkdir()
    with pytest.raises(RemoteFileError, match="sub: is a directory"):
        shell.list_files(str(tmp_path))
    (tmp_path / "sub").rmdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    with pytest.raises(RemoteFileError, match="link: is a symbolic link"):
        shell.list_files(str(tmp_path))


def test_list_files_of_a_missing_directory_names_it(shell: SshJumpbox, tmp_path: Path) -> None:
    """Listing a directory that does not exist raises RemoteFileError naming it."""
    with pytest.raises(RemoteFileError, match=str(tmp_path / "gone")):
        shell.list_files(str(tmp_path / "gone"))


def test_list_dirs_returns_subdirectories_only(shell: SshJumpbox, tmp_path: Path) -> None:
    """list_dirs returns the names of subdirectories (sorted), ignoring files."""
    (tmp_path / "2026-11-27T03-00-00Z").mkdir()
    (tmp_path / "1999").mkdir()
    (tmp_path / "file").write_bytes(b"")
    assert shell.list_dirs(str(tmp_path)) == ["1999", "2026-11-27T03-00-00Z"]


def test_sha256_is_computed_on_the_jumpbox(shell: SshJumpbox, tmp_path: Path) -> None:
    """sha256 matches hashlib; a missing file raises RemoteFileError naming it."""
    data = random_file(tmp_path / "f", MIB + 1)
    assert shell.sha256(str(tmp_path / "f")) == hashlib.sha256(data).hexdigest()
    with pytest.raises(RemoteFileError, match=str(tmp_path / "nope")):
        shell.sha256(str(tmp_path / "nope"))


def test_connection_is_tuned_for_bulk_transfer(shell: SshJumpbox) -> None:
    """AES-GCM is negotiated, and paramiko leaves rekeying to sshd (its own 512 MiB rekey
    deadlocks when it races a channel close)."""
    transport = shell.transport
    assert transport.remote_cipher == "aes128-gcm@openssh.com"  # type: ignore[attr-defined]
    assert transport.local_cipher == "aes128-gcm@openssh.com"
    assert transport.packetizer.REKEY_BYTES >= 2**37
