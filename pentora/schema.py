"""voluptuous validators shared by the DAG format and module config schemas.

Module authors use these in ``config_schema`` so that every module reads durations,
sizes and port lists the same way::

    config_schema = {
        Optional("timeout", default="2s", description="per-probe timeout"): Duration(),
    }
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from ._units import parse_duration, parse_size


def Duration(min: float | None = None) -> Any:  # noqa: N802 - reads like a type in schemas
    """A duration (``500ms``, ``2s``, ``10m``, ``1h`` or seconds) coerced to float seconds."""

    def validate(value: object) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            raise vol.Invalid(str(e)) from e
        if min is not None and seconds < min:
            raise vol.Invalid(f"must be at least {min}s, got {value!r}")
        return seconds

    validate.__name__ = "duration"
    return validate


def Size() -> Any:  # noqa: N802
    """A size (``512KB``, ``1GB`` or bytes) coerced to int bytes."""

    def validate(value: object) -> int:
        try:
            return parse_size(value)
        except ValueError as e:
            raise vol.Invalid(str(e)) from e

    validate.__name__ = "size"
    return validate


def PositiveInt() -> Any:  # noqa: N802
    """An integer >= 1 (booleans are not integers here)."""

    def validate(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise vol.Invalid(f"expected a positive integer, got {value!r}")
        if value < 1:
            raise vol.Invalid(f"must be at least 1, got {value!r}")
        return value

    validate.__name__ = "positive integer"
    return validate


def Int(min: int | None = None, max: int | None = None) -> Any:  # noqa: N802
    """An integer (booleans are not integers here), optionally bounded."""

    def validate(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise vol.Invalid(f"expected an integer, got {value!r}")
        if (min is not None and value < min) or (max is not None and value > max):
            if max is None:
                raise vol.Invalid(f"must be at least {min}, got {value}")
            raise vol.Invalid(f"must be between {min if min is not None else '-∞'} and {max}, got {value}")
        return value

    validate.__name__ = ("integer" if min is None and max is None else
                         f"integer >= {min}" if max is None else f"integer {min}-{max}")
    return validate


def Rate(unit: str) -> Any:  # noqa: N802
    """A rate in ``unit`` per second, >= 0, as float; 0 conventionally means unlimited."""

    def validate(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise vol.Invalid(f"expected a number of {unit} per second >= 0, got {value!r}")
        return float(value)

    validate.__name__ = f"{unit} per second"
    return validate


def Fraction() -> Any:  # noqa: N802
    """A number from 0 to 1 (a confidence, a share), as float."""

    def validate(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise vol.Invalid(f"expected a number from 0 to 1, got {value!r}")
        return float(value)

    validate.__name__ = "number 0-1"
    return validate


def Bool() -> Any:  # noqa: N802
    """A real boolean: YAML ``true``/``false``, not ``"yes"`` or ``1``."""

    def validate(value: object) -> bool:
        if not isinstance(value, bool):
            raise vol.Invalid(f"expected true or false, got {value!r}")
        return value

    validate.__name__ = "boolean"
    return validate


def Str() -> Any:  # noqa: N802
    def validate(value: object) -> str:
        if not isinstance(value, str):
            raise vol.Invalid(f"expected a string, got {type(value).__name__} {value!r}")
        return value

    validate.__name__ = "string"
    return validate


def StrList() -> Any:  # noqa: N802
    """A list of strings; a single string is taken as a one-item list."""

    def validate(value: object) -> list[str]:
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise vol.Invalid(f"expected a list of strings, got {type(value).__name__} {value!r}")
        for item in value:
            if not isinstance(item, str):
                raise vol.Invalid(
                    f"expected a list of strings, got item {item!r} ({type(item).__name__})"
                )
        return list(value)

    validate.__name__ = "list of strings"
    return validate


def Nullable(validator: Any) -> Any:  # noqa: N802
    """``None`` or ``validator``; unlike ``vol.Any(None, X)`` a bad value gets X's own message."""
    inner = vol.Schema(validator)

    def validate(value: object) -> Any:
        return None if value is None else inner(value)

    validate.__name__ = f"{describe_validator(validator)} or null"
    validate.pentora_inner = validator  # type: ignore[attr-defined]  # for did-you-mean on keys
    return validate


def describe_validator(validator: Any) -> str:
    """A short human name for a schema value, for ``pentora modules show``."""
    if validator is None:
        return "null"
    if isinstance(validator, vol.Coerce):
        return describe_validator(validator.type)
    if isinstance(validator, type):
        return validator.__name__
    if isinstance(validator, vol.In):
        return "one of " + ", ".join(repr(v) for v in validator.container)  # type: ignore[union-attr]
    if isinstance(validator, (vol.Any,)):
        return " | ".join(describe_validator(v) for v in validator.validators)
    if isinstance(validator, vol.All):
        return describe_validator(validator.validators[0])
    if isinstance(validator, (list, tuple)):
        inner = ", ".join(describe_validator(v) for v in validator)
        return f"list of {inner}" if inner else "list"
    if isinstance(validator, dict):
        return "mapping"
    if isinstance(validator, vol.Schema):
        return describe_validator(validator.schema)
    name = getattr(validator, "__name__", None)
    if name and name != "<lambda>":
        return name
    return type(validator).__name__
