"""Fetching a stored backup onto the jumpbox: byte-exact, verified, removed when it is not."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
from datetime import UTC, datetime

import pytest
import yaml

from bbr_orchestrator.actions.fetch_artifact import FetchSettings, fetch_artifact
from bbr_orchestrator.core.bbr_metadata import MetadataSummary
from bbr_orchestrator.core.layout import (
    Manifest,
    ManifestObject,
    manifest_json,
    manifest_key,
    object_key,
)
from bbr_orchestrator.core.models import TargetKind
from bbr_orchestrator.errors import (
    ArtifactCorrupt,
    BackupIncomplete,
    RemoteFileError,
    StorageUnavailable,
    TransferInterrupted,
)
from tests.unit.fetch_fakes import FakeJumpbox, FakeReadStore, SecondConnection

KiB = 1024
TARGET, DIR = "director-10.0.0.6", "10.0.0.6_20261127T035353Z"
WORKDIR = "/var/vcap/restore/run-1"
ARTIFACT = f"{WORKDIR}/{DIR}"
MANIFEST_KEY = manifest_key("bbr", TARGET, DIR)
TAR_NAME = "bosh-0-fake-db.tar"
TAR_KEY = object_key("bbr", TARGET, DIR, TAR_NAME)
FAST = FetchSettings(buffer_size=64 * KiB, retry_backoff=0.0)


def make_tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


MEMBERS = {"./dump.sql": os.urandom(700 * KiB + 13), "./blobs/blob1": os.urandom(90_000)}
TAR = make_tar(MEMBERS)


def metadata(members: dict[str, bytes]) -> bytes:
    checksums = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    doc = {
        "instances": [
            {
                "name": "bosh",
                "index": "0",
                "artifacts": [{"name": "fake-db", "checksums": checksums}],
            }
        ],
        "backup_activity": {"start_time": "2026/11/27 03:53:53 UTC"},
    }
    return yaml.safe_dump(doc).encode()


def entry(name: str, data: bytes) -> ManifestObject:
    key = object_key("bbr", TARGET, DIR, name)
    members = len(MEMBERS) if name.endswith(".tar") else 0
    return ManifestObject(name, key, len(data), hashlib.sha256(data).hexdigest(), members)


def stored_backup(files: dict[str, bytes] | None = None, **changes: object) -> FakeReadStore:
    """A committed backup in a fake store: the objects plus a manifest listing them."""
    files = files or {
        TAR_NAME: TAR,
        "metadata": metadata(MEMBERS),
        "manifest.yml": b"name: cf\n",
    }
    manifest = Manifest(
        run_id="run-0",
        target=TARGET,
        target_kind=TargetKind.DIRECTOR,
        bbr_version="1.9.79",
        artifact_dir=DIR,
        objects=tuple(entry(name, data) for name, data in sorted(files.items())),
        metadata=MetadataSummary(1, 1, 0, ("fake-db",), 2),
        started_at=datetime(2026, 11, 27, 3, 53, 53, tzinfo=UTC),
        finished_at=datetime(2026, 11, 27, 3, 59, 7, tzinfo=UTC),
        orchestrator_version="test",
    )
    manifest = dataclasses.replace(manifest, **changes)  # type: ignore[arg-type]
    store = FakeReadStore({o.key: files[o.name] for o in manifest.objects})
    store.put(MANIFEST_KEY, manifest_json(manifest))
    return store


def fetch(box: FakeJumpbox, store: FakeReadStore, settings: FetchSettings = FAST) -> object:
    return fetch_artifact(
        box, lambda: box, store, manifest_key=MANIFEST_KEY, workdir=WORKDIR, settings=settings
    )


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def assert_removed(box: FakeJumpbox) -> None:
    assert ("rm", "-rf", ARTIFACT) in box.calls
    assert ARTIFACT not in box.dirs and box.under(ARTIFACT + "/") == {}


def test_fetch_is_byte_exact_0600_in_a_0700_directory_with_bounded_reads() -> None:
    """Every object lands byte-exact as a 0600 file in {workdir}/{artifact_dir} (0700), read
    through the one fixed-size buffer, metadata first."""
    box, store = FakeJumpbox(), stored_backup()
    fetched = fetch_artifact(
        box, lambda: box, store, manifest_key=MANIFEST_KEY, workdir=WORKDIR + "/", settings=FAST
    )
    assert (fetched.name, fetched.path) == (DIR, ARTIFACT)
    assert {o.name for o in fetched.manifest.objects} == {TAR_NAME, "metadata", "manifest.yml"}
    expected = {o.name: store.objects[o.key] for o in fetched.manifest.objects}
    assert box.under(ARTIFACT + "/") == expected
    assert box.calls[0] == ("mkdir", "-p", "-m", "0700", ARTIFACT)
    assert box.dirs[ARTIFACT] == 0o700
    assert {box.modes[f"{ARTIFACT}/{n}"] for n in expected} == {0o600}
    assert box.writers[0].path == f"{ARTIFACT}/metadata"
    assert all(w.state == "closed" for w in box.writers)
    assert max(store.buffer_sizes) <= FAST.buffer_size
    assert ("rm", "-rf", ARTIFACT) not in box.calls


def test_tampered_object_is_refused_naming_its_key_and_the_directory_removed() -> None:
    """A stored object whose bytes no longer match the manifest's SHA-256 is refused, naming
    the object key; nothing of the artifact stays on the jumpbox."""
    box, store = FakeJumpbox(), stored_backup()
    key = object_key("bbr", TARGET, DIR, "manifest.yml")
    store.objects[key] = flip(store.objects[key], 3)
    with pytest.raises(ArtifactCorrupt, match="SHA-256") as caught:
        fetch(box, store)
    assert (caught.value.file, caught.value.member) == (key, None)
    assert_removed(box)


def test_tampered_tar_member_is_refused_naming_the_member() -> None:
    """A tar whose member content differs from bbr's metadata is refused naming key and
    member, even when the manifest's own SHA-256 was made to match the tampered tar."""
    tampered = flip(TAR, TAR.index(MEMBERS["./dump.sql"][:64]) + 1000)
    files = {TAR_NAME: tampered, "metadata": metadata(MEMBERS)}
    box, store = FakeJumpbox(), stored_backup(files)
    with pytest.raises(ArtifactCorrupt) as caught:
        fetch(box, store)
    assert (caught.value.file, caught.value.member) == (TAR_KEY, "./dump.sql")
    assert_removed(box)
    assert next(w for w in box.writers if w.path.endswith(".tar")).state == "aborted"


