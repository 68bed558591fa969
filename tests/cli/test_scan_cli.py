"""``pentora scan`` and ``pentora demo`` end to end, on loopback only."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_demo_names_every_demo_service(run_cli, tmp_path: Path):
    out = tmp_path / "demo.jsonl"
    proc = run_cli("demo", "-o", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    table = proc.stdout
    for service, product, version in [("ssh", "OpenSSH", "9.2p1"), ("http", "nginx", "1.22.1"),
                                      ("ssl/http", "nginx", "1.22.1"), ("ftp", "vsftpd", "3.0.3"),
                                      ("smtp", "Postfix", ""), ("redis", "Redis", "7.0.15")]:
        assert any(line.split()[3:6] == [service, product, version][: 3 if version else 2]
                   for line in table.splitlines() if "/tcp" in line), (service, table)
    records = jsonl(out)
    assert all(list(r)[0] == "kind" for r in records)
    kinds = {r["kind"] for r in records}
    assert {"host", "port", "banner", "service", "asset", "node", "scan"} <= kinds
    assert records[-1]["kind"] == "scan" and records[-1]["status"] == "completed"
    asset = [r for r in records if r["kind"] == "asset"][0]
    assert {"web", "mail", "remote-access", "file-transfer", "database"} <= set(asset["tags"])
    assert asset["os"]["distribution"] == "Debian"


def test_demo_runs_the_standard_profile_and_finds_its_misconfigurations(run_cli, tmp_path: Path):
    out = tmp_path / "demo.jsonl"
    proc = run_cli("demo", "-o", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    records = jsonl(out)
    nodes = {r["node"]: r["status"] for r in records if r["kind"] == "node"}
    for node in ("http_scan", "ssl_scan", "webapp_fingerprint", "cve", "service_checks",
                 "ssh_checks", "http_checks", "tls_checks", "report"):
        assert nodes.get(node) == "completed", (node, nodes)
    ports = {("ssl/" if r["tls"] else "") + r["service"]: r["port"]
             for r in records if r["kind"] == "service"}
    found = {(r["port"], r["id"]) for r in records if r["kind"] == "vulnerability"}
    for service, vid in [("ftp", "PENTORA-FTP-ANONYMOUS"), ("redis", "PENTORA-REDIS-NOAUTH"),
                         ("ssl/http", "PENTORA-TLS-SELF-SIGNED"), ("http", "PENTORA-HTTP-MISSING-HEADERS"),
                         ("ssh", "CVE-2024-6387")]:
        assert (ports[service], vid) in found, (service, vid, sorted(found))
    regresshion = next(r for r in records if r["kind"] == "vulnerability" and r["id"] == "CVE-2024-6387")
    # the banner's Debian revision is older than Debian's fix: a verified finding
    assert (regresshion["method"], regresshion["quality"]) == ("banner-distro", 90), regresshion
    vulns = [(r["host"], r["port"], r["id"]) for r in records if r["kind"] == "vulnerability"]
    assert len(vulns) == len(set(vulns))  # each finding announced once
    assert {r["kind"] for r in records} >= {"http", "tls", "webtech", "vulnerability"}


def test_scan_port_scan_profile_streams_hosts_and_ports(run_cli, tcp_server, tmp_path: Path):
    server = tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1\r\n")
    with socket.socket() as s:  # a port that is surely closed
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    out = tmp_path / "ports.jsonl"
    proc = run_cli("scan", "--targets", "127.0.0.1", "-p", f"{server.port},{closed}",
                   "--profile", "port-scan", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    records = jsonl(out)
    ports = [(r["host"], r["port"]) for r in records if r["kind"] == "port"]
    assert ports == [("127.0.0.1", server.port)]
    assert any(r["kind"] == "host" and r["address"] == "127.0.0.1" and r["alive"] for r in records)
    assert f"{server.port}/tcp" in proc.stdout


@pytest.mark.parametrize("args, code, message", [
    (["--targets", "127.0.0.300", "--profile", "port-scan"], 2, "invalid target '127.0.0.300'"),
    (["--targets", "127.0.0.1", "--profile", "port-scan", "-p", "1-70000"], 2, "70000"),
    (["--targets", "127.0.0.1", "--profile", "nosuch"], 1, "no profile named 'nosuch'"),
    (["--targets", "127.0.0.1", "--profile", "port-scan", "-o", "x.weird"], 2,
     "cannot tell the output format"),
    (["--targets", "127.0.0.1", "--profile", "port-scan", "-o", "-", "--format", "nope"], 2,
     "unknown output format 'nope'"),
    (["--profile", "port-scan"], 2, "--targets"),
    (["--targets", "127.0.0.1", "--profile", "port-scan", "--set", "rtae=10"], 2,
     "DAG 'port-scan' has no var named 'rtae' (its vars: arp, assume_up, discovery_rate, discovery_timeout, "
     "exclude, host_timeout, icmp, ports, rate, scan_retries, scan_timeout, targets, tcp_scan, "
     "udp_ports, udp_rate, udp_scan)"),
])
def test_scan_bad_input_is_a_message_not_a_traceback(run_cli, tmp_path, args, code, message):
    proc = run_cli("scan", *args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_scan_p_no_disables_a_plugin(run_cli):
    proc = run_cli("scan", "--targets", "127.0.0.1", "--profile", "port-scan", "-p", "no:portscan")
    assert proc.returncode == 1
    assert "unknown module_type 'syn_scanner'" in proc.stderr


def test_scan_p_no_former_name_says_what_it_is_now(run_cli):
    proc = run_cli("scan", "--targets", "127.0.0.1", "--profile", "port-scan", "-p", "1",
                   "-p", "no:syn_scan")
    assert proc.returncode == 2  # a bad option value: a usage error
    assert "no plugin 'syn_scan' any more: it is now 'portscan' (-p no:portscan)" in proc.stderr


def test_demo_runs_without_root(tmp_path: Path):
    """The demo promises no root: run it as nobody with every capability dropped."""
    import os
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to drop to an unprivileged user")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "--inh-caps=-all", sys.executable, "-m", "pentora", "demo"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "falling back to a TCP connect scan" in proc.stderr
    assert "Redis    7.0.15" in proc.stdout and "failed" not in proc.stdout
