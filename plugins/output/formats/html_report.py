"""The ``html`` format: one self-contained page a person reads in a browser.

Summary, sortable hosts and services tables, findings by severity (the verified ones:
quality ``--min-quality`` or more, with a Quality column and a KEV badge on known-exploited
ones), the unverified findings greyed in a section of their own, the DAG drawn with
each node coloured by its status, a timeline of node start/end times, and the node
table. No external script, font, stylesheet or image: the CSS and the small sorting
script are inlined and pinned by hash in the page's Content-Security-Policy. Every
string that came from a target or the DAG goes through ``esc`` (``clean`` then HTML
escaping), so a banner carrying ``<script>`` is shown as text.
"""

from __future__ import annotations

from typing import Any

from pentora_plugins.kit import quality
from pentora_plugins.kit.records import address_key
from pentora_plugins.output.formats._assets import CSS, JS, csp
from pentora_plugins.output.formats._model import STATUSES, PortView, Report, ReportWriter, epoch
from pentora_plugins.output.formats._svg import STATUS_COLORS, dag_svg, esc, timeline_svg

from pentora import OutputFormat, __version__


def address_sort_key(address: str) -> str:
    """``address_key`` as text the page's script compares: IPv4 numerically, then IPv6, then names."""
    rank, number, name = address_key(address)
    return f"{rank}:{number:039d}:{name.lower()}"


def _th(label: str, kind: str = "text") -> str:
    return f'<th data-type="{kind}" scope="col"><button type="button">{label}</button></th>'


def _td(value: Any, limit: int | None = 120, key: str | None = None, cls: str = "") -> str:
    attrs = (f' data-key="{esc(key, None)}"' if key is not None else "") + (f' class="{cls}"' if cls else "")
    return f"<td{attrs}>{esc(value, limit)}</td>"


