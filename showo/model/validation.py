"""Typed, range-checked config fields, and errors that name the file, the field, what was expected
and what was found.

Configs are frozen dataclasses made with ``pydantic.dataclasses.dataclass(config=STRICT)``: each
field is checked on construction against its annotation, using the aliases below (no silent
coercion: ``"3"`` is not an int, ``1`` is not a bool, NaN is not a float). ``build`` turns the
errors pydantic collects into one ``ValueError`` that lists every problem by its dotted path.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, TypeVar

from pydantic import AllowInfNan, ConfigDict, Field, Strict, ValidationError

STRICT = ConfigDict(extra="forbid")

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), AllowInfNan(False)]  # an int is accepted: 1 is 1.0
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
PositiveFloat = Annotated[float, Strict(), AllowInfNan(False), Field(gt=0)]
NonNegativeFloat = Annotated[float, Strict(), AllowInfNan(False), Field(ge=0)]
Fraction = Annotated[float, Strict(), AllowInfNan(False), Field(ge=0, le=1)]

T = TypeVar("T")


def build(cls: type[T], values: dict[str, Any], source: str) -> T:
    """``cls(**values)``, or one ``ValueError`` naming ``source`` and every bad field."""
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a table of fields, got {type(values).__name__}")
    try:
        return cls(**values)
    except ValidationError as e:
        errors = [{**error, "loc": _field_path(error["loc"])} for error in e.errors()]
        paths = [error["loc"] for error in errors]
        # A value that fits no member of a union (``str | Table``) fails each member: report the
        # member it was meant for (the deeper errors), not "should be a valid string" as well.
        kept = [error for error in errors
                if not any(len(p) > len(error["loc"]) and p[: len(error["loc"])] == error["loc"] for p in paths)]
        raise ValueError(f"{source}: " + "; ".join(_describe(cls, error) for error in kept)) from None


def _field_path(loc: tuple) -> tuple:
    """``loc`` without the tags pydantic adds for union members (``str``, ``TextTokenizerTraining``)."""
    return tuple(part for part in loc
                 if not (isinstance(part, str) and (part[:1].isupper() or "[" in part or part in _TYPE_TAGS)))


_TYPE_TAGS = {"str", "int", "float", "bool", "none"}


def _describe(cls: type, error: dict[str, Any]) -> str:
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "value_error":  # raised by a config's own checks, which name their fields
        return (f"{path}: " if path else "") + str(error["ctx"]["error"])
    if error["type"] == "unexpected_keyword_argument":
        known = _known_fields(cls, error["loc"][:-1])
        return f"{path}: unknown field" + (f" (known: {', '.join(known)})" if known else "")
    if error["type"] == "missing_argument":
        return f"{path}: missing"
    return f"{path}: {error['msg'].lower()}, got {error['input']!r}"


def _known_fields(cls: Any, parents: tuple) -> list[str]:
    """Field names of the dataclass found by following ``parents`` from ``cls`` (empty if none)."""
    for name in parents:
        if not dataclasses.is_dataclass(cls):
            return []
        cls = typing.get_type_hints(cls).get(name)
    return sorted(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []
