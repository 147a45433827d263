"""Client-side encryption of stored objects: round trips, tamper detection, key rotation."""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import random
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bbr_orchestrator.actions.session import Session
from bbr_orchestrator.actions.upload import StreamSettings, stream_file
from bbr_orchestrator.adapters.encryption import (
    EncryptingStore,
    EncryptionKeyUnavailable,
    Keyring,
    decode_key,
)
from bbr_orchestrator.adapters.encryption.format import (
    MAGIC,
    TAG,
    make_header,
    stored_size,
)
from bbr_orchestrator.adapters.encryption.writer import SealedBuffers
from bbr_orchestrator.config import Config, validate_data
from bbr_orchestrator.config.example import EXAMPLE
from bbr_orchestrator.errors import ArtifactCorrupt, ObjectNotFound, SecretError
from bbr_orchestrator.ports import StoredObject
from bbr_orchestrator.service import wiring
from tests.unit.fakes import MemoryFiles

CS = 4096
MiB = 1024 * 1024
"""A small chunk size, so that objects of a few chunks stay tiny."""
K1, K2 = os.urandom(32), os.urandom(32)
KEY = "bbr/cf/cf_20260101T000000Z/bosh-0-db.tar"


class _Stream:
    """Returns at most 7,000 bytes per read (so readers must loop)."""

    def __init__(self, data: bytes, offset: int) -> None:
        self.data, self.pos, self.closed = data, offset, False

    def readinto(self, buffer: memoryview) -> int:
        n = min(len(buffer), len(self.data) - self.pos, 7000)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n

    def close(self) -> None:
        self.closed = True


class _Upload:
    def __init__(self, bucket: Bucket, key: str) -> None:
        self.bucket, self.key = bucket, key
        self.parts: dict[int, bytes] = {}
        self.state = "open"
        self.lock = threading.Lock()

    def upload_part(self, number: int, data: memoryview | bytes) -> None:
        with self.lock:
            self.parts[number] = bytes(data)

    def complete(self) -> None:
        self.bucket.objects[self.key] = b"".join(self.parts[n] for n in sorted(self.parts))
        self.state = "completed"

    def abort(self) -> None:
        self.state = "aborted"


