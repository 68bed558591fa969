"""The ``md`` format: a Markdown report to paste into a ticket.

Summary, hosts, services, findings by severity (the verified ones: quality
``--min-quality`` or more), the unverified findings apart, and the nodes that did not
complete.
Every string from a target is escaped (``esc``): controls shown as ``\\xNN``, HTML
special characters as entities, Markdown's inline syntax and table pipes backslashed,
so a banner can neither format the ticket nor inject HTML into it.
"""

from __future__ import annotations

import re
from typing import Any

from pentora_plugins.kit import quality
from pentora_plugins.output.formats._model import Report, ReportWriter

from pentora import OutputFormat
from pentora import clean_text as clean

# a finding's evidence ends with how it was judged (the distribution's fixed version): keep it
EVIDENCE_CHARS = 400
_MD = re.compile(r"([\\`*_\[\]#@|~])")


def esc(value: Any, limit: int | None = 200) -> str:
    """Inert Markdown text (also safe inside a table cell)."""
    text = clean(value, limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD.sub(r"\\\1", text)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c or " " for c in row) + " |" for row in rows]
    return lines


def _summary(report: Report) -> list[str]:
    s = report.summary()
    findings = ", ".join(f"{n} {esc(sev)}" for sev, n in s["findings"].items()) or "none"
    nodes = ", ".join(f"{n} {esc(status)}" for status, n in sorted(s["nodes"].items())) or "none"
    duration = f"{s['duration_ms'] / 1000:.2f} s" if s["duration_ms"] is not None else "unknown"
    rows = [["Scan", esc(s["scan_id"] or "unknown")], ["Profile / DAG", esc(s["dag"] or "unknown")],
            ["Targets", esc(s["targets"] or "unknown")], ["Status", esc(s["status"])],
            ["Started", esc(s["started_at"] or "unknown")], ["Duration", duration],
            ["Hosts up", str(s["hosts_up"])], ["Open ports", str(s["open_ports"])],
            ["Findings", findings],
            ["Unverified", f"{s['unverified']} (quality below {s['min_quality']})"], ["Nodes", nodes]]
    return ["## Summary", "", *table(["", ""], rows)]


def _hosts(report: Report) -> list[str]:
    rows = [[esc(h.address), esc(h.hostname or ""), "up" if h.up else "down", esc(h.os),
             str(h.ports), str(h.findings)] for h in report.hosts()]
    body = table(["Host", "Hostname", "State", "OS", "Open ports", "Findings"], rows) if rows else [
        "No hosts found."]
    return ["## Hosts", "", *body]


def _services(report: Report) -> list[str]:
    rows = []
    for p in report.open_ports():
        detail = esc(p.http.get("title") or p.get("info") or "", 80)
        if p.webtech:
            detail = (detail + "; " if detail else "") + esc(", ".join(p.webtech), 120)
        rows.append([esc(p.host), f"{p.port}/{esc(p.protocol)}", esc(p.service_name),
                     esc(p.get("product") or ""), esc(p.get("version") or ""), detail, str(p.findings)])
    body = table(["Host", "Port", "Service", "Product", "Version", "Details", "Findings"], rows) \
        if rows else ["No open ports found."]
    return ["## Services", "", *body]


def _quality(v: dict[str, Any]) -> str:
    q = quality.quality_of(v)
    return "" if q is None else str(q) + (f" ({esc(v['method'])})" if v.get("method") else "")


def _id(v: dict[str, Any]) -> str:
    return esc(v.get("id")) + (" **KEV**" if v.get("known_exploited") is True else "")


def _findings(report: Report) -> list[str]:
    lines = ["## Findings by severity", ""]
    groups = report.by_severity()
    if not groups:
        return [*lines, f"No verified findings (quality {report.min_quality} or more)."]
    for severity, items in groups:
        lines += [f"### {esc(severity.capitalize())} ({len(items)})", ""]
        rows = [[esc(v.get("host")), str(v["port"]) if v.get("port") is not None else "host",
                 _id(v), esc(v.get("title") or ""),
                 str(v["cvss"]) if v.get("cvss") is not None else "", _quality(v),
                 esc(v.get("evidence") or "", EVIDENCE_CHARS)]
                for v in items]
        lines += [*table(["Host", "Port", "ID", "Title", "CVSS", "Quality", "Evidence"], rows), ""]
    return lines[:-1]


def _unverified(report: Report) -> list[str]:
    items = report.unverified()
    if not items:
        return []
    rows = [[esc(v.get("host")), str(v["port"]) if v.get("port") is not None else "host", _id(v),
             esc(v.get("severity") or "info"), _quality(v), esc(v.get("evidence") or "", EVIDENCE_CHARS)]
            for v in items]
    head = (f"## {quality.UNVERIFIED_TITLE.capitalize()} ({len(items)})")
    note = (f"Quality below {report.min_quality}: not counted above; `--min-quality 0` shows them "
            "as findings.")
    return [head, "", note, "", *table(["Host", "Port", "ID", "Severity", "Quality", "Why"], rows)]


def _problems(report: Report) -> list[str]:
    bad = [n for n in report.graph() if n.status in ("failed", "cancelled")]
    if not bad:
        return []
    rows = [[esc(n.id), esc(n.module_type), esc(n.status), esc(n.detail, 300)] for n in bad]
    return ["## Nodes that did not complete", "", *table(["Node", "Module", "Status", "Error"], rows)]


def _target_errors(report: Report) -> list[str]:
    errors = report.by_kind.get("target_error", [])
    if not errors:
        return []
    rows = [[esc(e.get("spec")), esc(e.get("source") or ""), esc(e.get("error"), 300)] for e in errors]
    return ["## Targets that could not be used", "", *table(["Target", "Source", "Error"], rows)]


def render(report: Report) -> str:
    title = esc((report.scan or {}).get("dag") or "scan")
    sections = [[f"# pentora report: {title}"], _summary(report), _hosts(report), _services(report),
                _findings(report), _unverified(report), _problems(report), _target_errors(report)]
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"


class MarkdownWriter(ReportWriter):
    format_name = "md"

    def render(self, report: Report) -> str:
        return render(report)


FORMAT = OutputFormat("md", "Markdown report for a ticket: summary, hosts, services, findings by severity",
                      open=MarkdownWriter, extensions=(".md", ".markdown"), takes_stream=True)
