"""The ``xml`` format: nmap's XML output (``-oX``), so tools that import nmap read pentora.

Follows Debian nmap's ``nmap.dtd`` (``xmloutputversion`` 1.05): ``nmaprun`` with
``scaninfo``, ``verbose``, ``debugging``, a ``hosthint`` per live host, then ``host``
elements (``status``, ``address``, ``hostnames``, ``ports/port/state/service/cpe``,
findings as a ``pentora-findings`` script, the OS guess as ``os/osmatch``) and
``runstats``. The DTD gives ``script``'s tables no attributes but ``key``, so each finding's
quality, method and known-exploited flag are ``elem``s of its table; the unverified findings
(quality below ``--min-quality``) are a script of their own, ``pentora-unverified``, beside
``pentora-findings``. The DTD only admits ``scanner="nmap"``; ``args`` and a comment say that
pentora wrote it; ``args`` is the command line that ran the scan, shell-quoted
(the JSONL scan line's ``command_line``). CPE 2.3 names are given in the 2.2 URI form nmap uses
(``cpe:/a:nginx:nginx:1.22.1``). XML cannot hold most control characters even escaped,
so target strings pass through ``clean`` first.
"""

from __future__ import annotations

import shlex
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any

from pentora_plugins.kit.quality import UNVERIFIED_TITLE, is_verified
from pentora_plugins.output.formats._model import HostView, PortView, Report, ReportWriter, epoch

from pentora import OutputFormat, __version__
from pentora import clean_text as clean

XML_OUTPUT_VERSION = "1.05"
_SCAN_TYPES = {"syn": "syn", "connect": "connect", "udp": "udp"}


def txt(value: Any, limit: int | None = 1024) -> str:
    return clean(value, limit)


def cpe22(cpe: Any) -> str | None:
    """``cpe:2.3:a:nginx:nginx:1.22.1:*:*:…`` → ``cpe:/a:nginx:nginx:1.22.1`` (nmap's form)."""
    if not cpe:
        return None
    text = str(cpe)
    if not text.startswith("cpe:2.3:"):
        return text
    parts = text.split(":")[2:7]
    while parts and parts[-1] in ("*", "-", ""):
        parts.pop()
    return "cpe:/" + ":".join(parts)


def _scaninfo(root: ET.Element, report: Report) -> None:
    methods = sorted({(str(p.get("method") or ""), str(p.get("protocol") or "tcp"))
                      for p in report.by_kind.get("port", [])})
    seen = set()
    for method, proto in methods:
        scan_type = _SCAN_TYPES.get(method, "udp" if proto == "udp" else "connect")
        if (scan_type, proto) in seen or proto not in ("tcp", "udp", "sctp", "ip"):
            continue
        seen.add((scan_type, proto))
        ports = sorted({p.port for p in report.open_ports() if p.protocol == proto})
        ET.SubElement(root, "scaninfo", type=scan_type, protocol=proto, numservices=str(len(ports)),
                      services=",".join(map(str, ports)))


def _status(parent: ET.Element, host: HostView) -> None:
    ttl = host.record.get("ttl")
    ET.SubElement(parent, "status", state="up" if host.up else "down",
                  reason=txt(host.reason or ("user-set" if not host.record else "unknown"), 64),
                  reason_ttl=str(ttl if isinstance(ttl, int) else 0))


def _addresses(parent: ET.Element, host: HostView) -> None:
    ET.SubElement(parent, "address", addr=txt(host.address, 255),
                  addrtype="ipv6" if ":" in host.address else "ipv4")
    mac = host.record.get("mac")
    if mac:
        ET.SubElement(parent, "address", addr=txt(mac, 64), addrtype="mac")


def _hostnames(parent: ET.Element, host: HostView) -> None:
    names = ET.SubElement(parent, "hostnames")
    if host.hostname:
        ET.SubElement(names, "hostname", name=txt(host.hostname, 255), type="user")


FINDINGS, UNVERIFIED = "pentora-findings", "pentora-unverified"


def _findings_script(holder: ET.Element, vulns: list[dict[str, Any]], script_id: str = FINDINGS,
                     min_quality: int = 0) -> None:
    if not vulns:
        return
    if script_id == UNVERIFIED:
        summary = f"{UNVERIFIED_TITLE} (quality < {min_quality}): " + "; ".join(
            f"{v.get('id')} (quality {v.get('quality')})" for v in vulns)
    else:
        summary = "; ".join(f"{v.get('id')} ({v.get('severity')}) {v.get('title') or ''}".strip()
                            for v in vulns)
    script = ET.SubElement(holder, "script", id=script_id, output=txt(summary, 4000))
    for v in vulns:
        table = ET.SubElement(script, "table", key=txt(v.get("id"), 200))
        for key in ("id", "title", "severity", "cvss", "evidence", "source", "quality", "method"):
            if v.get(key) is not None:
                ET.SubElement(table, "elem", key=key).text = txt(v.get(key), 1000)
        if v.get("known_exploited") is True:
            ET.SubElement(table, "elem", key="known_exploited").text = "true"
        refs = ET.SubElement(table, "table", key="references")
        for ref in v.get("references") or []:
            ET.SubElement(refs, "elem").text = txt(ref, 500)


def _service(parent: ET.Element, p: PortView) -> None:
    if not p.service:
        return
    conf = max(0, min(10, round(float(p.get("confidence") or 0) * 10)))
    attrs = {"name": txt(p.get("service") or "unknown", 64), "conf": str(conf),
             "method": "probed" if conf else "table"}
    for key, attr in (("product", "product"), ("version", "version"), ("info", "extrainfo")):
        if p.get(key):
            attrs[attr] = txt(p.get(key), 256)
    os = p.get("os") or {}
    if os.get("family"):
        attrs["ostype"] = txt(os["family"], 64)
    if p.get("tls"):
        attrs["tunnel"] = "ssl"
    service = ET.SubElement(parent, "service", attrs)
    cpe = cpe22(p.get("cpe"))
    if cpe:
        ET.SubElement(service, "cpe").text = txt(cpe, 256)


