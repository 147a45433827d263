"""Where a backup lives in the bucket, how it is cut into parts, and its ``manifest.json``.

A backup of target ``T`` whose bbr artifact directory is ``D`` is stored under
``{prefix}/{T}/{D}/``: one object per file of the directory (tars, ``metadata``) and
``manifest.json``, written last as the commit marker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from bbr_orchestrator.core.bbr_metadata import MetadataSummary
from bbr_orchestrator.core.models import TargetKind
from bbr_orchestrator.errors import ConfigProblem, ManifestInvalid, ObjectTooLarge

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT_VERSION = 1
MiB = 1 << 20
GiB = 1 << 30
MIN_PART = 5 * MiB
"""S3's smallest part (except the last)."""
MAX_PART = 5 * GiB
"""S3's largest part."""
MAX_OBJECT = 5 * (1 << 40)
"""S3's largest object (5 TiB)."""
MAX_PARTS = 10_000
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _component(value: str, what: str) -> str:
    if not value or "/" in value or value in (".", "..") or "\0" in value:
        raise ValueError(f"{what} must be one non-empty path component, got {value!r}")
    return value


def target_prefix(prefix: str, target: str) -> str:
    """``{prefix}/{target}/``: where every artifact of ``target`` lives (listing prefix)."""
    parts = prefix.strip("/").split("/") if prefix.strip("/") else []
    for part in parts:
        _component(part, "each segment of the key prefix")
    return "/".join([*parts, _component(target, "target")]) + "/"


def artifact_prefix(prefix: str, target: str, artifact_dir: str) -> str:
    """``{prefix}/{target}/{artifact_dir}``; ``prefix`` may be empty or nested (``a/b``).

    Leading and trailing slashes of ``prefix`` are dropped; ``target`` and ``artifact_dir``
    must be single path components. Raises :class:`ValueError` otherwise.
    """
    return target_prefix(prefix, target) + _component(artifact_dir, "artifact directory")


def object_key(prefix: str, target: str, artifact_dir: str, file_name: str) -> str:
    """The key of one file of the artifact directory (a tar, ``metadata``, the manifest)."""
    file_name = _component(file_name, "file name")
    return f"{artifact_prefix(prefix, target, artifact_dir)}/{file_name}"


def manifest_key(prefix: str, target: str, artifact_dir: str) -> str:
    """The key of the backup's ``manifest.json``."""
    return object_key(prefix, target, artifact_dir, MANIFEST_NAME)


