"""nmap's text formats: ``nmap`` (normal output, ``-oN``, ``.nmap`` and ``.txt``) and
``gnmap`` (grepable output, ``-oG``, ``.gnmap``), laid out as nmap 7 writes them, so the
scripts and habits built on those files keep working.

Normal: a ``#`` header line with the command line, per live host ``Nmap scan report
for NAME (ADDRESS)`` (the line tools look for), ``Host is up``, the ``PORT STATE SERVICE
VERSION`` table of open ports, each port's findings as an NSE-style ``pentora-findings``
script block (``| ``, ``|_``), the OS guess as ``Service Info``, host-wide findings under
``Host script results``, and a ``# … done`` footer. Grepable: per live host a ``Status:
Up`` line and a ``Ports:`` line of ``port/state/protocol/owner/service/rpc/version/``
fields; as in nmap's, no findings (the other formats have them).

Every string from a target passes through ``clean`` (controls, tabs and line breaks
shown as ``\\xNN``, so no banner can start a line of its own or forge a field); in the
grepable fields ``/`` becomes ``|`` as nmap writes it and ``,`` (which separates the
ports) becomes ``;``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from pentora_plugins.kit.quality import UNVERIFIED_TITLE, is_verified
from pentora_plugins.output.formats._model import HostView, PortView, Report, ReportWriter, epoch
from pentora_plugins.output.formats.xml_report import command_line

from pentora import OutputFormat, __version__
from pentora import clean_text as clean


def _date(seconds: float) -> str:
    """nmap's date: local time, ``Mon Dec  7 18:24:26 2026`` (the day padded with a space)."""
    t = time.localtime(seconds)
    return time.strftime("%a %b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", t)


def _times(report: Report) -> tuple[float, float]:
    scan = report.scan or {}
    start = epoch(scan.get("started_at")) or time.time()
    return start, epoch(scan.get("finished_at")) or start


def header(report: Report) -> str:
    start, _ = _times(report)
    return f"# pentora {__version__} scan initiated {_date(start)} as: {clean(command_line(report), 4000)}"


def footer(report: Report, hosts: list[HostView]) -> str:
    start, end = _times(report)
    up = sum(1 for h in hosts if h.up)
    addresses = f"{len(hosts)} IP address" + ("" if len(hosts) == 1 else "es")
    status = clean((report.scan or {}).get("status") or "interrupted", 40)
    return (f"# pentora done at {_date(end)} -- {addresses} ({up} host{'' if up == 1 else 's'} up) "
            f"scanned in {end - start:.2f} seconds; scan {status}")


def version_text(p: PortView) -> str:
    """nmap's VERSION column: product, version, and the extra information in parentheses."""
    text = " ".join(clean(p.get(k), 120) for k in ("product", "version") if p.get(k))
    if p.get("info"):
        text += f" ({clean(p.get('info'), 120)})"
    return text.strip()


