"""The base of every config model: unknown keys are errors, empty sections mean defaults."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_take_defaults(cls, data: Any) -> Any:
        """A section left empty in YAML (``catalog:`` with only comments) means "all defaults"."""
        if isinstance(data, dict):
            return {
                key: value
                for key, value in data.items()
                if not (
                    value is None
                    and key in cls.model_fields
                    and cls.model_fields[key].default_factory is not None
                )
            }
        return data
