"""Typed settings shared by every module: parsed once from the environment, then updated by twin patches.

Each field of a `Settings` model names its environment variable in `json_schema_extra={"env": "NAME"}`
(default: the field name upper-cased). Twin desired properties may use either the variable name or the
field name, in any case, so a manifest can say `"THRESHOLD": 0.7` or `"threshold": 0.7`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from edgevision.errors import EdgeVisionError


class ConfigError(EdgeVisionError, ValueError):
    """A setting has an invalid value; the message names the variable."""


def env_name(model: type[BaseModel], field: str) -> str:
    extra = model.model_fields[field].json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("env"), str):
        return extra["env"]
    return field.upper()


class Settings(BaseModel):
    """Base class for module settings. Booleans accept true/false/1/0/yes/no/on/off in any case."""

    model_config = ConfigDict(extra="forbid", validate_default=True, str_strip_whitespace=True)

    # Fields that a twin patch may not change (e.g. the port a server is bound to).
    static_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Environment variable name -> field name."""
        return {env_name(cls, field): field for field in cls.model_fields}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any):
        """Read every field from its environment variable; empty strings count as unset."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for var, field in cls.env_names().items():
            raw = environ.get(var)
            if raw is not None and raw.strip() != "":
                values[field] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls._validated(values)

    def updated(self, changes: Mapping[str, Any]):
        """A copy with `changes` applied (keys: field or variable names, any case). Unknown keys and
        twin metadata (`$version`) are ignored; invalid values raise ConfigError naming the property."""
        by_name = {name.lower(): field for name, field in self.env_names().items()}
        by_name.update({field.lower(): field for field in type(self).model_fields})
        values = self.model_dump()
        for key, value in changes.items():
            field = by_name.get(str(key).lower())
            if field is None or field in self.static_fields or value is None:
                continue
            values[field] = value
        return type(self)._validated(values)

    def reported(self) -> dict[str, Any]:
        """The effective settings as JSON-friendly reported properties, keyed by variable name."""
        data = self.model_dump(mode="json")
        return {env_name(type(self), field): value for field, value in data.items()}

    @classmethod
    def _validated(cls, values: dict[str, Any]):
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(_describe(cls, exc)) from None


def _describe(model: type[Settings], exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        name = env_name(model, field) if field in model.model_fields else field or "settings"
        value = err.get("input")
        shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
        problems.append(f"{name}: {err['msg']}{shown}")
    return "; ".join(problems)
