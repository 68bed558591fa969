"""The report model every format renders, and the writer base they share.

A report is built from JSONL-shaped records (``{"kind": ..., **fields}``): during a scan
from what modules emit, afterwards from a JSONL file (``pentora report``). Both paths
give the same ``Report``, so a file rendered live and one re-rendered later agree.
Views are deduplicated (a port found by two scanners is one port) and sorted
deterministically: the same records give the same report whatever their order.

Findings are split by their quality of detection (``kit.quality``): ``findings`` and every
count (by severity, per host, per port) hold the verified ones, of quality
``min_quality`` or more or none stated; ``unverified`` the others, which each format lists
apart ("may be fixed by a backport").
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import IO, Any

from pentora_plugins.kit import quality
from pentora_plugins.kit.findings import SEVERITIES as _ASCENDING
from pentora_plugins.kit.records import address_key, record_dict
from pentora_plugins.output._views import min_quality_of
from pentora_plugins.output.jsonl import scan_facts, scan_line

from pentora import PentoraError, atomic_output, try_plan

SEVERITIES = tuple(reversed(_ASCENDING))  # critical first
STATUSES = ("completed", "failed", "cancelled", "skipped", "running", "pending")
# Kinds in the order a reader meets them; node lines last (they describe the run).
KIND_ORDER = ("target", "target_error", "host", "port", "banner", "service", "asset", "http", "tls",
              "webtech", "vulnerability")


def epoch(value: Any) -> float | None:
    """Seconds since the epoch from an ISO time (``2026-01-01T00:00:00.000Z``) or a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return dt.datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def severity_rank(severity: Any) -> int:
    s = str(severity or "info").lower()
    return SEVERITIES.index(s) if s in SEVERITIES else len(SEVERITIES)


def _port_key(rec: dict[str, Any]) -> tuple[str, str, int]:
    return (str(rec.get("host", "")), str(rec.get("protocol") or "tcp"), _int(rec.get("port")))


def _readable(text: str) -> bool:
    printable = sum(1 for c in text if " " <= c <= "~" or c in "\r\n\t")
    return bool(text) and printable >= 0.9 * len(text)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@dataclass
class PortView:
    """One open port with what was learnt about it."""

    host: str
    port: int
    protocol: str
    state: str
    reason: str | None
    service: dict[str, Any] = field(default_factory=dict)
    findings: int = 0
    http: dict[str, Any] = field(default_factory=dict)
    webtech: list[str] = field(default_factory=list)
    banner: str = ""

    def get(self, name: str) -> Any:
        return self.service.get(name)

    @property
    def service_name(self) -> str:
        name = str(self.service.get("service") or "")
        return f"ssl/{name}" if name and self.service.get("tls") else name  # as nmap writes it


@dataclass
class HostView:
    address: str
    hostname: str | None
    up: bool
    reason: str | None
    os: str
    ports: int
    findings: int
    record: dict[str, Any]


@dataclass
class GraphNode:
    id: str
    module_type: str
    depends_on: list[str]
    status: str
    layer: int
    started: float | None
    finished: float | None
    duration_ms: float | None
    detail: str