class Bucket:
    """The whole ObjectStore port in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: list[_Upload] = []

    def start_upload(self, key: str) -> _Upload:
        self.uploads.append(_Upload(self, key))
        return self.uploads[-1]

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = bytes(data)

    def open_read(self, key: str, offset: int = 0) -> _Stream:
        if key not in self.objects:
            raise ObjectNotFound("bucket", key, "NoSuchKey")
        return _Stream(self.objects[key], offset)

    def head(self, key: str) -> StoredObject | None:
        data = self.objects.get(key)
        return None if data is None else StoredObject(key, len(data))

    def list(self, prefix: str) -> Iterator[StoredObject]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield StoredObject(key, len(self.objects[key]))

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)

    def abort_incomplete_uploads(self, prefix: str) -> int:
        return 0


def ring() -> Keyring:
    return Keyring({"k1": K1, "k2": K2})


def encrypting(
    bucket: Bucket, key_id: str | None = "k1", keys: Keyring | None = None
) -> EncryptingStore:
    return EncryptingStore(bucket, keys or ring(), key_id, prefix="bbr", chunk_size=CS)


def read_all(store: EncryptingStore, key: str, offset: int = 0, buffer: int = 5000) -> bytes:
    stream, out = store.open_read(key, offset), bytearray()
    view = memoryview(bytearray(buffer))
    try:
        while n := stream.readinto(view):
            out += view[:n]
    finally:
        stream.close()
    return bytes(out)


def upload_parts(
    store: EncryptingStore, key: str, data: bytes, part: int, order: list[int]
) -> None:
    upload = store.start_upload(key)
    for number in order:
        upload.upload_part(number, memoryview(data)[(number - 1) * part : number * part])
    upload.complete()


SIZES = [0, 1, CS - 1, CS, CS + 1, 2 * CS, 3 * CS + 5, 7 * CS - 1]


@pytest.mark.parametrize("size", SIZES)
def test_put_round_trips_every_size_and_reports_the_plaintext_size(size: int) -> None:
    """Objects of 0 bytes, one chunk and around chunk boundaries come back byte-identical;
    head() reports the plaintext size; what is stored is header + chunks, not the plaintext."""
    bucket, data = Bucket(), os.urandom(size)
    store = encrypting(bucket)
    store.put(KEY, data)
    stored = bucket.objects[KEY]
    assert stored.startswith(MAGIC) and (size < 16 or data not in stored)
    assert len(stored) == stored_size(len(make_header("k1", bytes(32), CS).raw), size, CS)
    assert read_all(store, KEY) == data
    assert store.head(KEY) == StoredObject(KEY, size)


@pytest.mark.parametrize("size", [1, 2 * CS - 1, 2 * CS, 2 * CS + 1, 6 * CS, 6 * CS + 9, 5 * CS])
def test_multipart_round_trips_whatever_order_the_parts_arrive_in(size: int) -> None:
    """Parts of two chunks sent in order, last-first after part 1, and shuffled after part 1
    (one thread: later parts wait for part 1) all store the same plaintext (a last part of
    whole chunks gets its empty final chunk at complete)."""
    data, part = os.urandom(size), 2 * CS
    count = max(1, -(-size // part))
    orders = [list(range(1, count + 1)), [1, *range(count, 1, -1)]]
    shuffled = list(range(2, count + 1))
    random.Random(size).shuffle(shuffled)
    for order in [*orders, [1, *shuffled]]:
        bucket = Bucket()
        store = encrypting(bucket)
        upload_parts(store, KEY, data, part, order)
        assert read_all(store, KEY) == data, order
        assert store.head(KEY) == StoredObject(KEY, size)


def test_multipart_from_many_threads_round_trips() -> None:
    """Parts sent concurrently by eight threads (as the upload pipeline does) store the object
    exactly; a sealed part is held back only while it may be the last."""
    data, part = os.urandom(40 * 2 * CS), 2 * CS
    bucket = Bucket()
    store = encrypting(bucket)
    upload = store.start_upload(KEY)
    numbers = list(range(1, 41))
    random.Random(7).shuffle(numbers)
    numbers.remove(1)
    numbers.insert(3, 1)  # part 1 arrives after others: they wait for it

    def send(chunk: list[int]) -> None:
        for n in chunk:
            upload.upload_part(n, data[(n - 1) * part : n * part])

    threads = [threading.Thread(target=send, args=(numbers[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    upload.complete()
    assert read_all(store, KEY) == data


def test_reads_from_any_offset_return_the_rest_of_the_plaintext() -> None:
    """open_read(offset) starts at the chunk holding the byte: every offset (chunk boundaries,
    inside chunks, the very end) returns exactly data[offset:]; one read fills the buffer
    across chunks."""
    bucket, data = Bucket(), os.urandom(5 * CS + 777)
    store = encrypting(bucket)
    store.put(KEY, data)
    offsets = {0, 1, CS - 1, CS, CS + 1, 5 * CS, 5 * CS + 776, len(data)}
    offsets |= set(random.Random(3).sample(range(len(data)), 20))
    for offset in sorted(offsets):
        assert read_all(store, KEY, offset, buffer=3000) == data[offset:], offset
    stream, view = store.open_read(KEY, 5), memoryview(bytearray(3 * CS))
    assert stream.readinto(view) == 3 * CS and bytes(view) == data[5 : 5 + 3 * CS]


def test_the_manifest_and_objects_without_an_active_key_stay_plain() -> None:
    """manifest.json is never encrypted (commit marker, read by a catalog rebuild); without an
    active key nothing is; plain objects read back unchanged, from any offset."""
    bucket = Bucket()
    manifest_key = KEY.rsplit("/", 1)[0] + "/manifest.json"
    encrypting(bucket).put(manifest_key, b'{"format_version": 1}')
    assert bucket.objects[manifest_key] == b'{"format_version": 1}'
    plain = os.urandom(3 * CS)
    encrypting(bucket, None).put(KEY, plain)
    assert bucket.objects[KEY] == plain
    reader = encrypting(bucket, None)
    assert read_all(reader, KEY) == plain and read_all(reader, KEY, 1000) == plain[1000:]
    assert reader.head(KEY) == StoredObject(KEY, len(plain))
    assert read_all(reader, manifest_key) == b'{"format_version": 1}'


# --- tampering -------------------------------------------------------------------------------


def stored(size: int = 4 * CS + 100) -> tuple[Bucket, EncryptingStore, bytes, int]:
    bucket, data = Bucket(), os.urandom(size)
    store = encrypting(bucket)
    store.put(KEY, data)
    header = len(bucket.objects[KEY]) - stored_size(0, size, CS)
    return bucket, store, data, header


def refused(store: EncryptingStore, key: str = KEY) -> tuple[ArtifactCorrupt, bytes]:
    """The error reading ``key`` and the plaintext returned before it."""
    stream, out = store.open_read(key), bytearray()
    view = memoryview(bytearray(1000))

    def drain() -> None:
        while n := stream.readinto(view):
            out.extend(view[:n])

    with pytest.raises(ArtifactCorrupt) as caught:
        drain()
    return caught.value, bytes(out)


def test_a_flipped_ciphertext_byte_is_refused_before_any_byte_of_its_chunk() -> None:
    """One flipped bit in chunk 2: chunks 0 and 1 are returned (by small reads, or by one big
    read), then an error naming the object and the chunk; no byte of chunk 2 is returned."""
    bucket, store, data, header = stored()
    raw = bytearray(bucket.objects[KEY])
    raw[header + 2 * (CS + TAG) + 100] ^= 0x01
    bucket.objects[KEY] = bytes(raw)
    error, got = refused(store)
    assert got == data[: 2 * CS]
    assert error.file == KEY and "chunk 2" in error.reason and "authentication" in error.reason
    stream, view = store.open_read(KEY), memoryview(bytearray(len(data)))
    assert stream.readinto(view) == 2 * CS, "one big read: the good chunks, then the fault"
    with pytest.raises(ArtifactCorrupt, match="chunk 2"):
        stream.readinto(view)


def test_swapped_chunks_are_refused() -> None:
    """Chunks 1 and 2 swapped (each intact): chunk 1's place fails authentication."""
    bucket, store, data, header = stored()
    raw = bucket.objects[KEY]
    one = slice(header + CS + TAG, header + 2 * (CS + TAG))
    two = slice(header + 2 * (CS + TAG), header + 3 * (CS + TAG))
    bucket.objects[KEY] = raw[: one.start] + raw[two] + raw[one] + raw[two.stop :]
    error, got = refused(store)
    assert got == data[:CS] and "chunk 1" in error.reason