def test_size_differing_from_the_manifest_is_refused_before_the_jumpbox_is_touched() -> None:
    """An object whose stored size differs from the manifest is refused up front (no mkdir)."""
    box, store = FakeJumpbox(), stored_backup()
    store.objects[TAR_KEY] += b"\0" * 512
    with pytest.raises(ArtifactCorrupt, match="the store holds") as caught:
        fetch(box, store)
    assert caught.value.file == TAR_KEY
    assert box.calls == []


@pytest.mark.parametrize("served", [TAR[:-512], TAR + b"\0" * 512], ids=["short", "long"])
def test_size_changing_while_streamed_is_refused(served: bytes) -> None:
    """An object that streams shorter or longer than the manifest's size is refused and the
    directory removed (the store changed between HEAD and GET)."""
    box, store = FakeJumpbox(), stored_backup()
    store.served[TAR_KEY] = served
    with pytest.raises(ArtifactCorrupt, match="bytes") as caught:
        fetch(box, store)
    assert caught.value.file == TAR_KEY
    assert_removed(box)


def test_missing_manifest_is_an_incomplete_backup_naming_the_key() -> None:
    """No manifest.json: 'incomplete backup: no manifest' naming the key; jumpbox untouched."""
    box, store = FakeJumpbox(), stored_backup()
    del store.objects[MANIFEST_KEY]
    with pytest.raises(BackupIncomplete, match="incomplete backup: no manifest") as caught:
        fetch(box, store)
    assert caught.value.key == MANIFEST_KEY and MANIFEST_KEY in str(caught.value)
    assert box.calls == []


def test_object_missing_from_the_store_is_refused_naming_its_key() -> None:
    """A manifest listing an object the store lacks is refused, naming that key, before the
    jumpbox is touched."""
    box, store = FakeJumpbox(), stored_backup()
    del store.objects[TAR_KEY]
    with pytest.raises(BackupIncomplete, match="missing from the store") as caught:
        fetch(box, store)
    assert caught.value.key == TAR_KEY
    assert box.calls == []


