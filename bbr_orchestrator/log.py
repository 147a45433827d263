"""structlog set-up: JSON off a terminal, readable on one, stdlib loggers through the same
pipeline, and a redaction step so that secrets never reach a log line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from datetime import datetime
from typing import Any, TextIO

import structlog

REDACTED = "********"
_SENSITIVE_KEYS = re.compile(r"(secret|password|passphrase|token|credential|private_key)$", re.I)
_QUIET_LIBRARIES = (
    "paramiko",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "apscheduler",
    "sqlalchemy",
    "alembic",
)


class Redactor:
    """A structlog processor that masks known secret values and sensitive keys.

    Secret values are registered when they are resolved (``add``); any event field whose
    key looks sensitive, and any occurrence of a registered value inside a string, is masked.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        self._values.update(v for v in values if len(v) >= 4)

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if _SENSITIVE_KEYS.search(key) and value is not None:
                event_dict[key] = REDACTED
            elif isinstance(value, str) and self._values:
                event_dict[key] = self.scrub(value)
        return event_dict


redactor = Redactor()


def iso_datetimes(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Datetimes as ISO 8601 text (JSON has no datetime; ``repr`` would be unreadable)."""
    for key, value in event_dict.items():
        if isinstance(value, datetime):
            event_dict[key] = value.isoformat()
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one pipeline writing to ``stream`` (stderr)."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        iso_datetimes,
        redactor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # drop disabled levels before any work is done
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if use_json else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def _identity(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    return event_dict


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
