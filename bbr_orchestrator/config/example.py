"""Generate the commented example config from the schema.

The schema supplies every comment (field descriptions) and every default; ``EXAMPLE`` supplies
the values of required fields and list items. ``tests`` fail when the checked-in
``config/bbr-orchestrator.example.yml`` differs from ``render_example()``.
"""

from __future__ import annotations

import textwrap
import types
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bbr_orchestrator.config.schema import Config
from bbr_orchestrator.config.types import SecretReference

EXAMPLE: dict[str, Any] = {
    "object_store": {
        "endpoint_url": "https://s3.example.internal:9000",
        "bucket": "foundation-backups",
        "addressing_style": "path",
    },
    "jumpboxes": [
        {
            "name": "jumpbox-1",
            "host": "10.0.0.5",
            "user": "ubuntu",
            "private_key_file": "/etc/bbr-orchestrator/jumpbox_ed25519",
            "known_hosts_file": "/etc/bbr-orchestrator/known_hosts",
        }
    ],
    "targets": [
        {
            "kind": "director",
            "name": "bosh-director",
            "jumpbox": "jumpbox-1",
            "host": "10.0.0.6",
            "private_key_path": "/home/ubuntu/bbr_ssh_key.pem",
        },
        {
            "kind": "deployment",
            "name": "cf",
            "jumpbox": "jumpbox-1",
            "bosh_target": "https://10.0.0.6:25555",
            "client": "bbr_client",
            "client_secret": {"credential": "bosh_client_secret"},
            "ca_cert_path": "/home/ubuntu/root_ca_certificate",
            "deployment": "cf-abc123",
        },
        {
            "kind": "director",
            "name": "sandbox-director",
            "jumpbox": "jumpbox-1",
            "host": "10.1.0.6",
            "private_key_path": "/home/ubuntu/sandbox_bbr_ssh_key.pem",
        },
        {
            "kind": "opsman",
            "name": "opsman",
            "jumpbox": "jumpbox-1",
            "url": "https://opsman.example.internal",
            "username": "admin",
            "password": {"credential": "opsman_password"},
            "decryption_passphrase": {"credential": "opsman_decryption_passphrase"},
            "ca_cert_path": "/home/ubuntu/opsman_ca.pem",
        },
    ],
    "plans": [
        {
            "name": "nightly",
            "targets": ["bosh-director", "cf"],
            "schedule": "0 2 * * *",
            "timezone": "Europe/Berlin",
            "drills": [
                {
                    "target": "sandbox-director",
                    "source": "bosh-director",
                    "schedule": "0 6 * * 6",
                    "timezone": "Europe/Berlin",
                }
            ],
            "verify": {
                "schedule": "0 8 * * *",
                "timezone": "Europe/Berlin",
                "mode": "rolling",
                "rolling_percent": 10,
            },
            "encryption_key": "key-2026-01",
        }
    ],
    "encryption": {
        "keys": [{"id": "key-2026-01", "key": {"credential": "backup_key_2026_01"}}],
    },
}

HEADER = """\
# bbr-orchestrator configuration (example).
#
# Generated from the schema by `bbr-orchestrator config example`; every setting is listed with
# its default. Secrets are never written inline: reference them as {env: VAR_NAME},
# {file: /path} or {credential: NAME} (a systemd credential in $CREDENTIALS_DIRECTORY).
# Durations take s, m, h, d or w suffixes (90s, 15m, 24h, 7d). Check a file with
# `bbr-orchestrator config validate FILE`.
"""

_WIDTH = 96


def render_example() -> str:
    """The commented example config, as YAML text."""
    lines: list[str] = []
    _render_model(Config, EXAMPLE, 0, lines)
    return HEADER + "\n" + "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_none=True)
    text = yaml.safe_dump(value, default_flow_style=True, width=1000, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``X``, ``X | None`` or ``Annotated[X, ...]`` (not secret refs)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return None if issubclass(annotation, SecretReference) else annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [m for a in get_args(annotation) if (m := _model_of(a)) is not None]
        return models[0] if len(models) == 1 else None
    return None


def _list_item_models(annotation: Any) -> list[type[BaseModel]]:
    if get_origin(annotation) is not list:
        return []
    (item,) = get_args(annotation)
    while hasattr(item, "__metadata__"):  # Annotated[...]
        item = get_args(item)[0]
    candidates = get_args(item) if get_origin(item) in (Union, types.UnionType) else (item,)
    return [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]


def _comment(info: FieldInfo, indent: str, lines: list[str]) -> None:
    nested = _model_of(info.annotation)
    text = info.description or (nested.__doc__ if nested is not None else None)
    if text:
        for line in textwrap.wrap(" ".join(text.split()), _WIDTH - len(indent) - 2):
            lines.append(f"{indent}# {line}")


def _render_model(
    model: type[BaseModel], data: dict[str, Any], depth: int, lines: list[str]
) -> None:
    indent = "  " * depth
    for name, info in model.model_fields.items():
        _comment(info, indent, lines)
        item_models = _list_item_models(info.annotation)
        nested = _model_of(info.annotation)
        if name in data and item_models:
            lines.append(f"{indent}{name}:")
            for item in data[name]:
                _render_item(item_models, item, depth + 1, lines)
        elif nested is not None and (name in data or info.default is not None):
            lines.append(f"{indent}{name}:")
            _render_model(nested, data.get(name, {}), depth + 1, lines)
        elif name in data:
            lines.append(f"{indent}{name}: {_scalar(data[name])}")
        elif info.default is None and info.default_factory is None:
            example = info.examples[0] if info.examples else None
            lines.append(f"{indent}# {name}: {_scalar(example)}")
        else:
            default = info.get_default(call_default_factory=True)
            lines.append(f"{indent}{name}: {_scalar(default)}")


def _render_item(
    candidates: list[type[BaseModel]], item: dict[str, Any], depth: int, lines: list[str]
) -> None:
    model = candidates[0]
    if len(candidates) > 1:
        kind = item["kind"]
        model = next(
            c for c in candidates if get_args(c.model_fields["kind"].annotation) == (kind,)
        )
    start = len(lines)
    _render_model(model, item, depth + 1, lines)
    dash = "  " * depth
    body = "  " * (depth + 1)
    # The item's first key becomes "- key: value"; the comments above it move to the dash.
    for i in range(start, len(lines)):
        if lines[i].lstrip().startswith("#"):
            lines[i] = dash + lines[i][len(body) :]
        else:
            lines[i] = f"{dash}- {lines[i][len(body) :]}"
            break
