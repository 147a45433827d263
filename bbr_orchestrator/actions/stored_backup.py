"""A stored backup as the object store holds it: its manifest, checked against its key, and the
helpers that read and check its small objects (shared by fetch, verify and restore previews)."""

from __future__ import annotations

from collections.abc import Mapping

from bbr_orchestrator.actions.store_artifact import load_metadata
from bbr_orchestrator.core.bbr_metadata import expected_tar_checksums
from bbr_orchestrator.core.layout import MANIFEST_NAME, Manifest, ManifestObject
from bbr_orchestrator.errors import ArtifactCorrupt
from bbr_orchestrator.ports import ObjectStore

METADATA = "metadata"


def check_layout(manifest: Manifest, key: str, objects: Mapping[str, ManifestObject]) -> None:
    """Names are single path components and every object lives next to the manifest."""
    base, _, last = key.rpartition("/")
    dirs = base.rpartition("/")[2]
    if last != MANIFEST_NAME or manifest.artifact_dir != dirs or not _component(dirs):
        reason = f"artifact directory {manifest.artifact_dir!r} does not match the key"
        raise ArtifactCorrupt(key, None, reason)
    for obj in objects.values():
        if not _component(obj.name) or obj.key != f"{base}/{obj.name}":
            raise ArtifactCorrupt(key, None, f"object {obj.name!r} has a foreign key {obj.key!r}")
    if METADATA not in objects:
        raise ArtifactCorrupt(key, None, "the manifest lists no bbr metadata")


def _component(name: str) -> bool:
    return bool(name) and name not in (".", "..", MANIFEST_NAME) and not {"/", "\0"} & set(name)


def read_small(store: ObjectStore, key: str, size: int, limit: int) -> bytes:
    """A whole small object (manifest, metadata) in memory; exactly ``size`` bytes."""
    if size > limit:
        raise ArtifactCorrupt(key, None, f"{size} bytes is too large to read into memory")
    buffer = bytearray(size + 1)  # one spare byte: an object longer than expected is caught
    stream = store.open_read(key, 0)
    try:
        got = 0
        while got <= size and (n := stream.readinto(memoryview(buffer)[got:])):
            got += n
    finally:
        stream.close()
    if got != size:
        what = f"longer than {size} bytes" if got > size else f"ended after {got} of {size} bytes"
        raise ArtifactCorrupt(key, None, what)
    return bytes(buffer[:size])


def check_digest(obj: ManifestObject, size: int, sha256: str) -> None:
    if size != obj.size:
        reason = f"{size} bytes arrived, the manifest records {obj.size}"
        raise ArtifactCorrupt(obj.key, None, reason)
    if sha256 != obj.sha256:
        reason = f"SHA-256 is {sha256}, the manifest records {obj.sha256}"
        raise ArtifactCorrupt(obj.key, None, reason)


def tar_checksums(
    raw: bytes, source: str, manifest_key: str, objects: Mapping[str, ManifestObject]
) -> dict[str, dict[str, str]]:
    """bbr's per-tar member checksums; every tar it lists is stored and vice versa."""
    expected = expected_tar_checksums(load_metadata(raw, source))
    missing = sorted(set(expected) - set(objects))
    if missing:
        raise ArtifactCorrupt(manifest_key, missing[0], "listed in metadata but not stored")
    unlisted = sorted(n for n in objects if n.endswith(".tar") and n not in expected)
    if unlisted:
        raise ArtifactCorrupt(objects[unlisted[0]].key, None, "a tar that metadata does not list")
    return expected