def part_size(file_size: int, *, minimum: int = 16 * MiB, max_parts: int = MAX_PARTS) -> int:
    """The smallest multiple of 1 MiB >= ``minimum`` that fits the file in ``max_parts`` parts.

    Raises :class:`ObjectTooLarge` above S3's 5 TiB per object or when the part would exceed
    5 GiB, and :class:`ValueError` for arguments outside S3's limits.
    """
    if file_size < 0:
        raise ValueError(f"file size must be >= 0, got {file_size}")
    if not MIN_PART <= minimum <= MAX_PART:
        raise ValueError(f"minimum part size must be within 5 MiB .. 5 GiB, got {minimum}")
    if not 1 <= max_parts <= MAX_PARTS:
        raise ValueError(f"max_parts must be within 1 .. {MAX_PARTS}, got {max_parts}")
    if file_size > MAX_OBJECT:
        raise ObjectTooLarge(file_size, "S3 objects are limited to 5 TiB")
    needed = -(-file_size // max_parts)
    size = max(-(-minimum // MiB), -(-needed // MiB)) * MiB
    if size > MAX_PART:
        raise ObjectTooLarge(file_size, f"{max_parts} parts would each exceed S3's 5 GiB")
    return size


@dataclass(frozen=True)
class ManifestObject:
    """One stored file: its name in the artifact directory, object key, size and SHA-256.

    ``member_checksums`` is how many tar members were verified against the metadata (0 for
    files that are not tars).
    """

    name: str
    key: str
    size: int
    sha256: str
    member_checksums: int


@dataclass(frozen=True)
class Manifest:
    """The commit marker of one stored backup; times are timezone-aware (stored as UTC)."""

    run_id: str
    target: str
    target_kind: TargetKind
    bbr_version: str | None
    artifact_dir: str
    objects: tuple[ManifestObject, ...]
    metadata: MetadataSummary
    started_at: datetime
    finished_at: datetime
    orchestrator_version: str
    format_version: int = MANIFEST_FORMAT_VERSION
    # Optional, written when known (absent from older manifests): where the backup came from,
    # so the catalog can be rebuilt from the bucket alone, and the client-side encryption key.
    plan: str | None = None
    restore_point_id: str | None = None
    step: int | None = None
    trigger: str | None = None
    triggered_by: str | None = None
    encryption_key_id: str | None = None
    """The id of the key the data objects were encrypted with (None: not encrypted)."""
    bbr_outcome: str | None = None
    """bbr's decoded outcome when the artifact was stored: ``succeeded``, or ``unlock-failed``
    for a complete artifact of a run that still failed (the platform may be locked)."""

    def __post_init__(self) -> None:
        for field in ("started_at", "finished_at"):
            if getattr(self, field).utcoffset() is None:
                raise ValueError(f"Manifest.{field} must be timezone-aware")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def manifest_json(manifest: Manifest) -> bytes:
    """Serialise: UTF-8 JSON, sorted keys, indent 2, trailing newline; same input, same bytes."""
    data = asdict(manifest)
    data["target_kind"] = manifest.target_kind.value
    data["started_at"] = _iso(manifest.started_at)
    data["finished_at"] = _iso(manifest.finished_at)
    data["metadata"]["jobs"] = list(manifest.metadata.jobs)
    for key in OPTIONAL_FIELDS:
        if data[key] is None:
            del data[key]
    text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


class _Reader:
    """Typed field access that records every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []

    def get(self, data: Mapping[str, Any], key: str, kind: type, path: str) -> Any:
        where = f"{path}.{key}" if path else key
        if key not in data:
            self.problems.append(ConfigProblem(where, "is missing"))
            return None
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append(ConfigProblem(where, f"must be {kind.__name__}, got {value!r}"))
            return None
        return value

    def when(self, data: Mapping[str, Any], key: str) -> datetime | None:
        text = self.get(data, key, str, "")
        if text is None:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.utcoffset() is None:
            self.problems.append(ConfigProblem(key, f"must be an ISO 8601 UTC time, got {text!r}"))
            return None
        return moment.astimezone(UTC)


def _object(reader: _Reader, value: object, path: str) -> ManifestObject | None:
    if not isinstance(value, dict):
        reader.problems.append(ConfigProblem(path, "must be an object"))
        return None
    fields = {k: reader.get(value, k, t, path) for k, t in _OBJECT_FIELDS.items()}
    if fields["sha256"] is not None and not _SHA256.fullmatch(fields["sha256"]):
        reader.problems.append(ConfigProblem(f"{path}.sha256", "must be 64 lowercase hex digits"))
    for key in ("size", "member_checksums"):
        if fields[key] is not None and fields[key] < 0:
            reader.problems.append(ConfigProblem(f"{path}.{key}", "must be >= 0"))
    return None if None in fields.values() else ManifestObject(**fields)


_OBJECT_FIELDS: dict[str, type] = {
    "name": str,
    "key": str,
    "size": int,
    "sha256": str,
    "member_checksums": int,
}
_STRING_FIELDS = ("run_id", "target", "target_kind", "artifact_dir", "orchestrator_version")
#: Optional manifest fields and their types (omitted when None).
OPTIONAL_FIELDS: dict[str, type] = {
    "plan": str,
    "restore_point_id": str,
    "step": int,
    "trigger": str,
    "triggered_by": str,
    "encryption_key_id": str,
    "bbr_outcome": str,
}
_SUMMARY_FIELDS: dict[str, type] = {
    "instances": int,
    "artifacts": int,
    "custom_artifacts": int,
    "jobs": list,
    "members": int,
}


def parse_manifest(raw: bytes, source: str) -> Manifest:
    """Read a ``manifest.json``; raise :class:`ManifestInvalid` listing every problem by path."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(source, [ConfigProblem("", f"not UTF-8 JSON: {exc}")]) from exc
    if not isinstance(data, dict):
        raise ManifestInvalid(source, [ConfigProblem("", "must be a JSON object")])
    reader = _Reader()
    version = reader.get(data, "format_version", int, "")
    if version is not None and version != MANIFEST_FORMAT_VERSION:
        problem = f"is {version}; this version reads format {MANIFEST_FORMAT_VERSION} only"
        raise ManifestInvalid(source, [ConfigProblem("format_version", problem)])
    strings = {k: reader.get(data, k, str, "") for k in _STRING_FIELDS}
    kind = strings["target_kind"]
    if kind is not None and kind not in {k.value for k in TargetKind}:
        reader.problems.append(ConfigProblem("target_kind", f"unknown target kind {kind!r}"))
    bbr_version = data.get("bbr_version")
    if bbr_version is not None and not isinstance(bbr_version, str):
        reader.problems.append(ConfigProblem("bbr_version", "must be a string or null"))
    items = reader.get(data, "objects", list, "") or []
    objects = [_object(reader, item, f"objects[{i}]") for i, item in enumerate(items)]
    names = [o.name for o in objects if o is not None]
    if len(set(names)) != len(names):
        reader.problems.append(ConfigProblem("objects", "object names must be unique"))
    summary = reader.get(data, "metadata", dict, "") or {}
    counts = {k: reader.get(summary, k, t, "metadata") for k, t in _SUMMARY_FIELDS.items()}
    if counts["jobs"] is not None and not all(isinstance(j, str) for j in counts["jobs"]):
        reader.problems.append(ConfigProblem("metadata.jobs", "must be a list of strings"))
    started, finished = reader.when(data, "started_at"), reader.when(data, "finished_at")
    optional = {k: reader.get(data, k, t, "") for k, t in OPTIONAL_FIELDS.items() if k in data}
    if reader.problems or started is None or finished is None:
        raise ManifestInvalid(source, reader.problems)
    counts["jobs"] = tuple(counts["jobs"])
    return Manifest(
        run_id=strings["run_id"],
        target=strings["target"],
        target_kind=TargetKind(kind),
        bbr_version=bbr_version,
        artifact_dir=strings["artifact_dir"],
        objects=tuple(o for o in objects if o is not None),
        metadata=MetadataSummary(**counts),
        started_at=started,
        finished_at=finished,
        orchestrator_version=strings["orchestrator_version"],
        format_version=MANIFEST_FORMAT_VERSION,
        **optional,
    )
