"""bbr's artifact ``metadata`` file: written by hand in go-yaml's shape, parsed back for restore."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import yamlish
from .yamlish import scalar


class MetadataError(ValueError):
    """The metadata file is missing a field bbr needs; the message names it."""


@dataclass
class ArtifactMeta:
    """One tar's entry: its name and the SHA-256 of every non-directory member."""

    name: str
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass
class InstanceMeta:
    name: str
    index: str
    artifacts: list[ArtifactMeta] = field(default_factory=list)


@dataclass
class Metadata:
    start_time: str
    finish_time: str | None = None
    instances: list[InstanceMeta] = field(default_factory=list)
    custom_artifacts: list[ArtifactMeta] = field(default_factory=list)

    def add_checksums(self, group: str, index: str, job: str, checksums: dict[str, str]) -> None:
        """Record a finished job's checksums (bbr's ``AddChecksum``)."""
        for inst in self.instances:
            if inst.name == group and inst.index == index:
                break
        else:
            inst = InstanceMeta(group, index)
            self.instances.append(inst)
        inst.artifacts.append(ArtifactMeta(job, dict(checksums)))

    def render(self) -> str:
        lines: list[str] = []
        if self.instances:
            lines.append("instances:")
            for inst in self.instances:
                lines += [f"- name: {scalar(inst.name)}", f"  index: {scalar(inst.index)}"]
                if not inst.artifacts:
                    lines.append("  artifacts: []")
                    continue
                lines.append("  artifacts:")
                lines += _artifact_lines(inst.artifacts, "  ")
        if self.custom_artifacts:
            lines.append("custom_artifacts:")
            lines += _artifact_lines(self.custom_artifacts, "")
        lines += ["backup_activity:", f"  start_time: {scalar(self.start_time)}"]
        if self.finish_time:
            lines.append(f"  finish_time: {scalar(self.finish_time)}")
        return "\n".join(lines) + "\n"

    def save(self, path: Path) -> None:
        """Write atomically: a reader never sees half a metadata file."""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.render(), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def parse(cls, text: str) -> Metadata:
        data = yamlish.parse(text)
        if not isinstance(data, dict):
            raise MetadataError("metadata: not a mapping")
        activity = data.get("backup_activity")
        if not isinstance(activity, dict) or not isinstance(activity.get("start_time"), str):
            raise MetadataError("backup_activity.start_time: missing")
        instances = []
        for n, raw in enumerate(_list(data, "instances")):
            where = f"instances[{n}]"
            inst = InstanceMeta(_text(raw, "name", where), _text(raw, "index", where))
            inst.artifacts = [_artifact(a, f"{where}.artifacts") for a in _list(raw, "artifacts")]
            instances.append(inst)
        custom = [_artifact(a, "custom_artifacts") for a in _list(data, "custom_artifacts")]
        finish = activity.get("finish_time")
        return cls(activity["start_time"], finish if isinstance(finish, str) else None,
                   instances, custom)  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> Metadata:
        return cls.parse(path.read_text(encoding="utf-8"))


def _artifact_lines(artifacts: list[ArtifactMeta], pad: str) -> list[str]:
    lines = []
    for artifact in artifacts:
        lines.append(f"{pad}- name: {scalar(artifact.name)}")
        if not artifact.checksums:
            lines.append(f"{pad}  checksums: {{}}")
            continue
        lines.append(f"{pad}  checksums:")
        for member in sorted(artifact.checksums):
            lines.append(f"{pad}    {scalar(member)}: {scalar(artifact.checksums[member])}")
    return lines


def _list(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if value is None:
        return []
    if not isinstance(value, list):
        raise MetadataError(f"{key}: not a list")
    return value


def _text(data: Any, key: str, where: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, str):
        raise MetadataError(f"{where}.{key}: missing")
    return value


def _artifact(raw: Any, where: str) -> ArtifactMeta:
    name = _text(raw, "name", where)
    checksums = raw.get("checksums") or {}
    if not isinstance(checksums, dict) or not all(isinstance(v, str) for v in checksums.values()):
        raise MetadataError(f"{where}.{name}.checksums: not a map of member to SHA-256")
    return ArtifactMeta(name, dict(checksums))
