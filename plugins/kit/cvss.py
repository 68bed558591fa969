"""CVSS v3.x base scores from vector strings (OSV gives vectors, not scores).

The equations and the round-up are those of the CVSS v3.1 specification, section 7
(https://www.first.org/cvss/v3.1/specification-document); v3.0 vectors score the same
for all but rare edge cases of the round-up.
"""

from __future__ import annotations

import math

_WEIGHTS = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}
_BASE = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


class CvssError(ValueError):
    """Not a CVSS v3 vector; the message says what is wrong."""


def roundup(value: float) -> float:
    """The specification's Roundup: the smallest one-decimal number >= value."""
    scaled = round(value * 100000)
    if scaled % 10000 == 0:
        return scaled / 100000.0
    return (math.floor(scaled / 10000) + 1) / 10.0


def parse_vector(vector: str) -> dict[str, str]:
    parts = vector.strip().split("/")
    if not parts or parts[0] not in ("CVSS:3.0", "CVSS:3.1"):
        raise CvssError(f"expected a vector starting CVSS:3.1/ or CVSS:3.0/, got {vector!r}")
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        name, _, value = part.partition(":")
        if not value or name in metrics:
            raise CvssError(f"malformed metric {part!r} in {vector!r}")
        metrics[name] = value
    missing = [m for m in _BASE if m not in metrics]
    if missing:
        raise CvssError(f"{vector!r} lacks base metric(s) {', '.join(missing)}")
    return metrics


def base_score(vector: str) -> float:
    """The base score of a CVSS v3.0/v3.1 vector (``CVSS:3.1/AV:N/AC:L/...`` → 9.8)."""
    m = parse_vector(vector)
    scope = m["S"]
    if scope not in _PR:
        raise CvssError(f"unknown value S:{scope} in {vector!r} (S:U or S:C)")
    w: dict[str, float] = {}
    for name, weights in (*_WEIGHTS.items(), ("PR", _PR[scope])):
        if m[name] not in weights:
            raise CvssError(f"unknown value of metric {name} ({name}:{m[name]}) in {vector!r}; "
                            f"expected {', '.join(weights)}")
        w[name] = weights[m[name]]
    pr = w["PR"]
    iss = 1 - (1 - w["C"]) * (1 - w["I"]) * (1 - w["A"])
    if scope == "U":
        impact = 6.42 * iss
    else:
        impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploitability = 8.22 * w["AV"] * w["AC"] * pr * w["UI"]
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return roundup(min(total, 10.0))