def test_an_object_cut_inside_a_chunk_is_refused_and_its_size_differs() -> None:
    """Truncated inside the last chunk: head() no longer reports the manifest's size, and
    reading fails at that chunk."""
    bucket, store, data, _ = stored()
    bucket.objects[KEY] = bucket.objects[KEY][:-50]
    found = store.head(KEY)
    assert found is not None and found.size != len(data)
    error, _ = refused(store)
    assert error.file == KEY and "chunk 4" in error.reason


def test_a_dropped_final_chunk_is_refused_even_when_the_size_still_matches() -> None:
    """An object of whole chunks ends with an empty final chunk; dropped, the size arithmetic
    still gives the plaintext size, but the read ends on a non-final chunk: refused."""
    bucket, store, data, _ = stored(3 * CS)
    bucket.objects[KEY] = bucket.objects[KEY][:-TAG]
    assert store.head(KEY) == StoredObject(KEY, len(data))
    error, got = refused(store)
    assert got == data and "without its final chunk" in error.reason


def test_a_dropped_last_chunk_is_refused() -> None:
    """The short last chunk removed: the object ends on a full chunk that is not final."""
    bucket, store, _, _ = stored(3 * CS + 10)
    bucket.objects[KEY] = bucket.objects[KEY][: -(10 + TAG)]
    error, _ = refused(store)
    assert "truncated" in error.reason