def _columns(rows: list[list[str]]) -> list[str]:
    """nmap's table: each column as wide as its widest cell, one space apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [" ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _finding(v: dict[str, Any]) -> str:
    grade = clean(v.get("severity") or "info", 20) + (f", CVSS {v['cvss']}" if v.get("cvss") is not None
                                                       else "")
    kev = ", KEV" if v.get("known_exploited") is True else ""
    title = clean(v.get("title"), 120)
    return f"{clean(v.get('id'), 120)} ({grade}{kev})" + (f": {title}" if title else "")


def script_block(vulns: list[dict[str, Any]], min_quality: int) -> list[str]:
    """The findings as NSE output: the verified ones as ``pentora-findings``, the others
    as ``pentora-unverified`` (quality below ``min_quality``)."""
    lines = []
    verified = [v for v in vulns if is_verified(v, min_quality)]
    unverified = [v for v in vulns if not is_verified(v, min_quality)]
    for name, items, note in (("pentora-findings", verified, ""),
                              ("pentora-unverified", unverified,
                               f" {UNVERIFIED_TITLE} (quality < {min_quality})")):
        if not items:
            continue
        lines.append(f"| {name}:{note}")
        texts = [_finding(v) for v in items]
        lines += [f"|   {t}" for t in texts[:-1]] + [f"|_  {texts[-1]}"]
    return lines


class _Index:
    """Open ports and findings by host (findings also by port), computed once."""

    def __init__(self, report: Report) -> None:
        self.ports: dict[str, list[PortView]] = defaultdict(list)
        for p in report.open_ports():
            self.ports[p.host].append(p)
        self.vulns: dict[tuple[str, int | None], list[dict[str, Any]]] = defaultdict(list)
        for v in report.vulnerabilities():
            port = v.get("port")
            self.vulns[(str(v.get("host")), int(port) if isinstance(port, int) else None)].append(v)
        self.assets = {str(a.get("host")): a for a in report.by_kind.get("asset", [])}


def _name(host: HostView) -> str:
    address = clean(host.address, 255)
    return f"{clean(host.hostname, 255)} ({address})" if host.hostname else address


def _normal_host(report: Report, index: _Index, host: HostView) -> list[str]:
    lines = [f"Nmap scan report for {_name(host)}",
             f"Host is up, received {clean(host.reason, 64)}." if host.reason else "Host is up."]
    ports = index.ports.get(host.address, [])
    if not ports:
        lines.append(f"No open ports found on {_name(host)}.")
    else:
        rows = [["PORT", "STATE", "SERVICE", "VERSION"]]
        blocks: list[list[str]] = [[]]
        for p in ports:
            rows.append([f"{p.port}/{clean(p.protocol, 8)}", clean(p.state, 32),
                         clean(p.service_name, 64) or "unknown", version_text(p)])
            blocks.append(script_block(index.vulns.get((p.host, p.port), []), report.min_quality))
        lines.append("")
        for row, block in zip(_columns(rows), blocks, strict=True):
            lines += [row, *block]
    os = ((index.assets.get(host.address) or {}).get("os") or {})
    if os.get("family"):
        name = " ".join(clean(os[k], 64) for k in ("family", "distribution", "release") if os.get(k))
        lines.append(f"Service Info: OS: {name}")
    on_host = index.vulns.get((host.address, None), [])
    if on_host:
        lines += ["", "Host script results:", *script_block(on_host, report.min_quality)]
    return lines


def _problems(report: Report) -> list[str]:
    """Failed nodes and unusable targets, as comments: nmap's readers skip ``#`` lines."""
    lines = [f"# node {clean(n.id, 200)} {n.status}: {clean(n.detail, 300)}"
             for n in report.graph() if n.status in ("failed", "cancelled")]
    lines += [f"# target {clean(e.get('spec'), 200)} not scanned: {clean(e.get('error'), 300)}"
              for e in report.by_kind.get("target_error", [])]
    return lines


def render_normal(report: Report) -> str:
    hosts, index = report.hosts(), _Index(report)
    lines = [header(report)]
    for host in hosts:
        if host.up:
            lines += [*_normal_host(report, index, host), ""]
    lines += [*_problems(report), footer(report, hosts)]
    return "\n".join(lines) + "\n"


def grepable(value: Any, limit: int = 200) -> str:
    """A field of a grepable line: clean, and no ``/`` (nmap's ``|``) or ``,`` (``;``)."""
    return clean(value, limit).replace("/", "|").replace(",", ";")


def _grep_port(p: PortView) -> str:
    service = grepable(p.get("service") or "", 64)
    if service and p.get("tls"):
        service = f"ssl|{service}"  # nmap's ssl/http, with its / made |
    return (f"{p.port}/{grepable(p.state, 32)}/{grepable(p.protocol, 8)}//{service}//"
            f"{grepable(version_text(p), 300)}/")


def render_grepable(report: Report) -> str:
    hosts, index = report.hosts(), _Index(report)
    lines = [header(report)]
    for host in hosts:
        if not host.up:
            continue
        who = f"Host: {clean(host.address, 255)} ({grepable(host.hostname or '', 255)})"
        lines.append(f"{who}\tStatus: Up")
        ports = index.ports.get(host.address, [])
        if ports:
            line = f"{who}\tPorts: " + ", ".join(_grep_port(p) for p in ports)
            os = ((index.assets.get(host.address) or {}).get("os") or {})
            if os.get("family"):
                line += "\tOS: " + " ".join(grepable(os[k], 64) for k in ("family", "distribution",
                                                                          "release") if os.get(k))
            lines.append(line)
    lines.append(footer(report, hosts))
    return "\n".join(lines) + "\n"


class NormalWriter(ReportWriter):
    format_name = "nmap"

    def render(self, report: Report) -> str:
        return render_normal(report)


class GrepableWriter(ReportWriter):
    format_name = "gnmap"

    def render(self, report: Report) -> str:
        return render_grepable(report)


NORMAL = OutputFormat("nmap", "nmap's normal text output (-oN): per host, the port table and findings",
                      open=NormalWriter, extensions=(".nmap", ".txt"), takes_stream=True)
GREPABLE = OutputFormat("gnmap", "nmap's grepable output (-oG): one Ports: line per host",
                        open=GrepableWriter, extensions=(".gnmap",), takes_stream=True)
