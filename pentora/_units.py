"""Durations (``500ms``, ``2s``, ``10m``, ``1h``) and sizes (``512KB``, ``1GB``)."""

from __future__ import annotations

import math
import re
from decimal import Decimal

MAX_BYTES = 64 * 1024 * 1024  # the largest DAG document pentora reads
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def parse_duration(value: object) -> float:
    """Seconds from ``2s``/``500ms``/``10m``/``1h``/``1d`` or a bare number (seconds)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '2s' or '500ms', got {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"a duration must be a finite number, got {value!r}")
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            if math.isfinite(seconds):
                return seconds
    raise ValueError(f"expected a duration such as '2s', '500ms', '10m' or '1h', got {value!r}")


def parse_size(value: object) -> int:
    """Bytes from ``1GB``/``512MiB``/``100KB`` or a bare integer (bytes)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '512MB' or '1GB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value!r}")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            unit = (m.group(2) or "b").lower()
            if len(m.group(1)) > 30:
                raise ValueError(f"size {value!r} is absurdly large")
            return int(Decimal(m.group(1)) * _SIZE_UNITS[unit])  # exact, no float overflow
    raise ValueError(f"expected a size such as '512MB' or '1GB', got {value!r}")


def format_duration(seconds: float) -> str:
    """The shortest readable form: ``30s``, ``500ms``, ``1.5s``, ``10m``."""
    if 0 < seconds < 1:
        return f"{_plain(seconds * 1000)}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{_plain(seconds / size)}{unit}"
    return f"{_plain(seconds)}s"


def _plain(number: float) -> str:
    """A number without exponent notation, so ``parse_duration`` reads it back."""
    text = f"{number:.6f}".rstrip("0").rstrip(".")
    return text or "0"