def test_bytes_appended_after_the_final_chunk_are_refused() -> None:
    """Bytes appended after the final chunk (a few, or a whole chunk): the final chunk then
    reads longer than it was sealed and fails authentication."""
    for extra in (5, CS + TAG):
        bucket, store, data, _ = stored(2 * CS + 1)
        bucket.objects[KEY] += os.urandom(extra)
        error, got = refused(store)
        assert got == data[: 2 * CS] and "chunk 2" in error.reason


def test_an_object_copied_under_another_key_is_refused() -> None:
    """An intact encrypted object copied to another key (another backup's tar, say) does not
    authenticate there: the error names the key it was read under."""
    bucket, store, _, _ = stored()
    other = KEY.replace("bosh-0-db.tar", "bosh-0-blobstore.tar")
    bucket.objects[other] = bucket.objects[KEY]
    error, got = refused(store, other)
    assert got == b"" and error.file == other and "chunk 0" in error.reason


def test_a_header_naming_another_known_key_is_refused() -> None:
    """The header's key id changed from k1 to k2 (same length): chunk 0 fails with k2."""
    bucket, store, _, _ = stored()
    bucket.objects[KEY] = bucket.objects[KEY].replace(b"k1", b"k2", 1)
    error, _ = refused(store)
    assert "chunk 0" in error.reason


def test_an_unsupported_format_version_is_named() -> None:
    """A header of a future format version: refused, saying which version."""
    bucket, store, _, _ = stored()
    raw = bytearray(bucket.objects[KEY])
    raw[len(MAGIC)] = 2
    bucket.objects[KEY] = bytes(raw)
    with pytest.raises(ArtifactCorrupt, match="version 2 is not supported"):
        store.open_read(KEY)


# --- keys ------------------------------------------------------------------------------------


def test_after_key_rotation_old_objects_stay_readable() -> None:
    """Objects written under k1, then the active key switched to k2: a reader with both keys
    (and no active key) reads both; each header names its own key."""
    bucket = Bucket()
    old, new = os.urandom(2 * CS + 3), os.urandom(CS + 9)
    encrypting(bucket, "k1").put(KEY, old)
    encrypting(bucket, "k2").put(KEY + ".new", new)
    assert b"k1" in bucket.objects[KEY][:20] and b"k2" in bucket.objects[KEY + ".new"][:20]
    reader = encrypting(bucket, None)
    assert read_all(reader, KEY) == old and read_all(reader, KEY + ".new") == new


def test_a_key_missing_from_the_keyring_is_named_with_the_object() -> None:
    """Reading an object of a key the keyring lacks: the error names the key id and the
    object, and says old keys must stay configured."""
    bucket = Bucket()
    encrypting(bucket, "k1").put(KEY, b"x" * 100)
    reader = EncryptingStore(bucket, Keyring({"k2": K2}), None, prefix="bbr")
    with pytest.raises(EncryptionKeyUnavailable) as caught:
        reader.open_read(KEY)
    assert caught.value.key_id == "k1" and KEY in str(caught.value)
    assert "not in the keyring" in str(caught.value) and "'k2'" in str(caught.value)
    assert reader.head(KEY) == StoredObject(KEY, 100), "the size needs no key"


def test_an_unloadable_active_key_fails_before_anything_is_written() -> None:
    """An active key whose secret cannot be read fails when the store is built, naming the
    key and the secret reference (never a value)."""

    def missing() -> bytes:
        raise SecretError("env:BACKUP_KEY", "environment variable is not set")

    with pytest.raises(EncryptionKeyUnavailable) as caught:
        EncryptingStore(Bucket(), Keyring({"k3": missing}), "k3")
    assert "'k3'" in str(caught.value) and "env:BACKUP_KEY" in str(caught.value)
    assert "new backups" in str(caught.value)


