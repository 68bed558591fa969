"""Several nodes feed the one ``vulnerabilities`` key (the CVE matcher and every
misconfiguration check); each merges its findings into what is already there."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pentora_plugins.kit.records import Vulnerability

    from pentora import NodeContext

KEY = "vulnerabilities"
SEVERITIES = ("info", "low", "medium", "high", "critical")


def severity_of(cvss: float | None) -> str:
    """CVSS v3 qualitative rating of a base score (None → info)."""
    if cvss is None or cvss <= 0:
        return "info"
    if cvss < 4.0:
        return "low"
    if cvss < 7.0:
        return "medium"
    if cvss < 9.0:
        return "high"
    return "critical"


def add_vulnerabilities(ctx: NodeContext, found: Iterable[Vulnerability]) -> list[Vulnerability]:
    """Merge findings into ``vulnerabilities`` (one per host, port and id), emitting the new ones.

    The read and the write happen with no greenlet switch in between, so two check nodes
    running at once cannot lose each other's findings.
    """
    # The records on first use: ``SEVERITIES`` is what the command line's --fail-on offers.
    from pentora_plugins.kit.records import sorted_records

    merged = {(v.host, v.port, v.id): v for v in ctx.get(KEY, [])}
    for v in found:
        key = (v.host, v.port, v.id)
        if key not in merged:  # one finding per host, port and id, announced once
            merged[key] = v
            ctx.emit(v)
    out = sorted_records(merged.values())
    ctx.set(KEY, out)
    return out
