"""The ``summary`` format: the readable table ``pentora scan`` prints to the terminal.

Reads the finished scan's DataContext (hosts, open ports, services) and the node
records. Every string from a target or the DAG file passes through ``clean`` first:
control characters and ANSI escapes from a hostile banner never reach the terminal raw.
The whole text is cleaned once more as it is written, line breaks kept.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from pentora_plugins.kit import quality
from pentora_plugins.output._views import min_quality_of

from pentora import OutputFormat, atomic_output
from pentora import clean_text as clean  # the one terminal-safe helper

__all__ = ["FORMAT", "OPEN_ONLY", "REASON", "SummaryWriter", "clean", "render", "table"]

# The scan options (``scan.options``) of nmap's --open and --reason, for every writer.
OPEN_ONLY, REASON = "open_only", "reason"


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


class SummaryWriter:
    def __init__(self, target: str | IO[str] = "-",
                 min_quality: int = quality.DEFAULT_MIN_QUALITY, open_only: bool = False,
                 reason: bool = False) -> None:
        self.min_quality = min_quality
        self.open_only, self.reason = open_only, reason
        self.owned = isinstance(target, str) and target != "-"
        self.stream: IO[str]
        if not isinstance(target, str):
            self.stream = target
        elif target == "-":
            self.stream = sys.stdout
        else:
            self.stream = atomic_output(target)  # type: ignore[assignment]

    def start(self, scan: Any) -> None:
        """As an ``-o`` file: the scan's ``--min-quality`` (``scan.options``)."""
        self.min_quality = min_quality_of(scan.options)
        self.open_only = bool((scan.options or {}).get(OPEN_ONLY))
        self.reason = bool((scan.options or {}).get(REASON))

    def record(self, kind: str, record: Any) -> None:
        """The summary is drawn from the finished scan, not from the stream."""

    def close(self, result: Any) -> None:
        if result is not None:
            # The last safety pass, for a terminal or a file alike: this format is for reading,
            # and a field a future row forgets to clean must still not reach a terminal raw.
            text = render(result, self.min_quality, open_only=self.open_only, reason=self.reason)
            self.stream.write(clean(text, None, lines=True) + "\n")
            self.stream.flush()
        if self.owned:
            self.stream.close()


def render(result: Any, min_quality: int = quality.DEFAULT_MIN_QUALITY, open_only: bool = False,
           reason: bool = False) -> str:
    """The summary; ``open_only`` (nmap's ``--open``) leaves out the count of ports that
    did not answer, ``reason`` (``--reason``) adds the REASON column: what the port said."""
    ctx = result.context
    services = {(_get(s, "host"), _get(s, "port"), _get(s, "protocol")): s
                for s in ctx.get("service_fingerprints", [])}
    rows = [["HOST", "PORT", "STATE", *(["REASON"] if reason else []), "SERVICE", "PRODUCT", "VERSION"]]
    for p in ctx.get("open_ports", []):
        key = (_get(p, "host"), _get(p, "port"), _get(p, "protocol"))
        svc = services.get(key)
        service = clean(_get(svc, "service") if svc else "")
        if svc and _get(svc, "tls") and service:
            service = f"ssl/{service}"  # as nmap writes a service found inside TLS
        rows.append([clean(key[0]), f"{key[1]}/{key[2]}", clean(_get(p, "state")),
                     *([clean(_get(p, "reason") or "")] if reason else []), service,
                     clean(_get(svc, "product") if svc else ""),
                     clean(_get(svc, "version") if svc else "")])
    lines = []
    hosts = [h for h in ctx.get("discovered_hosts", []) if _get(h, "alive")]
    if ctx.has("discovered_hosts"):
        lines.append(f"{len(hosts)} host(s) up")
    if len(rows) > 1:
        lines.append(table(rows))
    elif ctx.has("open_ports"):
        lines.append("no open ports found")
    silent = ctx.get("port_states", [])
    if silent and not open_only:  # as nmap's "Not shown:" line, which --open drops
        lines.append(f"not shown: {len(silent)} filtered port(s) (no answer)")
    if ctx.has("vulnerabilities"):
        lines.extend(findings(ctx.get("vulnerabilities"), min_quality))
    failed = [r for r in result.nodes.values() if r.status in ("failed", "cancelled")]
    for r in failed:
        lines.append(f"node {clean(r.node, None)} {r.status}: {clean(r.error or r.reason, 200)}")
    for failure in getattr(result, "hook_errors", ()):
        lines.append(f"plugin {clean(failure['plugin'])} failed in {clean(failure['hook'])}: "
                     f"{clean(failure['error'], 200)}")
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts().items()))
    lines.append(f"scan {clean(result.scan_id)} {result.status} in {result.duration_ms / 1000:.2f}s "
                 f"({counts})")
    return "\n".join(lines)


SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
MAX_FINDINGS = 40  # more would scroll the table away: the -o reports have them all


def findings(vulns: list[Any], min_quality: int = quality.DEFAULT_MIN_QUALITY) -> list[str]:
    """The findings block: the verified ones (quality ``min_quality`` or more, or none
    stated), counted by severity, worst first; then the unverified ones, apart."""
    if not vulns:
        return ["no findings"]
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    ordered = sorted(vulns, key=lambda v: (rank.get(_get(v, "severity"), len(rank)),
                                           -(_get(v, "cvss") or 0), str(_get(v, "host")),
                                           _get(v, "port") or 0, str(_get(v, "id"))))
    verified, unverified = quality.split(ordered, min_quality)
    out = _verified(verified, min_quality)
    if unverified:
        out += _unverified(unverified, min_quality)
    return out


def _where(v: Any) -> str:
    return clean(_get(v, "host")) + (f":{clean(_get(v, 'port'))}" if _get(v, "port") else "")


def _quality(v: Any) -> str:
    q = quality.quality_of(v)
    return "-" if q is None else str(q)


def _kev(v: Any) -> str:
    return "KEV" if _get(v, "known_exploited") is True else ""


def _verified(ordered: list[Any], min_quality: int) -> list[str]:
    if not ordered:
        return [f"no verified findings (quality >= {min_quality})"]
    counts: dict[str, int] = {}
    for v in ordered:
        counts[_get(v, "severity")] = counts.get(_get(v, "severity"), 0) + 1
    head = ", ".join(f"{n} {clean(s)}" for s, n in counts.items())
    rows = [["SEVERITY", "WHERE", "FINDING", "KEV", "QUALITY", "TITLE"]]
    for v in ordered[:MAX_FINDINGS]:
        rows.append([clean(_get(v, "severity")).upper(), _where(v), clean(_get(v, "id")), _kev(v),
                     _quality(v), clean(_get(v, "title"), 70)])
    out = [f"{len(ordered)} finding(s): {head}", table(rows)]
    if len(ordered) > MAX_FINDINGS:
        out.append(f"... and {len(ordered) - MAX_FINDINGS} more (write them with -o FILE.html|md|json)")
    return out


def _unverified(ordered: list[Any], min_quality: int) -> list[str]:
    """Briefly: where, what, how sure, and why it is unsure (the method's reason; the
    evidence for a method the scale does not know)."""
    rows = [["WHERE", "FINDING", "KEV", "QUALITY", "WHY"]]
    for v in ordered[:MAX_FINDINGS]:
        why = clean(quality.WHY.get(_get(v, "method")) or _get(v, "evidence") or _get(v, "method") or "", 70)
        rows.append([_where(v), clean(_get(v, "id")), _kev(v), _quality(v), why])
    out = [f"{quality.UNVERIFIED_TITLE} ({len(ordered)}, quality < {min_quality}; "
           "--min-quality 0 shows them as findings)", table(rows)]
    if len(ordered) > MAX_FINDINGS:
        out.append(f"... and {len(ordered) - MAX_FINDINGS} more (write them with -o FILE.html|md|json)")
    return out


FORMAT = OutputFormat("summary", "readable table of hosts, ports and services (the terminal view)",
                      open=SummaryWriter, extensions=(".txt",), takes_stream=True)
