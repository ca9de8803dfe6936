"""Typed, range-checked config fields, and errors that name the file, the field, what was expected
and what was found.

Configs are frozen dataclasses made with ``pydantic.dataclasses.dataclass(config=STRICT)``, or
with :func:`config_dataclass`, which is the same and turns a failed construction into one plain
``ValueError``: each field is checked on construction against its annotation, using the aliases
below (no silent coercion: ``"3"`` is not an int, ``1`` is not a bool, NaN is not a float).
``build`` turns the errors pydantic collects into one ``ValueError`` that lists every problem by
its dotted path, prefixed by the source (a file's path). Config files are read with
``checkpoint_io.read_json``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import reprlib
import typing
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, AllowInfNan, ConfigDict, Field, Strict, ValidationError, ValidationInfo
from pydantic.dataclasses import dataclass as pydantic_dataclass

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
# A model dimension or count: far above any real model, and the product of two stays inside the
# 64-bit element counts of a tensor, so no shape built from a config overflows.
MAX_SIZE = 2**31 - 1
Size = Annotated[int, Strict(), Field(ge=1, le=MAX_SIZE)]


T = TypeVar("T")


class ConfigError(ValueError):
    """A config that failed its checks: every problem, each naming its dotted field."""

    def __init__(self, cls: type, errors: list[dict[str, Any]]) -> None:
        self.cls, self.errors = cls, errors
        super().__init__("; ".join(describe(cls, errors)))


def config_dataclass(cls: type[T]) -> type[T]:
    """``pydantic.dataclasses.dataclass(frozen=True, config=STRICT)``, whose failed construction
    raises one ``ConfigError`` (a ``ValueError``) listing every bad field, instead of pydantic's
    multi-line report. ``dataclasses.replace``, ``asdict`` and ``fields`` work as on any dataclass."""
    cls = pydantic_dataclass(frozen=True, config=STRICT)(cls)
    validate = cls.__init__

    @functools.wraps(validate)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            validate(self, *args, **kwargs)
        except ValidationError as e:
            raise ConfigError(cls, e.errors()) from None

    cls.__init__ = __init__
    return cls


def build(cls: type[T], values: dict[str, Any], source: str, aliases: dict[str, str] | None = None) -> T:
    """``cls(**values)``, or one ``ValueError`` naming ``source`` and every bad field.

    ``aliases`` renames fields in the report, for values read from a file that names them
    otherwise (a Hugging Face ``config.json``: ``num_heads`` is its ``num_attention_heads``)."""
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a table of fields, got {type(values).__name__}")
    try:
        return cls(**values)
    except ValidationError as e:
        errors = e.errors()
    except ConfigError as e:
        errors = e.errors
    raise ValueError(f"{source}: " + "; ".join(describe(cls, errors, aliases))) from None


def describe(cls: type, errors: list[dict[str, Any]], aliases: dict[str, str] | None = None) -> list[str]:
    """One line per problem of a pydantic error list, each naming its dotted field."""
    errors = [{**error, "loc": _field_path(error["loc"])} for error in errors]
    paths = [error["loc"] for error in errors]
    # A value that fits no member of a union (``str | Table``) fails each member: report the
    # member it was meant for (the deeper errors), not "should be a valid string" as well.
    kept = [error for error in errors
            if not any(len(p) > len(error["loc"]) and p[: len(error["loc"])] == error["loc"] for p in paths)]
    if aliases:
        kept = [{**error, "loc": tuple(aliases.get(part, part) if i == 0 else part
                                       for i, part in enumerate(error["loc"]))} for error in kept]
    return [_describe(cls, error) for error in kept]


def _field_path(loc: tuple) -> tuple:
    """``loc`` without the tags pydantic adds for union members (``str``, ``TextTokenizerTraining``)."""
    return tuple(part for part in loc
                 if not (isinstance(part, str) and (part[:1].isupper() or "[" in part or part in _TYPE_TAGS)))


_TYPE_TAGS = {"str", "int", "float", "bool", "none"}


def _describe(cls: type, error: dict[str, Any]) -> str:
    path = ".".join(str(part) for part in error["loc"])
    if error["type"] == "value_error":  # raised by a config's own checks, which name their fields
        message = str(error["ctx"]["error"])
        field = str(error["loc"][-1]) if error["loc"] else ""
        if field and message.startswith(f"{field} "):  # "steps must be ...": the check named its field
            parent = ".".join(str(part) for part in error["loc"][:-1])
            return f"{parent}.{message}" if parent else message
        return (f"{path}: " if path else "") + message
    if error["type"] == "unexpected_keyword_argument":
        known = _known_fields(cls, error["loc"][:-1])
        return f"{path}: unknown field" + (f" (known: {', '.join(known)})" if known else "")
    if error["type"] == "missing_argument":
        return f"{path}: missing"
    message = error["msg"][:1].lower() + error["msg"][1:]  # "Input should be ..." -> "input should be ..."
    return f"{path}: {message}, got {shown(error['input'])}"


def _known_fields(cls: Any, parents: tuple) -> list[str]:
    """Field names of the dataclass found by following ``parents`` from ``cls`` (empty if none)."""
    for name in parents:
        if not dataclasses.is_dataclass(cls):
            return []
        cls = typing.get_type_hints(cls).get(name)
    return sorted(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []


# -- values in messages, and checks that name their field ---------------------------------------

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def shown(value: Any) -> str:
    """``repr(value)``, cut short for long or deeply nested values (a message stays one short line)."""
    return _REPR.repr(value)


def is_integer(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """An ``int`` or ``float`` (not a ``bool``) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def must(test: typing.Callable[[Any], bool], expected: str) -> AfterValidator:
    """A field check: a value failing ``test`` raises ``"<field> must be <expected>, got <value>"``.
    Several in one ``Annotated`` run in order, and the first that fails is reported."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if not test(value):
            raise ValueError(f"{info.field_name} must be {expected}, got {shown(value)}")
        return value

    return AfterValidator(check)


def unicode_problem(text: str) -> str | None:
    """Why ``text`` cannot be encoded as UTF-8 (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"a lone surrogate {text[e.start]!r} at character {e.start}, not valid Unicode text"
    return None