def test_keys_are_loaded_once_and_never_shown() -> None:
    """A key is loaded on first use only and cached; repr shows ids, not key bytes."""
    calls: list[int] = []

    def load() -> bytes:
        calls.append(1)
        return K1

    keys = Keyring({"k1": load, "k2": K2})
    assert keys.key("k1", "x") == K1 == keys.key("k1", "y") and calls == [1]
    assert repr(keys) == "Keyring(ids=['k1', 'k2'])" and K2.hex() not in repr(keys)


def test_a_key_secret_must_be_base64_of_32_bytes() -> None:
    """decode_key takes base64 of 32 bytes (newline tolerated); anything else is a
    SecretError naming the reference but not the value."""
    assert decode_key(base64.b64encode(K1).decode() + "\n", "file:/k") == K1
    for bad in ("not base64!", base64.b64encode(os.urandom(16)).decode()):
        with pytest.raises(SecretError) as caught:
            decode_key(bad, "credential:backup_key")
        assert "credential:backup_key" in str(caught.value) and bad not in str(caught.value)


# --- the upload contract ---------------------------------------------------------------------


def test_parts_that_break_the_chunk_contract_are_refused() -> None:
    """A first part that is not whole chunks followed by more, a part larger than part 1, a
    short part before a higher one, or a part after the short last one: ValueError (the
    pipeline aborts the upload)."""
    store = encrypting(Bucket())
    upload = store.start_upload(KEY)
    upload.upload_part(1, os.urandom(CS + 1))
    with pytest.raises(ValueError, match="part 1 is not whole"):
        upload.upload_part(2, os.urandom(CS))
    upload = store.start_upload(KEY)
    upload.upload_part(1, os.urandom(2 * CS))
    with pytest.raises(ValueError, match="larger than part 1"):
        upload.upload_part(2, os.urandom(3 * CS))
    upload.upload_part(3, os.urandom(2 * CS))
    with pytest.raises(ValueError, match="not the last part"):
        upload.upload_part(2, os.urandom(CS + 5))
    upload = store.start_upload(KEY)
    upload.upload_part(1, os.urandom(2 * CS))
    upload.upload_part(2, os.urandom(CS))
    with pytest.raises(ValueError, match="after the last part"):
        upload.upload_part(3, os.urandom(CS))


def test_abort_discards_a_held_first_part() -> None:
    """A small first part is held back (it may be the only one); aborting aborts the inner
    upload without ever sending it."""
    bucket = Bucket()
    upload = encrypting(bucket).start_upload(KEY)
    upload.upload_part(1, os.urandom(2 * CS))
    upload.abort()
    assert bucket.uploads[-1].state == "aborted" and bucket.uploads[-1].parts == {}
    assert KEY not in bucket.objects


@pytest.mark.parametrize("size", [23 * MiB + 12_345, 20 * MiB, 5 * MiB])
def test_the_upload_pipeline_stores_encrypted_parts_with_plaintext_checksums(size: int) -> None:
    """stream_file (4 parts in flight, 5 MiB parts) through the encrypting store: the manifest
    entry's size and SHA-256 are the plaintext's, every stored part but the last is at least
    5 MiB (a file of whole parts gets a 16-byte last part: its final chunk), and the object
    decrypts to the file."""
    data = os.urandom(size)
    bucket = Bucket()
    store = EncryptingStore(bucket, ring(), "k1", prefix="bbr")
    files = MemoryFiles({"/w/a/big.bin": data})
    entry = stream_file(
        Session(files, lambda: files),
        store,
        path="/w/a/big.bin",
        name="big.bin",
        size=len(data),
        key="bbr/t/a/big.bin",
        tar_checksums=None,
        settings=StreamSettings(parts_in_flight=4, min_part_size=5 * MiB),
    )
    assert entry.size == len(data) and entry.sha256 == hashlib.sha256(data).hexdigest()
    parts = [len(p) for _, p in sorted(bucket.uploads[-1].parts.items())]
    assert min(parts[:-1]) >= 5 * MiB and (parts[-1] == TAG) == (size % (5 * MiB) == 0)
    assert bucket.objects["bbr/t/a/big.bin"] != data
    assert read_all(store, "bbr/t/a/big.bin", buffer=MiB) == data


