"""bbr's ``metadata`` file as typed values, and the checks of tar members against it.

The adapter layer parses the YAML; :func:`parse_metadata` takes the resulting plain data
(dicts, lists, strings) so this module stays standard-library only. See bbr-contract.md
section 4 for the format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bbr_orchestrator.core.tar_stream import TarMember, normalise_member_name
from bbr_orchestrator.errors import ArtifactCorrupt, ConfigProblem, MetadataInvalid

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ArtifactChecksums:
    """One job's (or custom) artifact: its name and member name -> lowercase hex SHA-256."""

    name: str
    checksums: Mapping[str, str]


@dataclass(frozen=True)
class InstanceMetadata:
    """One backed-up instance (``bosh``/``0`` in director mode) and its job artifacts."""

    name: str
    index: str
    artifacts: tuple[ArtifactChecksums, ...]


@dataclass(frozen=True)
class BbrMetadata:
    """The whole ``metadata`` file; times are kept as bbr wrote them (bbr host's local zone)."""

    instances: tuple[InstanceMetadata, ...]
    custom_artifacts: tuple[ArtifactChecksums, ...]
    start_time: str | None
    finish_time: str | None


@dataclass(frozen=True)
class MetadataSummary:
    """What the manifest records about the metadata: counts and the sorted job names."""

    instances: int
    artifacts: int
    custom_artifacts: int
    jobs: tuple[str, ...]
    members: int


class _Problems:
    def __init__(self) -> None:
        self.items: list[ConfigProblem] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(ConfigProblem(path, message))


def _name(value: object, path: str, problems: _Problems) -> str:
    """A non-empty string that is safe as one file name component."""
    if not isinstance(value, str) or not value:
        problems.add(path, f"must be a non-empty string, got {value!r}")
        return ""
    if "/" in value or "\0" in value or value in (".", ".."):
        problems.add(path, f"{value!r} is not a valid file name component")
    return value


def _artifact(value: object, path: str, problems: _Problems) -> ArtifactChecksums:
    if not isinstance(value, Mapping):
        problems.add(path, f"must be a mapping, got {type(value).__name__}")
        return ArtifactChecksums("", {})
    name = _name(value.get("name"), f"{path}.name", problems)
    raw = value.get("checksums", ...)
    checksums: dict[str, str] = {}
    if raw is ...:
        problems.add(f"{path}.checksums", "is missing")
    elif raw is not None and not isinstance(raw, Mapping):
        problems.add(f"{path}.checksums", f"must be a mapping, got {type(raw).__name__}")
    elif raw is not None:
        for member, digest in raw.items():
            where = f"{path}.checksums[{member!r}]"
            if not isinstance(member, str) or not member:
                problems.add(where, "member name must be a non-empty string")
            elif not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                problems.add(where, f"must be a hex SHA-256 (64 hex digits), got {digest!r}")
            else:
                checksums[member] = digest.lower()
    return ArtifactChecksums(name, checksums)


def _sequence(data: Mapping[object, object], key: str, problems: _Problems) -> Sequence[object]:
    value = data.get(key)
    if value is None:
        return ()
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return value
    problems.add(key, f"must be a list, got {type(value).__name__}")
    return ()


def _instance(value: object, path: str, problems: _Problems) -> InstanceMetadata:
    if not isinstance(value, Mapping):
        problems.add(path, f"must be a mapping, got {type(value).__name__}")
        return InstanceMetadata("", "", ())
    name = _name(value.get("name"), f"{path}.name", problems)
    index = value.get("index")
    if isinstance(index, int) and not isinstance(index, bool):
        index = str(index)
    index = _name(index, f"{path}.index", problems)
    artifacts = value.get("artifacts")
    if artifacts is None:
        artifacts = []
    if not isinstance(artifacts, list):
        problems.add(f"{path}.artifacts", f"must be a list, got {type(artifacts).__name__}")
        artifacts = []
    parsed = tuple(
        _artifact(a, f"{path}.artifacts[{i}]", problems) for i, a in enumerate(artifacts)
    )
    return InstanceMetadata(name, index, parsed)


def _time(activity: Mapping[object, object], key: str, problems: _Problems) -> str | None:
    value = activity.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.add(f"backup_activity.{key}", f"must be a string, got {type(value).__name__}")
    return None


