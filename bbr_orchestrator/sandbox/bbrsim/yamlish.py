"""Just enough YAML for bbr's ``metadata`` file, in go-yaml v2's block style (no library)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_PLAIN = re.compile(r"[A-Za-z0-9_./][A-Za-z0-9_./:@+ -]*")
_RESOLVES = re.compile(
    r"(?i:y|yes|n|no|true|false|on|off|null|~)"
    r"|[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?"
    r"|0x[0-9a-fA-F_]+|0o?[0-7_]+|[-+]?\.(?i:inf)|\.(?i:nan)"
    r"|[0-9]+(:[0-5]?[0-9])+(\.[0-9_]*)?"
)


class YamlError(ValueError):
    """The text is not in the YAML subset bbr writes; the message names the line."""


def scalar(text: str) -> str:
    """``text`` as go-yaml would emit it: plain when unambiguous, otherwise double-quoted."""
    plain = (
        bool(_PLAIN.fullmatch(text))
        and not text.endswith(" ")
        and ": " not in text
        and " #" not in text
        and not _RESOLVES.fullmatch(text)
    )
    return text if plain else json.dumps(text)


@dataclass
class _Line:
    number: int
    indent: int
    text: str


def parse(text: str) -> Any:
    """Parse block mappings, block sequences, scalars and the empty ``{}``/``[]``."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped and not stripped.startswith("#") and stripped != "---":
            lines.append(_Line(number, len(raw) - len(raw.lstrip(" ")), stripped))
    if not lines:
        return None
    value, end = _block(lines, 0, lines[0].indent)
    if end != len(lines):
        raise YamlError(f"line {lines[end].number}: unexpected indentation")
    return value


def _is_item(line: _Line) -> bool:
    return line.text == "-" or line.text.startswith("- ")


def _block(lines: list[_Line], i: int, indent: int) -> tuple[Any, int]:
    if _is_item(lines[i]):
        return _sequence(lines, i, indent)
    return _mapping(lines, i, indent)


def _sequence(lines: list[_Line], i: int, indent: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    while i < len(lines) and lines[i].indent == indent and _is_item(lines[i]):
        rest = lines[i].text[1:].lstrip(" ")
        if not rest:
            if i + 1 < len(lines) and lines[i + 1].indent > indent:
                item, i = _block(lines, i + 1, lines[i + 1].indent)
            else:
                item, i = None, i + 1
        elif _split_key(rest) is not None:
            column = indent + (len(lines[i].text) - len(rest))
            lines[i] = _Line(lines[i].number, column, rest)
            item, i = _mapping(lines, i, column)
        else:
            item, i = _scalar(rest, lines[i].number), i + 1
        items.append(item)
    return items, i


def _mapping(lines: list[_Line], i: int, indent: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    while i < len(lines) and lines[i].indent == indent and not _is_item(lines[i]):
        split = _split_key(lines[i].text)
        if split is None:
            raise YamlError(f"line {lines[i].number}: expected 'key: value'")
        key, rest = split
        if rest:
            result[key], i = _scalar(rest, lines[i].number), i + 1
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else None
        if nxt is not None and (nxt.indent > indent or (nxt.indent == indent and _is_item(nxt))):
            result[key], i = _block(lines, i + 1, nxt.indent)
        else:
            result[key], i = None, i + 1
    return result, i


def _split_key(text: str) -> tuple[str, str] | None:
    if text.startswith('"'):
        end = _closing_quote(text)
        if end < 0 or not text[end + 1 :].startswith(":"):
            return None
        return json.loads(text[: end + 1]), text[end + 2 :].strip()
    if text.endswith(":"):
        return text[:-1], ""
    key, sep, rest = text.partition(": ")
    return (key, rest.strip()) if sep else None


def _closing_quote(text: str) -> int:
    escaped = False
    for position in range(1, len(text)):
        char = text[position]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return position
    return -1


def _scalar(text: str, number: int) -> Any:
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if text in ("null", "~"):
        return None
    if text.startswith('"'):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise YamlError(f"line {number}: bad double-quoted string: {exc}") from exc
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'"):
            raise YamlError(f"line {number}: unterminated single-quoted string")
        return text[1:-1].replace("''", "'")
    return text