def _summary(report: Report) -> str:
    s = report.summary()
    duration = f"{s['duration_ms'] / 1000:.2f} s" if s["duration_ms"] is not None else "unknown"
    cards = [("hosts up", s["hosts_up"]), ("open ports", s["open_ports"]),
             ("findings", sum(s["findings"].values())), ("duration", duration)]
    cards += [(f"{sev} findings", n) for sev, n in s["findings"].items()]
    cards.append((f"unverified (quality < {s['min_quality']})", s["unverified"]))
    body = "".join(f'<div class="card"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in cards)
    items = "".join(f"<li>target {esc(e.get('spec'))} not used: {esc(e.get('error'), 300)}</li>"
                    for e in report.by_kind.get("target_error", []))
    nodes = ", ".join(f"{n} {st}" for st, n in sorted(s["nodes"].items())) or "none"
    facts = (f'<p class="muted">scan <code>{esc(s["scan_id"] or "unknown")}</code> · targets '
             f'<code>{esc(s["targets"] or "unknown", 300)}</code> · status {esc(s["status"])} · '
             f"started {esc(s['started_at'] or 'unknown')} · nodes: {esc(nodes)}</p>")
    errors = f'<ul class="note" id="target-errors">{items}</ul>' if items else ""
    return f'<section id="summary"><h2>Summary</h2>{facts}<div class="cards">{body}</div>{errors}</section>'


def _hosts(report: Report) -> str:
    rows = "".join(
        "<tr>" + _td(h.address, key=address_sort_key(h.address)) + _td(h.hostname or "")
        + _td("up" if h.up else "down") + _td(h.os) + _td(h.ports, key=str(h.ports))
        + _td(h.findings, key=str(h.findings)) + "</tr>" for h in report.hosts())
    head = (_th("Host") + _th("Hostname") + _th("State") + _th("OS") + _th("Open ports", "num")
            + _th("Findings", "num"))
    return (f'<section id="hosts"><h2>Hosts</h2><table id="hosts-table" class="sortable"><thead><tr>'
            f"{head}</tr></thead><tbody>{rows}</tbody></table></section>")


def _details(p: PortView) -> str:
    bits = []
    if p.http.get("status") is not None:
        bits.append(f"HTTP {p.http.get('status')}")
    if p.http.get("title"):
        bits.append(f"title: {p.http['title']}")
    if p.get("info"):
        bits.append(str(p.get("info")))
    if p.webtech:
        bits.append("tech: " + ", ".join(p.webtech))
    return "; ".join(bits)


def _services(report: Report) -> str:
    rows = []
    for p in report.open_ports():
        rows.append("<tr>" + _td(p.host, key=address_sort_key(p.host)) + _td(p.port, key=str(p.port))
                    + _td(p.protocol) + _td(p.state) + _td(p.service_name) + _td(p.get("product") or "")
                    + _td(p.get("version") or "") + _td(_details(p), 200, cls="detail")
                    + _td(p.banner, 160, cls="banner") + _td(p.findings, key=str(p.findings)) + "</tr>")
    head = (_th("Host") + _th("Port", "num") + _th("Proto") + _th("State") + _th("Service")
            + _th("Product") + _th("Version") + _th("Details") + _th("Banner") + _th("Findings", "num"))
    table = '<p class="note">No open ports found.</p>'
    if rows:
        table = (f'<table id="services" class="sortable"><thead><tr>{head}</tr></thead>'
                 f'<tbody>{"".join(rows)}</tbody></table>')
    return f'<section id="services-section"><h2>Services</h2>{table}</section>'


def _id_cell(v: dict[str, Any]) -> str:
    kev = ('<span class="kev" title="listed in CISA\'s Known Exploited Vulnerabilities">KEV</span>'
           if v.get("known_exploited") is True else "")
    return f"<td>{esc(v.get('id'), 120)}{kev}</td>"


def _quality_cell(v: dict[str, Any]) -> str:
    q = quality.quality_of(v)
    text = "" if q is None else str(q) + (f" ({v['method']})" if v.get("method") else "")
    return _td(text, key=str(-1 if q is None else q), cls="quality")


def _finding_row(v: dict[str, Any], cls: str = "") -> str:
    attrs = f' class="{cls}"' if cls else ""
    return (f"<tr{attrs}>" + _td(v.get("host"), key=address_sort_key(str(v.get("host"))))
            + _td(v.get("port") if v.get("port") is not None else "host") + _id_cell(v)
            + _td(v.get("title") or "", 200) + _td(v.get("cvss") if v.get("cvss") is not None else "")
            + _quality_cell(v) + _td(v.get("evidence") or "", 300, cls="detail") + "</tr>")


def _findings_head() -> str:
    return ("<thead><tr>" + _th("Host") + _th("Port") + _th("ID") + _th("Title") + _th("CVSS", "num")
            + _th("Quality", "num") + _th("Evidence") + "</tr></thead>")


def _findings(report: Report) -> str:
    groups = report.by_severity()
    parts = ['<section id="findings"><h2>Findings by severity</h2>']
    if not groups:
        parts.append(f'<p class="note">No verified findings (quality {report.min_quality} or more).</p>')
    for sev, items in groups:
        rows = "".join(_finding_row(v) for v in items)
        parts.append(f'<h3><span class="sev sev-{esc(sev)}">{esc(sev)}</span> {len(items)}</h3>'
                     f'<table class="sortable findings">{_findings_head()}<tbody>{rows}</tbody></table>')
    return "".join(parts) + "</section>"


def _unverified(report: Report) -> str:
    items = report.unverified()
    if not items:
        return ""
    rows = "".join(_finding_row(v, "unverified") for v in items)
    title = quality.UNVERIFIED_TITLE.capitalize()
    return (f'<section id="unverified"><h2>{esc(title)} ({len(items)})</h2>'
            f'<p class="note">Quality below {report.min_quality}: not counted above; '
            "<code>--min-quality 0</code> shows them as findings.</p>"
            f'<table id="unverified-table" class="sortable findings">{_findings_head()}'
            f"<tbody>{rows}</tbody></table></section>")


def _legend() -> str:
    return '<p class="legend">' + "".join(
        f'<span><i class="st-{s}"></i>{s}</span>' for s in STATUSES if s in STATUS_COLORS) + "</p>"


def _nodes_table(report: Report) -> str:
    rows = "".join(
        "<tr>" + _td(n.id) + _td(n.module_type) + _td(n.status)
        + _td(f"{n.duration_ms:.1f}" if isinstance(n.duration_ms, int | float) else "",
              key=str(n.duration_ms or 0)) + _td(n.detail, 300, cls="detail") + "</tr>"
        for n in report.graph())
    head = _th("Node") + _th("Module") + _th("Status") + _th("ms", "num") + _th("Error / reason")
    return (f'<table id="nodes" class="sortable"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def render(report: Report) -> str:
    graph = report.graph()
    scan = report.scan or {}
    name = esc(scan.get("dag") or "scan")
    dag = (f'<section id="dag"><h2>DAG</h2>{_legend()}<div class="drawing">{dag_svg(graph)}</div>'
           "</section>")
    timeline = (f'<section id="timeline"><h2>Timeline</h2><div class="drawing">'
                f"{timeline_svg(graph, epoch(scan.get('started_at')))}</div>{_nodes_table(report)}"
                "</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp()}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pentora report: {name}</title><style>{CSS}</style></head><body>"
        f'<header><h1>pentora report: {name}</h1></header>'
        f"{_summary(report)}{_hosts(report)}{_services(report)}{_findings(report)}{_unverified(report)}{dag}{timeline}"
        f"<footer>written by pentora {esc(__version__)}</footer><script>{JS}</script></body></html>\n")


class HtmlWriter(ReportWriter):
    format_name = "html"

    def render(self, report: Report) -> str:
        return render(report)


FORMAT = OutputFormat("html", "one self-contained HTML page: summary, sortable tables, findings, "
                      "the DAG and its timeline", open=HtmlWriter, extensions=(".html", ".htm"),
                      takes_stream=True)