def parse_metadata(data: object, source: str) -> BbrMetadata:
    """Build :class:`BbrMetadata` from parsed YAML; :class:`MetadataInvalid` lists every problem.

    ``instances`` and ``custom_artifacts`` may be absent (bbr omits empty ones); a missing
    ``finish_time`` is allowed (bbr writes it last). Unknown keys are ignored. Names used to
    build tar file names must be single path components; two artifacts that would share a
    tar file name are an error.
    """
    problems = _Problems()
    if not isinstance(data, Mapping):
        problems.add("", f"must be a mapping at the top level, got {type(data).__name__}")
        raise MetadataInvalid(source, problems.items)
    instances = tuple(
        _instance(v, f"instances[{i}]", problems)
        for i, v in enumerate(_sequence(data, "instances", problems))
    )
    custom = tuple(
        _artifact(v, f"custom_artifacts[{i}]", problems)
        for i, v in enumerate(_sequence(data, "custom_artifacts", problems))
    )
    activity = data.get("backup_activity")
    start = finish = None
    if activity is None:
        problems.add("backup_activity", "is missing")
    elif not isinstance(activity, Mapping):
        problems.add("backup_activity", f"must be a mapping, got {type(activity).__name__}")
    else:
        start = _time(activity, "start_time", problems)
        finish = _time(activity, "finish_time", problems)
        if start is None and "start_time" not in activity:
            problems.add("backup_activity.start_time", "is missing")
    meta = BbrMetadata(instances, custom, start, finish)
    if not problems.items:
        seen: dict[str, str] = {}
        for path, tar_name in _tar_names(meta):
            if tar_name in seen:
                problems.add(path, f"tar file {tar_name} is also named by {seen[tar_name]}")
            seen.setdefault(tar_name, path)
    if problems.items:
        raise MetadataInvalid(source, problems.items)
    return meta


def _tar_names(meta: BbrMetadata) -> list[tuple[str, str]]:
    names = []
    for i, inst in enumerate(meta.instances):
        for j, art in enumerate(inst.artifacts):
            tar_name = f"{inst.name}-{inst.index}-{art.name}.tar"
            names.append((f"instances[{i}].artifacts[{j}]", tar_name))
    for k, art in enumerate(meta.custom_artifacts):
        names.append((f"custom_artifacts[{k}]", f"{art.name}.tar"))
    return names


def _artifacts_in_order(meta: BbrMetadata) -> list[ArtifactChecksums]:
    found = [art for inst in meta.instances for art in inst.artifacts]
    return found + list(meta.custom_artifacts)


def expected_tar_checksums(meta: BbrMetadata) -> dict[str, dict[str, str]]:
    """Map each tar file of the artifact directory to its member checksums.

    Job tars are ``<instance>-<index>-<artifact>.tar``, custom artifacts ``<name>.tar``.
    """
    pairs = zip(_tar_names(meta), _artifacts_in_order(meta), strict=True)
    return {tar_name: dict(art.checksums) for (_, tar_name), art in pairs}


def summarise(meta: BbrMetadata) -> MetadataSummary:
    """Counts for the manifest: instances, job tars, custom tars, distinct job names, members."""
    jobs = sorted({art.name for inst in meta.instances for art in inst.artifacts})
    return MetadataSummary(
        instances=len(meta.instances),
        artifacts=sum(len(inst.artifacts) for inst in meta.instances),
        custom_artifacts=len(meta.custom_artifacts),
        jobs=tuple(jobs),
        members=sum(len(art.checksums) for art in _artifacts_in_order(meta)),
    )


def verify_members(
    tar_name: str, members: Sequence[TarMember], expected: Mapping[str, str]
) -> None:
    """Check a tar's regular-file members against the metadata's checksums for that tar.

    Names on both sides are compared after :func:`normalise_member_name`. Raises
    :class:`ArtifactCorrupt` naming the tar and the first bad member (in archive order, then
    missing members in name order) for: a content mismatch, a member listed twice, a regular
    file the metadata does not list, a listed member absent from the tar. The reason counts
    any further problems.
    """
    wanted: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for name, digest in expected.items():
        key = normalise_member_name(name)
        if key in wanted:
            problems.append((key, "listed twice in the metadata"))
        wanted[key] = digest.lower()
    seen: set[str] = set()
    for entry in members:
        if entry.name in seen:
            problems.append((entry.name, "appears twice in the tar"))
            continue
        seen.add(entry.name)
        recorded = wanted.get(entry.name)
        if recorded is None:
            problems.append((entry.name, "regular file in the tar is not listed in the metadata"))
        elif recorded != entry.sha256:
            problems.append(
                (entry.name, f"content SHA-256 is {entry.sha256}, metadata records {recorded}")
            )
    problems.extend(
        (name, "listed in the metadata but missing from the tar")
        for name in sorted(wanted.keys() - seen)
    )
    if problems:
        member, reason = problems[0]
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ArtifactCorrupt(tar_name, member, reason + suffix)
