"""Cross-references between config sections, checked on the raw data.

They run even when other parts of the file fail validation, so that one run of
``config validate`` reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bbr_orchestrator.errors import ConfigProblem


def _items(data: dict[str, Any], section: str) -> list[tuple[int, dict[str, Any]]]:
    value = data.get(section)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def _names(data: dict[str, Any], section: str) -> Iterator[ConfigProblem]:
    seen: dict[str, int] = {}
    for i, item in _items(data, section):
        name = item.get("name")
        if not isinstance(name, str):
            continue
        if name in seen:
            yield ConfigProblem(
                f"{section}[{i}].name",
                f"duplicate name {name!r} (already used by {section}[{seen[name]}])",
            )
        else:
            seen[name] = i


def _known(data: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    return {
        item["name"]: item for _, item in _items(data, section) if isinstance(item.get("name"), str)
    }


def _unknown(kind: str, name: object, known: dict[str, Any]) -> str:
    choices = ", ".join(sorted(known)) or "none defined"
    return f"unknown {kind} {name!r} (known: {choices})"


def check_references(data: dict[str, Any]) -> list[ConfigProblem]:
    """Duplicate names and references to jumpboxes, targets and encryption keys that do not
    exist."""
    problems: list[ConfigProblem] = []
    for section in ("jumpboxes", "targets", "plans"):
        problems.extend(_names(data, section))
    jumpboxes = _known(data, "jumpboxes")
    targets = _known(data, "targets")
    for i, target in _items(data, "targets"):
        jumpbox = target.get("jumpbox")
        if isinstance(jumpbox, str) and jumpbox not in jumpboxes:
            problems.append(
                ConfigProblem(f"targets[{i}].jumpbox", _unknown("jumpbox", jumpbox, jumpboxes))
            )
    for i, plan in _items(data, "plans"):
        plan_targets = plan.get("targets")
        listed = plan_targets if isinstance(plan_targets, list) else []
        for j, name in enumerate(listed):
            if isinstance(name, str) and name not in targets:
                problems.append(
                    ConfigProblem(f"plans[{i}].targets[{j}]", _unknown("target", name, targets))
                )
        problems.extend(_opsman_first(f"plans[{i}].targets", listed, targets))
        drills = plan.get("drills")
        for k, drill in enumerate(drills if isinstance(drills, list) else []):
            if not isinstance(drill, dict):
                continue
            problems.extend(_check_drill(f"plans[{i}].drills[{k}]", drill, listed, targets))
    problems.extend(_encryption_keys(data))
    reported = {p.path for p in problems}  # one problem per drill target is enough
    problems.extend(p for p in _drills_into_production(data) if p.path not in reported)
    return problems


def _encryption_keys(data: dict[str, Any]) -> Iterator[ConfigProblem]:
    """Key ids are unique, and every plan's ``encryption_key`` names one of them."""
    section = data.get("encryption")
    raw = section.get("keys") if isinstance(section, dict) else None
    keys = raw if isinstance(raw, list) else []
    seen: dict[str, int] = {}
    for i, key in enumerate(keys):
        key_id = key.get("id") if isinstance(key, dict) else None
        if not isinstance(key_id, str):
            continue
        if key_id in seen:
            yield ConfigProblem(
                f"encryption.keys[{i}].id",
                f"duplicate key id {key_id!r} (already used by encryption.keys[{seen[key_id]}])",
            )
        else:
            seen[key_id] = i
    for i, plan in _items(data, "plans"):
        chosen = plan.get("encryption_key")
        if isinstance(chosen, str) and chosen not in seen:
            yield ConfigProblem(
                f"plans[{i}].encryption_key", _unknown("encryption key", chosen, seen)
            )


def _drills_into_production(data: dict[str, Any]) -> Iterator[ConfigProblem]:
    """A drill restores over its target: one that a plan backs up is production, not a sandbox
    (allowed only with the same explicit flag as restoring into the source itself)."""
    backed_up: dict[str, str] = {}
    for _, plan in _items(data, "plans"):
        listed = plan.get("targets")
        for name in listed if isinstance(listed, list) else []:
            if isinstance(name, str) and isinstance(plan.get("name"), str):
                backed_up.setdefault(name, plan["name"])
    for i, plan in _items(data, "plans"):
        drills = plan.get("drills")
        for k, drill in enumerate(drills if isinstance(drills, list) else []):
            if not isinstance(drill, dict) or drill.get("allow_source_as_target") is True:
                continue
            target = drill.get("target")
            if not isinstance(target, str) or target == drill.get("source"):
                continue  # the source itself: reported by the drill's own check
            if target in backed_up:
                yield ConfigProblem(
                    f"plans[{i}].drills[{k}].target",
                    f"{target!r} is backed up by plan {backed_up[target]!r}, so it is a "
                    "production target and a drill restores over it. Name a sandbox target, "
                    "or set allow_source_as_target: true",
                )


def _check_drill(
    path: str, drill: dict[str, Any], plan_targets: list[Any], targets: dict[str, dict[str, Any]]
) -> Iterator[ConfigProblem]:
    source, target = drill.get("source"), drill.get("target")
    if isinstance(source, str) and source not in plan_targets:
        yield ConfigProblem(f"{path}.source", f"{source!r} is not one of this plan's targets")
    for key, name in (("source", source), ("target", target)):
        if isinstance(name, str) and targets.get(name, {}).get("kind") == "opsman":
            yield ConfigProblem(
                f"{path}.{key}",
                f"{name!r} is an Ops Manager: drills restore bbr backups, not an "
                "installation export",
            )
    if isinstance(target, str):
        if target not in targets:
            yield ConfigProblem(f"{path}.target", _unknown("target", target, targets))
        elif isinstance(source, str) and source in targets:
            source_kind, target_kind = targets[source].get("kind"), targets[target].get("kind")
            kinds = {"director", "deployment"}
            if source_kind in kinds and target_kind in kinds and source_kind != target_kind:
                yield ConfigProblem(
                    f"{path}.target",
                    f"a {source_kind} backup cannot be restored into "
                    f"{target_kind} target {target!r}",
                )


def _opsman_first(
    path: str, plan_targets: list[Any], targets: dict[str, dict[str, Any]]
) -> Iterator[ConfigProblem]:
    """The Ops Manager export is the first step of a restore point (the official backup order:
    installation export, then director, then deployments)."""
    for j, name in enumerate(plan_targets):
        is_opsman = isinstance(name, str) and targets.get(name, {}).get("kind") == "opsman"
        if is_opsman and any(
            isinstance(earlier, str)
            and earlier in targets
            and targets[earlier].get("kind") != "opsman"
            for earlier in plan_targets[:j]
        ):
            yield ConfigProblem(
                f"{path}[{j}]",
                f"Ops Manager target {name!r} must come before the director and deployments "
                "(export the installation first)",
            )
