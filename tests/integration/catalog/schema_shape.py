"""A backend-neutral description of a database's schema, to compare migrations across backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, String, inspect
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from bbr_orchestrator.adapters.catalog.schema import Database


def _type_family(type_: TypeEngine[Any]) -> str:
    if isinstance(type_, mysql.TINYINT) and type_.display_width == 1:
        return "boolean"  # MySQL's BOOLEAN is TINYINT(1), reflected as such
    generic = type_.as_generic()
    if isinstance(generic, Boolean):
        return "boolean"
    if isinstance(generic, DateTime):
        return "datetime"
    if isinstance(generic, BigInteger):
        return "bigint"
    if isinstance(generic, Integer):
        return "integer"
    if isinstance(generic, Float):
        return "float"
    if isinstance(generic, String):
        return f"varchar({generic.length})" if generic.length else "text"
    return type(generic).__name__


def describe_schema(url: str) -> dict[str, Any]:
    """Tables, columns (type family, nullability), keys, indexes and checks, backend-neutral."""
    db = Database(url)
    try:
        insp = inspect(db.engine)
        schema: dict[str, Any] = {}
        for table in sorted(insp.get_table_names()):
            indexes = {
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in insp.get_indexes(table)
            } | {
                (uq["name"], tuple(uq["column_names"]), True)
                for uq in insp.get_unique_constraints(table)
            }
            schema[table] = {
                "columns": [
                    (c["name"], _type_family(c["type"]), c["nullable"])
                    for c in insp.get_columns(table)
                ],
                "primary_key": insp.get_pk_constraint(table)["constrained_columns"],
                "foreign_keys": sorted(
                    (
                        tuple(fk["constrained_columns"]),
                        fk["referred_table"],
                        tuple(fk["referred_columns"]),
                        (fk["options"].get("ondelete") or "").upper(),
                    )
                    for fk in insp.get_foreign_keys(table)
                ),
                "indexes": sorted(indexes),
                "checks": sorted(str(ck["name"]) for ck in insp.get_check_constraints(table)),
            }
        return schema
    finally:
        db.dispose()