# --- wiring ----------------------------------------------------------------------------------


def config_with_keys(tmp_path: Path, plans: list[dict[str, Any]]) -> Config:
    data = copy.deepcopy(EXAMPLE)
    keys = []
    for key_id, key in (("old", K1), ("new", K2)):
        path = tmp_path / key_id
        path.write_text(base64.b64encode(key).decode() + "\n")
        keys.append({"id": key_id, "key": {"file": str(path)}})
    keys.append({"id": "lost", "key": {"file": str(tmp_path / "missing")}})
    data["encryption"] = {"keys": keys}
    base = data["plans"][0]
    data["plans"] = [{**base, **plan, "drills": []} for plan in plans]
    return validate_data(data)


def test_the_active_key_is_the_plans_or_the_first_plan_listing_the_target(tmp_path: Path) -> None:
    """A plan's backups use its key; an operator backup of a target uses the key of the first
    plan listing it; a target in no encrypting plan, or no plan, is not encrypted."""
    config = config_with_keys(
        tmp_path,
        [
            {"name": "a", "targets": ["cf"], "encryption_key": "new"},
            {"name": "b", "targets": ["cf", "bosh-director"], "encryption_key": "old"},
            {"name": "c", "targets": ["sandbox-director"], "encryption_key": None},
        ],
    )
    assert wiring.encryption_key_id(config, plan="b") == "old"
    assert wiring.encryption_key_id(config, target="cf") == "new"
    assert wiring.encryption_key_id(config, target="bosh-director") == "old"
    assert wiring.encryption_key_id(config, target="sandbox-director") is None
    assert wiring.encryption_key_id(config) is None


def test_wired_storage_encrypts_with_the_plan_key_and_reads_with_every_key(
    tmp_path: Path,
) -> None:
    """storage(plan=...) records the key id for the manifest and its store encrypts with it;
    its keyring reads objects of the old key too; a key whose secret is gone fails when a
    backup would need it, naming the key and the reference."""
    config = config_with_keys(
        tmp_path,
        [
            {"name": "a", "targets": ["cf"], "encryption_key": "new"},
            {"name": "b", "targets": ["bosh-director"], "encryption_key": "lost"},
        ],
    )
    built = wiring.storage(config, plan="a")
    assert built.encryption_key_id == "new"
    assert isinstance(built.store, EncryptingStore) and built.store.active_key_id == "new"
    assert wiring.keyring(config).key("old", "test") == K1
    assert wiring.storage(config).encryption_key_id is None
    with pytest.raises(EncryptionKeyUnavailable) as caught:
        wiring.storage(config, target="bosh-director")
    assert "'lost'" in str(caught.value) and str(tmp_path / "missing") in str(caught.value)