def test_tampered_metadata_is_refused_before_the_jumpbox_is_touched() -> None:
    """bbr's metadata not matching the manifest's SHA-256 is refused before any mkdir."""
    box, store = FakeJumpbox(), stored_backup()
    key = object_key("bbr", TARGET, DIR, "metadata")
    store.objects[key] = flip(store.objects[key], 5)
    with pytest.raises(ArtifactCorrupt, match="SHA-256") as caught:
        fetch(box, store)
    assert caught.value.file == key and box.calls == []


def test_tar_listed_in_metadata_but_not_stored_is_refused() -> None:
    """A manifest without a tar that bbr's metadata lists is refused, naming the tar."""
    box, store = FakeJumpbox(), stored_backup({"metadata": metadata(MEMBERS)})
    with pytest.raises(ArtifactCorrupt, match="not stored") as caught:
        fetch(box, store)
    assert caught.value.member == TAR_NAME and box.calls == []


@pytest.mark.parametrize("artifact_dir", ["..", "other_20261127T035353Z"])
def test_manifest_pointing_outside_its_own_directory_is_refused(artifact_dir: str) -> None:
    """An artifact directory that is not the manifest key's own folder (``..`` included) is
    refused before anything is created or removed on the jumpbox."""
    box, store = FakeJumpbox(), stored_backup(artifact_dir=artifact_dir)
    with pytest.raises(ArtifactCorrupt, match="does not match the key"):
        fetch(box, store)
    assert box.calls == []


def test_interrupted_write_is_rewritten_from_byte_zero() -> None:
    """A broken SSH write restarts the file from byte 0 on a new connection (closed at the
    end): a new writer, a new GET from offset 0, and the result is byte-exact."""
    box = FakeJumpbox(write_failures=[10**9, 300 * KiB])  # metadata fine, the tar breaks once
    store = stored_backup()
    connects: list[SecondConnection] = []

    def connect() -> SecondConnection:
        connects.append(SecondConnection(box))
        return connects[-1]

    fetched = fetch_artifact(
        box, connect, store, manifest_key=MANIFEST_KEY, workdir=WORKDIR, settings=FAST
    )
    assert box.under(fetched.path + "/")[TAR_NAME] == TAR
    tar_writers = [w.state for w in box.writers if w.path.endswith(".tar")]
    assert tar_writers == ["broken", "closed"]
    assert [r for r in store.reads if r[0] == TAR_KEY] == [(TAR_KEY, 0), (TAR_KEY, 0)]
    assert [c.closed for c in connects] == [1]


def test_write_interrupted_every_time_gives_up_and_removes_the_directory() -> None:
    """Writes are retried a bounded number of times; then the error stands, directory gone."""
    box = FakeJumpbox(write_failures=[10**9] + [100 * KiB] * 5)
    store = stored_backup()
    with pytest.raises(TransferInterrupted):
        fetch(box, store, dataclasses.replace(FAST, write_attempts=3))
    assert [w.state for w in box.writers if w.path.endswith(".tar")] == ["broken"] * 3
    assert_removed(box)


def test_store_failure_mid_stream_removes_the_directory() -> None:
    """A store error while streaming (after its own retries) leaves no directory behind."""
    box, store = FakeJumpbox(), stored_backup()
    store.fail_read_at[TAR_KEY] = 200_000
    with pytest.raises(StorageUnavailable):
        fetch(box, store)
    assert_removed(box)


def test_failed_cleanup_is_noted_on_the_error() -> None:
    """When the directory cannot be removed, the original error says so."""
    box, store = FakeJumpbox(), stored_backup()
    box.rm_status = 1
    store.served[TAR_KEY] = TAR[:-512]
    with pytest.raises(ArtifactCorrupt) as caught:
        fetch(box, store)
    assert any("could not be removed" in note for note in caught.value.__notes__)


def test_non_empty_artifact_directory_is_refused_and_left_alone() -> None:
    """A directory that already holds files is not ours: refused, and not removed."""
    box, store = FakeJumpbox(), stored_backup()
    box.run(("mkdir", "-p", "-m", "0700", ARTIFACT), on_line=lambda _s, _l: None, timeout=1)
    box.files[f"{ARTIFACT}/stray"] = b"x"
    with pytest.raises(RemoteFileError, match="already holds 1 files"):
        fetch(box, store)
    assert box.files[f"{ARTIFACT}/stray"] == b"x"
    assert ("rm", "-rf", ARTIFACT) not in box.calls
