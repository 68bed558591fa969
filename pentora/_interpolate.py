"""``${var}`` in node config values, resolved from DAG vars (and ``--set``) at plan time.

A value that is exactly ``${name}`` takes the variable's value with its type (a list
stays a list); ``${name}`` inside a longer string is replaced by its text.
"""

from __future__ import annotations

import re
from typing import Any

VAR_REFERENCE = re.compile(r"\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


class UnknownVariableError(KeyError):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.name, self.path = name, path


def interpolate(value: Any, variables: dict[str, Any], path: str = "") -> Any:
    if isinstance(value, str):
        whole = VAR_REFERENCE.fullmatch(value.strip())
        if whole:
            return _lookup(whole.group(1), variables, path)
        if "${" in value:
            return VAR_REFERENCE.sub(lambda m: str(_lookup(m.group(1), variables, path)), value)
        return value
    if isinstance(value, dict):
        return {k: interpolate(v, variables, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _lookup(name: str, variables: dict[str, Any], path: str) -> Any:
    if name not in variables:
        raise UnknownVariableError(name, path)
    return variables[name]
