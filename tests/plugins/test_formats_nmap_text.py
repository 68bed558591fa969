"""nmap's normal (``-oN``, ``.nmap``/``.txt``) and grepable (``-oG``, ``.gnmap``) outputs from a
real loopback scan of hostile servers: read by the same parsers that read nmap's own files
(nmap itself scans the same servers, when installed), with every target string inert."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from pentora_plugins.output.formats import nmap_text
from pentora_plugins.output.formats._model import Report

from ._formats_scan import Scan, run_scan


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    yield from run_scan(tmp_path_factory)


# What scripts do with these files: the report lines, the port table's rows, and the
# grepable Host/Ports fields (7 '/'-separated fields per port, ', ' between ports).
REPORT_FOR = re.compile(r"^Nmap scan report for (?:(.+) \((\S+)\)|(\S+))$")
PORT_ROW = re.compile(r"^(\d+)/(tcp|udp|sctp)\s+(\S+)\s+(\S+)(?:\s+(.*))?$")


def parse_normal(text: str) -> dict[str, list[tuple[int, str, str, str]]]:
    """{address: [(port, protocol, state, service)]} from normal output, as a script reads it."""
    hosts: dict[str, list[tuple[int, str, str, str]]] = {}
    current = None
    for line in text.splitlines():
        m = REPORT_FOR.match(line)
        if m:
            current = m.group(2) or m.group(3)
            hosts[current] = []
        elif current is not None and (row := PORT_ROW.match(line)):
            hosts[current].append((int(row[1]), row[2], row[3], row[4]))
    return hosts


def parse_grepable(text: str) -> dict[str, list[list[str]]]:
    """{address: [[port, state, protocol, owner, service, rpc, version]]} from grepable output."""
    hosts: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        m = re.fullmatch(r"Host: (\S+) \((.*)\)", fields[0])
        assert m, line
        hosts.setdefault(m[1], [])
        for field in fields[1:]:
            if field.startswith("Ports: "):
                for entry in field[len("Ports: "):].split(", "):
                    parts = entry.split("/")
                    assert len(parts) == 8 and parts[7] == "", entry  # 7 fields, then the last '/'
                    hosts[m[1]].append(parts[:7])
            else:
                assert re.fullmatch(r"(Status: Up|OS: .*)", field), field
    return hosts


def test_normal_output_has_nmaps_layout_and_the_findings(scan):
    assert scan.proc.returncode == 3, scan.proc.stderr  # the explode node fails on purpose
    text = scan.out("nmap").read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# pentora ") and " scan initiated " in lines[0]
    assert " as: pentora scan --targets 127.0.0.1,nosuch.invalid -p " in lines[0]
    assert re.fullmatch(r"# pentora done at .* -- 1 IP address \(1 host up\) scanned in [\d.]+ seconds; "
                        r"scan completed", lines[-1]), lines[-1]
    assert "PORT" in text and re.search(r"^PORT +STATE SERVICE +VERSION$", text, re.M)
    ports = parse_normal(text)["127.0.0.1"]
    assert {p[0] for p in ports} == set(scan.ports.values())
    assert (scan.ports["ssh"], "tcp", "open", "ssh") in ports
    ssh_row = next(line for line in lines if line.startswith(f"{scan.ports['ssh']}/tcp"))
    assert "OpenSSH 9.2p1" in ssh_row
    assert "| pentora-findings:" in text and "(high, CVSS 8.1): banner: SSH-2.0-OpenSSH_9.2p1" in text
    assert "Host script results:" in text and "|_  TEST-HOST (info): host-wide <i>" in text
    assert "# node explode failed: Node 'explode': exploded on purpose" in text
    assert "# target nosuch.invalid not scanned: " in text


def test_hostile_banners_cannot_start_a_line_or_reach_a_terminal(scan):
    for fmt in ("nmap", "gnmap"):
        text = scan.out(fmt).read_text()
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", text.replace("\t", "")), fmt
        assert "\\x1b[31mRED" in text or fmt == "gnmap"  # shown, escaped (gnmap has no banners)
    for line in scan.out("nmap").read_text().splitlines():
        assert re.match(r"(#|Nmap scan report for |Host is up|PORT|\d+/tcp|\| |\|_ |Service Info: |"
                        r"Host script results:|$)", line), line


def test_grepable_lines_parse_and_name_every_open_port(scan):
    hosts = parse_grepable(scan.out("gnmap").read_text())
    assert set(hosts) == {"127.0.0.1"}
    by_port = {int(p[0]): p for p in hosts["127.0.0.1"]}
    assert set(by_port) == set(scan.ports.values())
    ssh = by_port[scan.ports["ssh"]]
    assert ssh[1:5] == ["open", "tcp", "", "ssh"] and ssh[6].startswith("OpenSSH 9.2p1")


def test_nmaps_own_files_parse_the_same_way(scan, tmp_path):
    """The parsers above read what nmap itself writes for the same servers: the layouts match."""
    if shutil.which("nmap") is None:
        pytest.skip("nmap is not installed: install Debian's nmap package (.ci/setup does)")
    ports = ",".join(map(str, scan.ports.values()))
    done = subprocess.run(["nmap", "-sT", "-Pn", "-n", "-p", ports, "-oN", str(tmp_path / "n.nmap"),
                           "-oG", str(tmp_path / "n.gnmap"), "127.0.0.1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    theirs = parse_normal((tmp_path / "n.nmap").read_text())["127.0.0.1"]
    ours = parse_normal(scan.out("nmap").read_text())["127.0.0.1"]
    assert {p[:3] for p in theirs} == {p[:3] for p in ours}
    theirs_g = parse_grepable((tmp_path / "n.gnmap").read_text())["127.0.0.1"]
    ours_g = parse_grepable(scan.out("gnmap").read_text())["127.0.0.1"]
    assert {tuple(p[:3]) for p in theirs_g} == {tuple(p[:3]) for p in ours_g}


def test_separators_from_targets_cannot_forge_fields():
    """A hostname with a tab and a line break, a version with '/' and ',' (which separate
    grepable fields and ports): one line per host still, seven fields per port."""
    report = Report()
    report.add({"kind": "host", "address": "127.0.0.1", "alive": True,
                "hostname": "h\tPorts: 1/open/tcp//x///\nHost: 127.0.0.9 ()"})
    for port in (22, 80):
        report.add({"kind": "port", "host": "127.0.0.1", "port": port, "protocol": "tcp", "state": "open"})
    report.add({"kind": "service", "host": "127.0.0.1", "port": 22, "protocol": "tcp", "service": "s/h",
                "product": "A/B, 1/open/tcp//evil///", "version": "1,2", "info": "x\ny"})
    grepable = nmap_text.render_grepable(report)
    body = [line for line in grepable.splitlines() if not line.startswith("#")]
    assert len(body) == 2
    assert all(line.startswith("Host: 127.0.0.1 (h\\x09Ports: 1|open|tcp") for line in body)
    ports = parse_grepable(grepable)["127.0.0.1"]
    assert [p[0] for p in ports] == ["22", "80"]
    assert ports[0][4] == "s|h" and ports[0][6] == "A|B; 1|open|tcp||evil||| 1;2 (x\\x0ay)"
    normal = nmap_text.render_normal(report)
    assert parse_normal(normal) == {"127.0.0.1": [(22, "tcp", "open", "s/h"), (80, "tcp", "open", "unknown")]}
