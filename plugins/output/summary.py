"""The ``summary`` format: the readable table ``pentora scan`` prints to the terminal.

Reads the finished scan's DataContext (hosts, open ports, services) and the node
records; replaying a JSONL (``pentora report FILE``), the same from its lines. Every
string from a target or the DAG file passes through ``clean`` first: control characters
and ANSI escapes from a hostile banner never reach the terminal raw. Written to a file or
a pipe, the whole text is cleaned once more, line breaks kept; on a terminal, rich draws
cells and lines given as text (never markup), cleaned once more too.
"""

from __future__ import annotations

import io
import sys
from typing import IO, TYPE_CHECKING, Any, TypeAlias

from pentora_plugins.kit import quality
from pentora_plugins.kit.records import record_dict
from pentora_plugins.output._views import min_quality_of
from pentora_plugins.output.formats import Report

from pentora import OutputFormat, atomic_output, terminal_console
from pentora import clean_text as clean  # the one terminal-safe helper

if TYPE_CHECKING:
    from rich.table import Table

# rich (a seventh of a scan's start-up) is imported when a table is drawn: the format is
# registered before a scan's first probe, and the summary is printed after its last.

__all__ = ["FORMAT", "OPEN_ONLY", "REASON", "SummaryWriter", "clean", "render", "render_report",
           "table"]

# The scan options (``scan.options``) of nmap's --open and --reason, for every writer.
OPEN_ONLY, REASON = "open_only", "reason"

# Colours of a cell by its column and text, on a terminal that takes colour.
CELL_STYLES = {
    "SEVERITY": {"CRITICAL": "bold red", "HIGH": "red", "MEDIUM": "yellow", "LOW": "cyan", "INFO": "dim"},
    "STATE": {"open": "green", "filtered": "yellow", "closed": "dim"},
    "KEV": {"KEV": "bold red"},
}
PROBLEM = "red"  # the lines of failed nodes and plugins


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def table(rows: list[list[str]]) -> Table:
    """A table of header and rows: columns two spaces apart, no rules. Each cell is
    text, never markup, and cleaned once more: a cell a caller forgot to clean still
    reaches the terminal inert."""
    from rich.table import Table
    from rich.text import Text

    grid = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, header_style="bold")
    for head in rows[0]:
        grid.add_column(head, overflow="fold")
    for row in rows[1:]:
        grid.add_row(*(Text(clean(cell, None), style=CELL_STYLES.get(head, {}).get(cell, ""))
                       for head, cell in zip(rows[0], row, strict=True)))
    return grid


Block: TypeAlias = "Table | tuple[str, str]"  # a table, or a line of text and its style


def plain(blocks: list[Block]) -> str:
    """The blocks as text without colour, each table as wide as its content (a file, a pipe)."""
    out = io.StringIO()
    console = terminal_console(out)
    for block in blocks:
        if isinstance(block, tuple):
            out.write(block[0] + "\n")
        else:
            console.print(block)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def show(blocks: list[Block], stream: IO[str]) -> None:
    """The blocks on the terminal ``stream``: rich's tables, coloured by the colour rules
    (``NO_COLOR``, ``--no-color``), wrapped to the terminal's width."""
    from rich.text import Text

    console = terminal_console(stream)  # type: ignore[arg-type]
    for block in blocks:
        if isinstance(block, tuple):
            console.print(Text(clean(block[0], None, lines=True), style=block[1]))
        else:
            console.print(block)


class SummaryWriter:
    def __init__(self, target: str | IO[str] = "-",
                 min_quality: int = quality.DEFAULT_MIN_QUALITY, open_only: bool = False,
                 reason: bool = False, max_rows: int | None = None) -> None:
        self.min_quality = min_quality
        self.open_only, self.reason = open_only, reason
        self.max_rows = max_rows
        self.live = False
        self.report = Report(min_quality)
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
        self.live = True

    def record(self, kind: str, record: Any) -> None:
        """A live scan's summary is drawn from its result; a replayed JSONL's (``pentora
        report``, no ``start``) from its lines."""
        if not self.live:
            self.report.add(record if isinstance(record, dict) else record_dict(kind, record))

    def close(self, result: Any) -> None:
        drawn = None
        if result is not None:
            drawn = blocks(result, self.min_quality, open_only=self.open_only, reason=self.reason,
                           max_rows=self.max_rows)
        elif not self.live:
            self.report.min_quality = self.min_quality
            drawn = report_blocks(self.report)
        if drawn is not None and not self.owned and terminal_console(self.stream).is_terminal:  # type: ignore[arg-type]
            show(drawn, self.stream)
        elif drawn is not None:
            # The last safety pass: this format is for reading, and a field a future row
            # forgets to clean must still not reach a terminal raw.
            self.stream.write(clean(plain(drawn), None, lines=True) + "\n")
            self.stream.flush()
        if self.owned:
            self.stream.close()


