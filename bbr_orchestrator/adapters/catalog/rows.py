"""Values on their way into the catalog's tables, and what a refused write says about itself."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, Text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import String, TypeEngine

from bbr_orchestrator.errors import CatalogError


def checked(url: str, table: Table, values: Mapping[str, object]) -> dict[str, Any]:
    """Values ready to bind: enums as strings, datetimes checked aware, strings fit.

    A string longer than its column is a ``CatalogError`` naming the catalog (``url``, masked),
    the column and its limit.
    """
    out: dict[str, Any] = {}
    for name, value in values.items():
        column = table.c[name]
        if isinstance(value, datetime):
            value = aware(f"{table.name}.{name}", value)
        elif isinstance(value, str):
            if isinstance(value, StrEnum):
                value = value.value
            if isinstance(column.type, Text):
                value = value.replace("\x00", "\ufffd")
            elif len(value) > (limit := max_length(column.type, len(value))):
                raise CatalogError(
                    url,
                    f"{table.name}.{name} is {len(value)} characters long; "
                    f"the catalog holds at most {limit}",
                )
        out[name] = value
    return out


def max_length(type_: TypeEngine[Any], default: int) -> int:
    """The length limit of a ``VARCHAR`` column; ``default`` when it has none."""
    length = type_.length if isinstance(type_, String) else None
    return default if length is None else length


def aware(what: str, value: datetime) -> datetime:
    """``value``, refused (``ValueError`` naming ``what``) unless it is timezone-aware."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: the catalog needs a timezone-aware datetime, got {value!r}")
    return value


def violates(exc: IntegrityError, constraint: str, sqlite_column: str) -> bool:
    """Whether ``exc`` is the violation of the named unique constraint.

    PostgreSQL and MySQL name the constraint; SQLite names its columns (``table.column``).
    """
    message = str(exc.orig)
    return constraint in message or f"failed: {sqlite_column}" in message


class Refused(Exception):
    """A statement inside a write transaction broke a constraint (never leaves the adapter).

    Raised from inside the transaction (so it rolls back, and no later statement runs) and
    explained after it by the caller, which knows what the statement meant to do.
    """

    def __init__(self, subject: str, cause: IntegrityError) -> None:
        super().__init__(subject)
        self.subject = subject
        self.cause = cause