class Report:
    """Everything a scan reported; ``add`` each record, then read the views."""

    def __init__(self, min_quality: int = quality.DEFAULT_MIN_QUALITY) -> None:
        self.min_quality = min_quality
        self.records: list[dict[str, Any]] = []
        self.scan: dict[str, Any] | None = None
        self.by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.nodes: dict[str, dict[str, Any]] = {}

    def add(self, rec: dict[str, Any]) -> None:
        kind = rec.get("kind")
        if kind == "scan":
            self.scan = rec
            return
        self.records.append(rec)
        self.by_kind[str(kind)].append(rec)
        if kind == "node":
            self.nodes[str(rec.get("node"))] = rec  # a node's last line is its final state

    # -- views --------------------------------------------------------------------------

    def _latest(self, kind: str, key: Any) -> dict[Any, dict[str, Any]]:
        return {key(r): r for r in self.by_kind.get(kind, [])}

    def vulnerabilities(self) -> list[dict[str, Any]]:
        """Every finding, verified or not, worst first."""
        unique = self._latest("vulnerability", lambda r: (r.get("host"), r.get("port"), r.get("id")))
        return sorted(unique.values(), key=lambda r: (
            severity_rank(r.get("severity")), -(r.get("cvss") or 0), address_key(str(r.get("host"))),
            _int(r.get("port")), str(r.get("id"))))

    def findings(self) -> list[dict[str, Any]]:
        """The verified findings (quality ``min_quality`` or more, or none stated), worst first."""
        return quality.split(self.vulnerabilities(), self.min_quality)[0]

    def unverified(self) -> list[dict[str, Any]]:
        """The findings below ``min_quality``: a backport may have fixed them. Worst first."""
        return quality.split(self.vulnerabilities(), self.min_quality)[1]

    def by_severity(self) -> list[tuple[str, list[dict[str, Any]]]]:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for v in self.findings():
            groups[str(v.get("severity") or "info").lower()].append(v)
        return sorted(groups.items(), key=lambda kv: severity_rank(kv[0]))

    def open_ports(self) -> list[PortView]:
        services = self._latest("service", _port_key)
        findings: dict[tuple[str, int], int] = defaultdict(int)
        for v in self.findings():
            if v.get("port") is not None:
                findings[(str(v.get("host")), _int(v.get("port")))] += 1
        http = {(str(r.get("host")), _int(r.get("port"))): r for r in self.by_kind.get("http", [])}
        tech, banners = self._webtech(), self._banners()
        out = []
        for key, p in self._latest("port", _port_key).items():
            if "open" not in str(p.get("state", "open")):
                continue
            where = (key[0], key[2])
            out.append(PortView(host=key[0], port=key[2], protocol=key[1], state=str(p.get("state")),
                                reason=p.get("reason"), service=services.get(key, {}),
                                findings=findings[where], http=http.get(where, {}),
                                webtech=sorted(tech[where], key=str.lower),
                                banner=banners.get(key, "")))
        # a fingerprint whose port line was lost (an interrupted file) still shows
        seen = {(p.host, p.protocol, p.port) for p in out}
        for key, s in services.items():
            if key not in seen:
                out.append(PortView(host=key[0], port=key[2], protocol=key[1], state="open",
                                    reason=None, service=s, findings=findings[(key[0], key[2])]))
        return sorted(out, key=lambda p: (address_key(p.host), p.protocol, p.port))

    def _webtech(self) -> dict[tuple[str, int], set[str]]:
        tech: dict[tuple[str, int], set[str]] = defaultdict(set)
        for t in self.by_kind.get("webtech", []):
            name = str(t.get("name") or "")
            tech[(str(t.get("host")), _int(t.get("port")))].add(
                f"{name} {t['version']}" if t.get("version") else name)
        return tech

    def _banners(self) -> dict[tuple[str, str, int], str]:
        """Per port, the first readable banner (not, say, the bytes of a TLS handshake)."""
        banners: dict[tuple[str, str, int], str] = {}
        for b in self.by_kind.get("banner", []):
            key, data = _port_key(b), str(b.get("data") or "")
            if key not in banners or (not _readable(banners[key]) and _readable(data)):
                banners[key] = data
        return banners

    def _host_records(self) -> dict[str, dict[str, Any]]:
        """One record per address from every discovery method's: up if any saw it up, each
        field from the first record that has it (ICMP's TTL, ARP's MAC…)."""
        merged: dict[str, dict[str, Any]] = {}
        for r in self.by_kind.get("host", []):
            have = merged.setdefault(str(r.get("address")), dict(r))
            for key, value in r.items():
                if have.get(key) is None:
                    have[key] = value
            have["alive"] = bool(have.get("alive", True)) or bool(r.get("alive", True))
        return merged

    def hosts(self) -> list[HostView]:
        records = self._host_records()
        assets = self._latest("asset", lambda r: str(r.get("host")))
        ports = self.open_ports()
        vulns = self.findings()
        port_count: dict[str, int] = defaultdict(int)
        finding_count: dict[str, int] = defaultdict(int)
        for p in ports:
            port_count[p.host] += 1
        for v in vulns:
            finding_count[str(v.get("host"))] += 1
        addresses = set(records) | set(port_count) | set(finding_count)
        out = []
        for address in addresses:
            rec = records.get(address, {})
            asset = assets.get(address, {})
            os = asset.get("os") or {}
            os_text = " ".join(str(os[k]) for k in ("family", "distribution", "release") if os.get(k))
            out.append(HostView(
                address=address, hostname=rec.get("hostname") or asset.get("hostname"),
                up=bool(rec.get("alive", True)) or port_count[address] > 0, reason=rec.get("reason"),
                os=os_text, ports=port_count[address], findings=finding_count[address], record=rec))
        return sorted(out, key=lambda h: address_key(h.address))

    def graph(self) -> list[GraphNode]:
        """The DAG's nodes with their status, layer and times. From the ``scan`` line's
        ``graph`` when present; else (an interrupted file) the node lines, unconnected."""
        shape = ((self.scan or {}).get("graph") or {}).get("nodes")
        if not shape:
            shape = [{"node": n, "module_type": r.get("module_type", ""), "depends_on": []}
                     for n, r in self.nodes.items()]
        ids = [str(n["node"]) for n in shape]
        index = {nid: i for i, nid in enumerate(ids)}
        parents = [[index[d] for d in n.get("depends_on", []) if d in index] for n in shape]
        children: list[list[int]] = [[] for _ in ids]
        for i, ps in enumerate(parents):
            for p in ps:
                children[p].append(i)
        plan = try_plan(ids, parents, children)
        layer = {i: 0 for i in range(len(ids))}
        if plan is not None:
            layer = {i: level for level, members in enumerate(plan.layers) for i in members}
        out = []
        for i, n in enumerate(shape):
            rec = self.nodes.get(ids[i], {})
            out.append(GraphNode(
                id=ids[i], module_type=str(n.get("module_type", "")),
                depends_on=[str(d) for d in n.get("depends_on", [])],
                status=str(rec.get("status", "pending")), layer=layer[i],
                started=epoch(rec.get("started_at")), finished=epoch(rec.get("finished_at")),
                duration_ms=rec.get("duration_ms"),
                detail=str(rec.get("error") or rec.get("reason") or "")))
        return out

    def summary(self) -> dict[str, Any]:
        scan = self.scan or {}
        hosts = self.hosts()
        counts: dict[str, int] = defaultdict(int)
        for n in self.nodes.values():
            counts[str(n.get("status"))] += 1
        return {
            "scan_id": scan.get("scan_id"), "dag": scan.get("dag"),
            "status": scan.get("status") or "incomplete (no scan line: the scan was interrupted?)",
            "started_at": scan.get("started_at"), "finished_at": scan.get("finished_at"),
            "duration_ms": scan.get("duration_ms"),
            "targets": (scan.get("vars") or {}).get("targets"),
            "hosts_up": sum(1 for h in hosts if h.up), "hosts_down": sum(1 for h in hosts if not h.up),
            "open_ports": len(self.open_ports()),
            "findings": {sev: len(items) for sev, items in self.by_severity()},
            "unverified": len(self.unverified()), "min_quality": self.min_quality,
            "nodes": dict(scan.get("counts") or counts),
        }

    def sorted_records(self, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Every record (the scan line aside), or ``records``, in a deterministic order: by
        kind, then address, protocol, port, then content; node lines in DAG order."""
        order = {nid: i for i, nid in enumerate(n.id for n in self.graph())}

        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            kind = str(r.get("kind"))
            rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER) + (kind == "node")
            if kind == "node":
                return (rank, kind, order.get(str(r.get("node")), len(order)), "", 0, "")
            where = str(r.get("host") or r.get("address") or "")
            return (rank, kind, address_key(where), str(r.get("protocol") or ""), _int(r.get("port")),
                    json.dumps(r, sort_keys=True, default=str))

        return sorted(self.records if records is None else records, key=key)


class ReportWriter:
    """An ``OutputFormat`` writer: collects records as the scan streams them and renders
    the whole file when it ends (``render``). Given a path, it writes to a temporary file
    beside it (``atomic_output``), renamed over it once rendered. ``close(None)`` (a
    replay, or a scan that never returned) renders what was collected."""

    format_name = "report"

    def __init__(self, target: str | IO[str]) -> None:
        self.report = Report()
        self.facts: dict[str, Any] | None = None
        self.path = target if isinstance(target, str) else getattr(target, "name", "<stream>")
        if isinstance(target, str):
            self.stream: IO[str] = sys.stdout if target == "-" else atomic_output(target)  # type: ignore[assignment]
            self.owned = target != "-"
        else:
            self.stream, self.owned = target, False

    @property
    def min_quality(self) -> int:
        """The quality a finding needs to count (``--min-quality``); ``pentora report`` sets it."""
        return self.report.min_quality

    @min_quality.setter
    def min_quality(self, value: int) -> None:
        self.report.min_quality = value

    def start(self, scan: Any) -> None:
        self.facts = scan_facts(scan)
        self.min_quality = min_quality_of(scan.options)

    def record(self, kind: str, record: Any) -> None:
        self.report.add(record_dict(kind, record))

    def render(self, report: Report) -> str:
        raise NotImplementedError

    def close(self, result: Any) -> None:
        if result is not None:
            self.report.add(scan_line(result, self.facts))
        try:
            self.stream.write(self.render(self.report))
            self.stream.flush()
            if self.owned:
                self.stream.close()
        except OSError as e:
            if self.owned:
                abandon = getattr(self.stream, "abandon", None)
                if abandon is not None:
                    abandon()  # the file it was to replace stays as it was
            raise PentoraError(f"cannot write the {self.format_name} report to '{self.path}': "
                               f"{e.strerror or e}; the JSONL output (if any) keeps every record: "
                               "re-render it with `pentora report FILE.jsonl`") from e