def render(result: Any, min_quality: int = quality.DEFAULT_MIN_QUALITY, open_only: bool = False,
           reason: bool = False) -> str:
    """The summary as plain text."""
    return plain(blocks(result, min_quality, open_only=open_only, reason=reason))


def blocks(result: Any, min_quality: int = quality.DEFAULT_MIN_QUALITY, open_only: bool = False,
           reason: bool = False, max_rows: int | None = None) -> list[Block]:
    """The summary's blocks; ``open_only`` (nmap's ``--open``) leaves out the count of ports
    that did not answer, ``reason`` (``--reason``) adds the REASON column: what the port said.
    ``max_rows`` caps the port table (a sweep finds millions, and drawing them takes longer
    than finding them): a line says how many more there are, the counts stay whole."""
    ctx = result.context
    services = {(_get(s, "host"), _get(s, "port"), _get(s, "protocol")): s
                for s in ctx.get("service_fingerprints", [])}
    rows = [["HOST", "PORT", "STATE", *(["REASON"] if reason else []), "SERVICE", "PRODUCT", "VERSION"]]
    ports = ctx.get("open_ports", [])
    for p in ports if max_rows is None else ports[:max_rows]:
        key = (_get(p, "host"), _get(p, "port"), _get(p, "protocol"))
        svc = services.get(key)
        service = clean(_get(svc, "service") if svc else "")
        if svc and _get(svc, "tls") and service:
            service = f"ssl/{service}"  # as nmap writes a service found inside TLS
        rows.append([clean(key[0]), f"{key[1]}/{key[2]}", clean(_get(p, "state")),
                     *([clean(_get(p, "reason") or "")] if reason else []), service,
                     clean(_get(svc, "product") if svc else ""),
                     clean(_get(svc, "version") if svc else "")])
    lines: list[Block] = []
    if ctx.has("discovered_hosts"):
        lines.append((f"{_hosts_up(ctx.get('discovered_hosts'))} host(s) up", ""))
    if len(rows) > 1:
        lines.append(table(rows))
        more = len(ports) - (len(rows) - 1)
        if more > 0:
            hosts = len({_get(p, "host") for p in ports})
            lines.append((f"… {more:,} more open port(s) not shown ({len(ports):,} on {hosts:,} "
                          "host(s) in all): see the -o outputs or `pentora scans show`", ""))
    elif ctx.has("open_ports"):
        lines.append(("no open ports found", ""))
    silent = ctx.get("port_states", [])
    if silent and not open_only:  # as nmap's "Not shown:" line, which --open drops
        lines.append((f"not shown: {len(silent)} filtered port(s) (no answer)", ""))
    if ctx.has("vulnerabilities"):
        lines.extend(findings(ctx.get("vulnerabilities"), min_quality))
    failed = [r for r in result.nodes.values() if r.status in ("failed", "cancelled")]
    for r in failed:
        lines.append((f"node {clean(r.node, None)} {r.status}: {clean(r.error or r.reason, 200)}",
                      PROBLEM))
    for failure in getattr(result, "hook_errors", ()):
        lines.append((f"plugin {clean(failure['plugin'])} failed in {clean(failure['hook'])}: "
                      f"{clean(failure['error'], 200)}", PROBLEM))
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts().items()))
    lines.append((f"scan {clean(result.scan_id)} {result.status} in {result.duration_ms / 1000:.2f}s "
                  f"({counts})", "bold"))
    return lines


def _hosts_up(hosts: Any) -> int:
    size = getattr(hosts, "size", None)  # -Pn's view of the targets: every one is up
    if isinstance(size, int):
        return size
    return sum(1 for h in hosts or () if _get(h, "alive"))


