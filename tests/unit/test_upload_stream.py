"""Streaming one artifact file to the object store: verified, resumable, aborted on failure."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from bbr_orchestrator.actions.session import Session
from bbr_orchestrator.actions.upload import PartBuffers, StreamSettings, stream_file
from bbr_orchestrator.errors import (
    ArtifactCorrupt,
    StorageUnavailable,
    TransferInterrupted,
    TruncatedFile,
)
from tests.unit.fakes import MemoryFiles, MemoryStore

MiB = 1024 * 1024
PART = 5 * MiB
FAST = StreamSettings(parts_in_flight=2, min_part_size=PART, retry_backoff=0.0)


def make_tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


MEMBERS = {"./dump.sql": os.urandom(11 * MiB + 17), "./blobs/aa/blob1": os.urandom(900_000)}
TAR = make_tar(MEMBERS)
CHECKSUMS = {name: hashlib.sha256(data).hexdigest() for name, data in MEMBERS.items()}


def upload(
    files: MemoryFiles,
    store: MemoryStore,
    data_name: str = "bosh-0-fake-db.tar",
    checksums: dict[str, str] | None = CHECKSUMS,
    size: int | None = None,
    settings: StreamSettings = FAST,
):
    data = files.files["/w/a/" + data_name]
    return stream_file(
        Session(files, lambda: files),
        store,
        path="/w/a/" + data_name,
        name=data_name,
        size=len(data) if size is None else size,
        key="bbr/t/a/" + data_name,
        tar_checksums=checksums,
        settings=settings,
    )


def test_multipart_tar_upload_is_byte_exact_and_verified() -> None:
    """A tar bigger than the part size arrives byte-exact, with its SHA-256 and member count."""
    files, store = MemoryFiles({"/w/a/bosh-0-fake-db.tar": TAR}), MemoryStore()
    stored = upload(files, store)
    assert store.objects["bbr/t/a/bosh-0-fake-db.tar"] == TAR
    assert stored.sha256 == hashlib.sha256(TAR).hexdigest()
    assert (stored.size, stored.member_checksums) == (len(TAR), 2)
    assert store.part_calls == -(-len(TAR) // PART)


def test_parts_in_flight_are_bounded() -> None:
    """No more parts are uploaded at once than configured (memory bound: in-flight + 1 buffers)."""
    files, store = MemoryFiles({"/w/a/big.bin": os.urandom(26 * MiB)}), MemoryStore()
    upload(files, store, "big.bin", checksums=None)
    assert 1 <= store.max_in_flight <= FAST.parts_in_flight


def test_corrupt_member_fails_naming_file_and_member_and_aborts() -> None:
    """A member whose content differs from bbr's checksum fails the upload and aborts it."""
    corrupt = bytearray(TAR)
    corrupt[TAR.index(MEMBERS["./dump.sql"][:64]) + 1000] ^= 0xFF
    files, store = MemoryFiles({"/w/a/bosh-0-fake-db.tar": bytes(corrupt)}), MemoryStore()
    with pytest.raises(ArtifactCorrupt) as info:
        upload(files, store)
    assert "bosh-0-fake-db.tar" in str(info.value) and "./dump.sql" in str(info.value)
    assert store.open_uploads() == [] and store.objects == {}
    assert store.uploads[0].state == "aborted"


def test_ssh_drop_resumes_at_the_offset_without_resending_parts() -> None:
    """A connection dropped mid-file reopens at the exact byte offset; no part is sent twice."""
    drop = 7 * MiB + 12345
    files, store = MemoryFiles({"/w/a/bosh-0-fake-db.tar": TAR}, drops=[drop]), MemoryStore()
    upload(files, store)
    assert files.opened == [("/w/a/bosh-0-fake-db.tar", 0), ("/w/a/bosh-0-fake-db.tar", drop)]
    assert store.objects["bbr/t/a/bosh-0-fake-db.tar"] == TAR
    assert store.part_calls == -(-len(TAR) // PART)


def test_too_many_drops_fail_and_abort() -> None:
    """A connection that keeps dropping gives up after the configured attempts and aborts."""
    drops = [MiB * i for i in range(1, 9)]
    files, store = MemoryFiles({"/w/a/bosh-0-fake-db.tar": TAR}, drops=drops), MemoryStore()
    with pytest.raises(TransferInterrupted):
        upload(files, store)
    assert store.open_uploads() == []


def test_file_shorter_than_listed_is_truncated() -> None:
    """A file that ends before its listed size fails (no silent short object) and aborts."""
    files, store = MemoryFiles({"/w/a/big.bin": os.urandom(8 * MiB)}), MemoryStore()
    with pytest.raises(TruncatedFile, match="ended after"):
        upload(files, store, "big.bin", checksums=None, size=12 * MiB)
    assert store.open_uploads() == [] and store.objects == {}


def test_file_longer_than_listed_is_an_error() -> None:
    """A file that grew since it was listed is refused rather than cut silently."""
    files, store = MemoryFiles({"/w/a/big.bin": os.urandom(8 * MiB)}), MemoryStore()
    with pytest.raises(TruncatedFile):
        upload(files, store, "big.bin", checksums=None, size=6 * MiB)


def test_failed_part_aborts_the_upload() -> None:
    """A part that cannot be stored (after the store's own retries) fails the file and aborts."""
    files, store = MemoryFiles({"/w/a/big.bin": os.urandom(16 * MiB)}), MemoryStore(fail_part=3)
    with pytest.raises(StorageUnavailable):
        upload(files, store, "big.bin", checksums=None)
    assert store.uploads[0].state == "aborted"


def test_small_file_is_one_put_and_verified() -> None:
    """A file under the part size is one PUT; a small tar is still verified member by member."""
    small = make_tar({"./x": b"hello"})
    files, store = MemoryFiles({"/w/a/s.tar": small}), MemoryStore()
    stored = upload(files, store, "s.tar", checksums={"./x": hashlib.sha256(b"hello").hexdigest()})
    assert store.objects["bbr/t/a/s.tar"] == small and store.uploads == []
    assert stored.member_checksums == 1


def test_part_buffers_are_allocated_once_per_part_size() -> None:
    """The files of one artifact reuse the same parts_in_flight + 1 buffers; a file needing
    another part size gets new ones and the old are dropped."""
    buffers = PartBuffers(FAST)
    first = buffers.of_size(PART)
    held = [first.get_nowait() for _ in range(FAST.parts_in_flight + 1)]
    assert first.empty() and all(len(b) == PART for b in held)
    for b in held:
        first.put(b)
    assert buffers.of_size(PART) is first
    bigger = buffers.of_size(2 * PART)
    assert bigger is not first and len(bigger.get_nowait()) == 2 * PART
