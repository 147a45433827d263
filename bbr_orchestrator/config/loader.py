"""Load a YAML config file and report every problem at once, each with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bbr_orchestrator.config.references import check_references
from bbr_orchestrator.config.schema import Config
from bbr_orchestrator.errors import ConfigError, ConfigProblem

_UNION_TAGS = frozenset({"director", "deployment", "opsman"})


def format_location(loc: tuple[int | str, ...]) -> str:
    """``('plans', 1, 'schedule')`` -> ``plans[1].schedule`` (union tags dropped)."""
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(previous, int) and part in _UNION_TAGS:
            pass  # pydantic names the union member it tried; the operator doesn't need it
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out


def _message(error: Any) -> str:
    kind, msg = error["type"], str(error["msg"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known setting (check the spelling)"
    if kind == "union_tag_invalid":
        return "kind must be 'director', 'deployment' or 'opsman'"
    if kind == "union_tag_not_found":
        return "needs a kind: 'director', 'deployment' or 'opsman'"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def problems_from_validation(exc: ValidationError) -> list[ConfigProblem]:
    found = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "kind")
        found.append(ConfigProblem(format_location(loc), _message(error)))
    return found


def validate_data(data: Any, source: str = "<config>") -> Config:
    """Validate already-parsed data; raises ``ConfigError`` with every problem found."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ConfigError(
            source, [ConfigProblem("", f"expected a mapping at the top level, got {kind}")]
        )
    problems: list[ConfigProblem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems.extend(problems_from_validation(exc))
    problems.extend(check_references(data))
    if problems or config is None:
        raise ConfigError(source, _dedupe(problems))
    return config


def _dedupe(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return list(dict.fromkeys(problems))


def load_config(path: Path) -> Config:
    """Read and validate a config file; raises ``ConfigError`` naming the file and every problem."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [ConfigProblem("", "file not found")]) from None
    except OSError as exc:
        raise ConfigError(
            source, [ConfigProblem("", f"cannot read: {exc.strerror or exc}")]
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}"
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [ConfigProblem(where, f"invalid YAML: {reason}")]) from exc
    return validate_data(data, source)
