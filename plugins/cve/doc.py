"""Path-aware reads of a parsed catalog document, for error messages that help."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from pentora_plugins.cve.catalog import CatalogError

_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "true or false",
               int: "an integer", float: "a number"}


class Doc:
    """Path-aware reads of a parsed document: errors name the file and the JSON path."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, path: str, message: str) -> NoReturn:
        raise CatalogError(f"{self.name}: {path}: {message}")

    def need(self, value: Any, path: str, *kinds: type) -> Any:
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        else:
            ok = isinstance(value, kinds)
        if not ok:
            wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            got = "nothing" if value is None else f"{type(value).__name__} {_short(value)}"
            self.fail(path, f"expected {wanted}, got {got}")
        return value

    def field(self, obj: dict[str, Any], key: str, path: str, *kinds: type,
              required: bool = True, default: Any = None) -> Any:
        if key not in obj or obj[key] is None:
            if required:
                self.fail(f"{path}.{key}", "missing required field")
            return default
        return self.need(obj[key], f"{path}.{key}", *kinds)


def one_line(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters (``...`` where cut)."""
    line = " ".join(text[:limit * 4].split())  # a feed's text may be of any length
    return line if len(line) <= limit else line[:limit - 3].rstrip() + "..."


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