def _scripts(holder: ET.Element, vulns: list[dict[str, Any]], min_quality: int) -> None:
    """The verified findings, then the unverified ones, as two scripts."""
    _findings_script(holder, [v for v in vulns if is_verified(v, min_quality)])
    _findings_script(holder, [v for v in vulns if not is_verified(v, min_quality)], UNVERIFIED,
                     min_quality)


def _ports(parent: ET.Element, ports: list[PortView], vulns: dict[int, list[dict[str, Any]]],
           min_quality: int) -> None:
    holder = ET.SubElement(parent, "ports")
    for p in ports:
        if p.protocol not in ("tcp", "udp", "sctp", "ip"):
            continue
        port = ET.SubElement(holder, "port", protocol=p.protocol, portid=str(p.port))
        ET.SubElement(port, "state", state=txt(p.state, 32), reason=txt(p.reason or "unknown", 64),
                      reason_ttl="0")
        _service(port, p)
        _scripts(port, vulns.get(p.port, []), min_quality)


def _os(parent: ET.Element, asset: dict[str, Any] | None) -> None:
    guess = (asset or {}).get("os") or {}
    if not guess.get("family"):
        return
    accuracy = str(max(0, min(100, round(float(guess.get("confidence") or 0) * 100))))
    name = " ".join(str(guess[k]) for k in ("family", "distribution", "release") if guess.get(k))
    osmatch = ET.SubElement(ET.SubElement(parent, "os"), "osmatch", name=txt(name, 200),
                            accuracy=accuracy, line="0")
    ET.SubElement(osmatch, "osclass", vendor=txt(guess.get("distribution") or guess["family"], 64),
                  osfamily=txt(guess["family"], 64), accuracy=accuracy)


class _Index:
    """The report's ports, findings and assets by host, computed once."""

    def __init__(self, report: Report) -> None:
        self.ports: dict[str, list[PortView]] = defaultdict(list)
        for p in report.open_ports():
            self.ports[p.host].append(p)
        self.vulns: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for v in report.vulnerabilities():
            self.vulns[str(v.get("host"))].append(v)
        self.assets = {str(a.get("host")): a for a in report.by_kind.get("asset", [])}
        self.min_quality = report.min_quality


def _host(root: ET.Element, index: _Index, host: HostView, times: dict[str, str]) -> None:
    elem = ET.SubElement(root, "host", times)
    _status(elem, host)
    _addresses(elem, host)
    _hostnames(elem, host)
    mine = index.vulns.get(host.address, [])
    by_port: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for v in mine:
        if v.get("port") is not None:
            by_port[int(v["port"])].append(v)
    _ports(elem, index.ports.get(host.address, []), by_port, index.min_quality)
    _os(elem, index.assets.get(host.address))
    on_host = [v for v in mine if v.get("port") is None]
    if on_host:
        _scripts(ET.SubElement(elem, "hostscript"), on_host, index.min_quality)


def command_line(report: Report) -> str:
    """The command that ran the scan, shell-quoted (the scan line's ``command_line``); for a
    file written by a library caller, which has none, the scan its targets describe."""
    scan = report.scan or {}
    if isinstance(scan.get("command_line"), str):
        return txt(scan["command_line"], 4000)
    targets = (scan.get("vars") or {}).get("targets")
    return "pentora scan" + (f" --targets {shlex.quote(txt(targets, 500))}" if targets else "")


def build(report: Report) -> ET.Element:
    scan = report.scan or {}
    start = epoch(scan.get("started_at")) or time.time()
    end = epoch(scan.get("finished_at")) or start
    args = command_line(report)
    root = ET.Element("nmaprun", scanner="nmap", args=args, start=str(int(start)),
                      startstr=time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(start)),
                      version=__version__, xmloutputversion=XML_OUTPUT_VERSION)
    _scaninfo(root, report)
    ET.SubElement(root, "verbose", level="0")
    ET.SubElement(root, "debugging", level="0")
    hosts, index = report.hosts(), _Index(report)
    times = {"starttime": str(int(start)), "endtime": str(int(end))}
    for host in hosts:
        if host.up:
            hint = ET.SubElement(root, "hosthint")
            _status(hint, host)
            _addresses(hint, host)
            _hostnames(hint, host)
    for host in hosts:
        if host.up:
            _host(root, index, host, times)
    up = sum(1 for h in hosts if h.up)
    stats = ET.SubElement(root, "runstats")
    status = scan.get("status") or "interrupted"
    ET.SubElement(stats, "finished", time=str(int(end)),
                  timestr=time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(end)),
                  elapsed=f"{(end - start):.2f}",
                  summary=f"pentora done: {len(hosts)} IP address(es) ({up} host(s) up) scanned; "
                          f"scan {txt(status, 40)}",
                  exit="success" if status == "completed" else "error")
    ET.SubElement(stats, "hosts", up=str(up), down=str(len(hosts) - up), total=str(len(hosts)))
    return root


def render(report: Report) -> str:
    root = build(report)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n'
            f"<!-- nmap-compatible XML written by pentora {__version__} -->\n{body}\n")


class XmlWriter(ReportWriter):
    format_name = "xml"

    def render(self, report: Report) -> str:
        return render(report)


FORMAT = OutputFormat("xml", "nmap-compatible XML (nmap.dtd): hosts, ports, states, services, CPEs",
                      open=XmlWriter, extensions=(".xml",), takes_stream=True)