def render_report(report: Report) -> str:
    """The summary of a JSONL's records (``pentora report FILE``) as plain text."""
    return plain(report_blocks(report))


def report_blocks(report: Report) -> list[Block]:
    """What ``blocks`` shows of the finished scan, drawn from a JSONL's lines."""
    rows = [["HOST", "PORT", "STATE", "SERVICE", "PRODUCT", "VERSION"]]
    for p in report.open_ports():
        rows.append([clean(p.host), f"{p.port}/{clean(p.protocol)}", clean(p.state),
                     clean(p.service_name), clean(p.get("product")), clean(p.get("version"))])
    lines: list[Block] = []
    hosts = report.hosts()
    if report.by_kind.get("host"):
        lines.append((f"{sum(1 for h in hosts if h.up)} host(s) up", ""))
    lines.append(table(rows) if len(rows) > 1 else ("no open ports found", ""))
    lines.extend(findings(report.vulnerabilities(), report.min_quality))
    for n in report.graph():
        if n.status in ("failed", "cancelled"):
            lines.append((f"node {clean(n.id, None)} {n.status}: {clean(n.detail, 200)}", PROBLEM))
    scan = report.scan
    if scan is None:
        lines.append(("scan incomplete: the file has no scan line (the scan was interrupted?)", PROBLEM))
    else:
        counts = ", ".join(f"{n} {clean(s)}" for s, n in sorted((scan.get("counts") or {}).items()))
        seconds = float(scan.get("duration_ms") or 0) / 1000
        lines.append((f"scan {clean(scan.get('scan_id'))} {clean(scan.get('status'))} in {seconds:.2f}s "
                      f"({counts})", "bold"))
    return lines


SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
MAX_FINDINGS = 40  # more would scroll the table away: the -o reports have them all


def findings(vulns: list[Any], min_quality: int = quality.DEFAULT_MIN_QUALITY) -> list[Block]:
    """The findings block: the verified ones (quality ``min_quality`` or more, or none
    stated), counted by severity, worst first; then the unverified ones, apart."""
    if not vulns:
        return [("no findings", "")]
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


def _verified(ordered: list[Any], min_quality: int) -> list[Block]:
    if not ordered:
        return [(f"no verified findings (quality >= {min_quality})", "")]
    counts: dict[str, int] = {}
    for v in ordered:
        counts[_get(v, "severity")] = counts.get(_get(v, "severity"), 0) + 1
    head = ", ".join(f"{n} {clean(s)}" for s, n in counts.items())
    rows = [["SEVERITY", "WHERE", "FINDING", "KEV", "QUALITY", "TITLE"]]
    for v in ordered[:MAX_FINDINGS]:
        rows.append([clean(_get(v, "severity")).upper(), _where(v), clean(_get(v, "id")), _kev(v),
                     _quality(v), clean(_get(v, "title"), 70)])
    out: list[Block] = [(f"{len(ordered)} finding(s): {head}", "bold"), table(rows)]
    if len(ordered) > MAX_FINDINGS:
        out.append((f"... and {len(ordered) - MAX_FINDINGS} more (write them with -o FILE.html|md|json)", ""))
    return out


def _unverified(ordered: list[Any], min_quality: int) -> list[Block]:
    """Briefly: where, what, how sure, and why it is unsure (the method's reason; the
    evidence for a method the scale does not know)."""
    rows = [["WHERE", "FINDING", "KEV", "QUALITY", "WHY"]]
    for v in ordered[:MAX_FINDINGS]:
        why = clean(quality.WHY.get(_get(v, "method")) or _get(v, "evidence") or _get(v, "method") or "", 70)
        rows.append([_where(v), clean(_get(v, "id")), _kev(v), _quality(v), why])
    out: list[Block] = [(f"{quality.UNVERIFIED_TITLE} ({len(ordered)}, quality < {min_quality}; "
                         "--min-quality 0 shows them as findings)", "dim"), table(rows)]
    if len(ordered) > MAX_FINDINGS:
        out.append((f"... and {len(ordered) - MAX_FINDINGS} more (write them with -o FILE.html|md|json)", ""))
    return out


FORMAT = OutputFormat("summary", "readable table of hosts, ports and services (the terminal view)",
                      open=SummaryWriter, takes_stream=True)