def test_sealed_buffers_bound_the_copies_in_flight_and_are_reused() -> None:
    """At most `limit` sealed parts exist at once, however many threads upload; buffers are
    handed out again (not reallocated) once given back."""
    pool = SealedBuffers(limit=2)
    in_use, peak, lock = [0], [0], threading.Lock()
    seen: set[int] = set()

    def part() -> None:
        buffer = pool.take(1024)
        with lock:
            in_use[0] += 1
            peak[0] = max(peak[0], in_use[0])
            seen.add(id(buffer))
        threading.Event().wait(0.01)
        with lock:
            in_use[0] -= 1
        pool.give(buffer)

    threads = [threading.Thread(target=part) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2
    assert len(seen) <= 3  # the two slots' buffers, reused (one may be replaced once)


def test_held_first_parts_give_their_buffer_back() -> None:
    """Small single-part objects (held back, then completed or aborted) return their sealed
    buffer: a store's later uploads never wait for a slot that leaked."""
    bucket = Bucket()
    store = encrypting(bucket)
    done = threading.Event()

    def uploads() -> None:
        for i in range(6):
            upload = store.start_upload(f"{KEY}.{i}")
            upload.upload_part(1, os.urandom(2 * CS))
            if i % 2:
                upload.abort()
            else:
                upload.complete()
        done.set()

    threading.Thread(target=uploads, daemon=True).start()
    assert done.wait(10.0), "a sealed-buffer slot leaked"
    assert sorted(bucket.objects) == [f"{KEY}.0", f"{KEY}.2", f"{KEY}.4"]


def test_a_part_ranked_before_every_holder_does_not_wait_for_a_slot() -> None:
    """With both slots held by later parts, an earlier part gets a buffer beyond the limit;
    a part ranked after a holder waits until fewer than `limit` are held."""
    pool = SealedBuffers(limit=2)
    held = [pool.take(64, (0, 3)), pool.take(64, (0, 4))]
    early = pool.take(64, (0, 2))  # would wait for ever at a store taking parts in order
    late: list[bytearray] = []
    waiter = threading.Thread(target=lambda: late.append(pool.take(64, (0, 5))), daemon=True)
    waiter.start()
    waiter.join(0.2)
    assert all(early is not b for b in held) and late == []
    pool.give(held[0])  # two still held: the limit holds again for later parts
    waiter.join(0.2)
    assert late == []
    pool.give(early)
    waiter.join(5.0)
    assert len(late) == 1


def test_a_slot_given_back_goes_to_the_earliest_part_waiting() -> None:
    """Parts 4 and 3 wait (in that order) for a slot; the one given back goes to part 3."""
    pool = SealedBuffers(limit=2)
    held = [pool.take(64, (0, 1)), pool.take(64, (0, 2))]
    got: dict[int, bytearray] = {}

    def wait_for_slot(number: int) -> threading.Thread:
        def take() -> None:
            got[number] = pool.take(64, (0, number))

        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        thread.join(0.2)
        return thread

    fourth, third = wait_for_slot(4), wait_for_slot(3)
    assert got == {}
    pool.give(held[0])
    third.join(5.0)
    fourth.join(0.2)
    assert sorted(got) == [3]
    pool.give(held[1])
    fourth.join(5.0)
    assert sorted(got) == [3, 4]


class _InOrderUpload(_Upload):
    """A store that takes part n only once part n - 1 is stored, as ``rclone serve s3`` does."""

    def __init__(self, bucket: Bucket, key: str) -> None:
        super().__init__(bucket, key)
        self.turn = threading.Condition()
        self.arrived: set[int] = set()

    def upload_part(self, number: int, data: memoryview | bytes) -> None:
        with self.turn:
            self.arrived.add(number)
            self.turn.notify_all()
            self.turn.wait_for(lambda: all(n in self.parts for n in range(1, number)))
            self.parts[number] = bytes(data)
            self.turn.notify_all()


class _InOrderBucket(Bucket):
    def start_upload(self, key: str) -> _Upload:
        self.uploads.append(_InOrderUpload(self, key))
        return self.uploads[-1]


def test_parts_sent_out_of_order_reach_a_store_that_takes_them_in_order() -> None:
    """Parts 3 and 4 take both sealed slots and wait at an in-order store for part 2; part 2
    still gets a buffer, so the upload completes instead of hanging."""
    part = 5 * MiB  # not held back: every part goes up at once
    data = os.urandom(4 * part)
    bucket = _InOrderBucket()
    store = encrypting(bucket)
    upload = store.start_upload(KEY)
    inner = bucket.uploads[-1]
    assert isinstance(inner, _InOrderUpload)

    def send(n: int) -> threading.Thread:
        chunk = data[(n - 1) * part : n * part]
        thread = threading.Thread(target=upload.upload_part, args=(n, chunk), daemon=True)
        thread.start()
        return thread

    upload.upload_part(1, data[:part])
    threads = [send(3), send(4)]
    with inner.turn:
        assert inner.turn.wait_for(lambda: {3, 4} <= inner.arrived, timeout=10.0)
    threads.append(send(2))
    for thread in threads:
        thread.join(10.0)
    assert not any(thread.is_alive() for thread in threads), "the upload hung"
    upload.complete()
    assert read_all(store, KEY) == data
