"""The standard, web-scan and vuln-scan profiles end to end against Debian's daemons.

sshd, nginx (plain, and HTTPS with a self-signed certificate made here with
``cryptography``), redis-server and vsftpd with anonymous logins are started by
``daemons.py`` on free ports of 127.0.0.1 and scanned through the CLI::

    python -m pentora scan --targets 127.0.0.1 --profile standard -p PORTS --set icmp=false -o OUT.jsonl

Everything the JSONL says is checked against what the test knows independently: the
installed packages (``dpkg-query``), the certificate it generated, the protocols the
local OpenSSL can negotiate with nginx, and the built-in CVE catalog queried for the
installed upstream versions. ``web-scan`` and ``vuln-scan`` are validated and run against
nginx's two ports. Without root or apt-get the tests skip with the reason.

``lab`` and ``run_profile`` are shared with ``tests/benchmarks/bench_standard.py``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from pentora_plugins.cve.sources import load_catalog

from ..plugins._tlsfixtures import Issued, issue, write
from . import daemons
from ._verdicts import check_findings

pytestmark = pytest.mark.integration

HOST = daemons.HOST
# The CPE (vendor, product) the fingerprinter gives each daemon, to ask the catalog.
CPE = {"sshd": ("openbsd", "openssh"), "nginx": ("f5", "nginx"), "redis": ("redis", "redis"),
       "vsftpd": ("beasts", "vsftpd")}
PROTOCOLS = {"TLSv1.0": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
             "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


@dataclass
class Lab:
    """The running daemons and the certificate nginx presents on its TLS port."""

    daemons: dict[str, daemons.Daemon]
    cert: Issued

    @property
    def tls_port(self) -> int:
        port = self.daemons["nginx"].tls_port
        assert port is not None
        return port

    @property
    def ports(self) -> list[int]:
        return [d.port for d in self.daemons.values()] + [self.tls_port]


@contextlib.contextmanager
def lab(tmp: Path) -> Iterator[Lab]:
    """sshd, nginx with TLS (a self-signed certificate for localhost and 127.0.0.1), redis and
    vsftpd with anonymous logins, all on 127.0.0.1; stopped on exit."""
    cert = issue("localhost", names=("localhost", HOST))  # no issuer: self-signed
    files = write(tmp / "nginx-tls", cert)
    with contextlib.ExitStack() as stack:
        running = {"sshd": stack.enter_context(daemons.sshd()),
                   "nginx": stack.enter_context(daemons.nginx(tls=files)),
                   "redis": stack.enter_context(daemons.redis()),
                   "vsftpd": stack.enter_context(daemons.vsftpd(anonymous=True))}
        yield Lab(running, cert)


def run_profile(profile: str, ports: list[int], out: Path, *extra: str,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``pentora scan --profile PROFILE`` of 127.0.0.1 on exactly ``ports``, JSONL to ``out``."""
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "pentora", "scan", "--targets", HOST, "--profile", profile,
            "-p", ",".join(map(str, ports)), *extra, "--no-store", "-o", str(out)]
    return subprocess.run(argv, capture_output=True, text=True, cwd=daemons.ROOT, timeout=timeout)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@dataclass
class Scan:
    lab: Lab
    done: subprocess.CompletedProcess[str]
    lines: list[dict[str, Any]]

    def of(self, kind: str, port: int | None = None) -> list[dict[str, Any]]:
        return [r for r in self.lines if r["kind"] == kind and (port is None or r.get("port") == port)]

    def findings(self, port: int) -> dict[str, dict[str, Any]]:
        return {v["id"]: v for v in self.of("vulnerability", port)}

    def why(self) -> str:
        return f"exit {self.done.returncode}\n{self.done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = daemons.ensure_packages()
    if reason:
        pytest.skip(f"real daemons unavailable: {reason}")
    with lab(tmp_path_factory.mktemp("standard-lab")) as started:
        yield started


@pytest.fixture(scope="module")
def standard(running: Lab, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    out = tmp_path_factory.mktemp("standard") / "scan.jsonl"
    done = run_profile("standard", running.ports, out, "--set", "icmp=false")
    return Scan(running, done, read_jsonl(out))


def catalog_cves(name: str, daemon: daemons.Daemon) -> set[str]:
    """What the built-in catalog lists for the installed upstream version of ``daemon``
    (server-side flaws: a client's are never reported against a daemon)."""
    return {h.entry.id for h in load_catalog().find(*CPE[name], daemon.upstream_version)
            if h.entry.role != "client"}


def accepts(port: int, protocol: str) -> bool:
    """Whether nginx completes a handshake of exactly ``protocol`` with the local OpenSSL."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer what the server might still take
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1 and TLSv1_1 are deprecated names
        ctx.minimum_version = ctx.maximum_version = PROTOCOLS[protocol]
    try:
        with socket.create_connection((HOST, port), timeout=5) as raw, ctx.wrap_socket(raw):
            return True
    except ssl.SSLError:
        return False


NO_CREDENTIALS = {"package_inventory": "condition '${ssh_user}' is false"}
# The SYN scanner's node scans TCP (falling back to a connect scan without privilege): the
# connect-scan node is for -sT, the UDP one for -sU.
SCANNERS_UNCHOSEN = {"connect_scan": "condition '${tcp_scan} == \"connect\"' is false",
                     "udp_scan": "condition '${udp_scan}' is false"}
NO_ICMP = {"discover.icmp": "condition '${icmp} and not ${assume_up}' is false"}
# ARP (and neighbour discovery) is asked for with --set arp=true: off in these scans
NO_ARP = {"discover.arp": "condition '${arp} and not ${assume_up}' is false"}


def assert_nodes_completed(scan: Scan, profile: str, skipped: dict[str, str]) -> None:
    """Every node of the planned graph left one record, completed (or skipped as expected)."""
    (record,) = scan.of("scan")
    planned = [n["node"] for n in record["graph"]["nodes"]]
    validated = subprocess.run([sys.executable, "-m", "pentora", "dag", "validate", profile, "--format",
                                "json"], capture_output=True, text=True, cwd=daemons.ROOT, timeout=120)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert json.loads(validated.stdout)["nodes"] == len(planned)
    nodes = {n["node"]: n for n in scan.of("node")}
    assert sorted(nodes) == sorted(planned)
    status = {k: (n["status"], n["reason"] if n["status"] == "skipped" else n["error"])
              for k, n in nodes.items()}
    expected = {k: ("skipped", skipped[k]) if k in skipped else ("completed", None) for k in planned}
    assert status == expected
    assert (record["status"], record["ok"]) == ("completed", True)


def assert_unique_findings(scan: Scan) -> None:
    keys = [(v["host"], v["port"], v["id"]) for v in scan.of("vulnerability")]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    assert not twice, f"reported more than once: {twice}"


# -- standard ---------------------------------------------------------------------------------


def test_standard_scan_succeeds(standard: Scan) -> None:
    assert standard.done.returncode == 0, standard.why()


def test_every_node_of_the_standard_profile_completed(standard: Scan) -> None:
    # --set icmp=false turns the discovery fragment's ICMP node off by its condition; without
    # --ssh-user the credentialed package inventory is off too.
    assert_nodes_completed(standard, "standard", {**NO_ICMP, **NO_ARP, **NO_CREDENTIALS, **SCANNERS_UNCHOSEN})


def test_only_the_daemons_ports_are_open(standard: Scan) -> None:
    assert sorted(p["port"] for p in standard.of("port")) == sorted(standard.lab.ports)
    assert [(h["address"], h["alive"]) for h in standard.of("host")] == [(HOST, True)]


@pytest.mark.parametrize("name", ["sshd", "nginx", "nginx-tls", "redis", "vsftpd"])
def test_each_daemon_is_named_right(standard: Scan, name: str) -> None:
    daemon = standard.lab.daemons[name.removesuffix("-tls")]
    port = standard.lab.tls_port if name == "nginx-tls" else daemon.port
    (found,) = standard.of("service", port)
    verdict = daemon.judge(found["service"], found["product"], found["version"])
    assert verdict[:2] == (True, True) and verdict[2] in (True, None), (found, daemon)
    assert found["tls"] is (name == "nginx-tls")


def test_asset_profile_lists_every_service_on_debian(standard: Scan) -> None:
    (asset,) = standard.of("asset")
    assert asset["open_ports"] == sorted(standard.lab.ports)
    assert [s["port"] for s in asset["services"]] == sorted(standard.lab.ports)
    assert (asset["os"]["family"], asset["os"]["distribution"]) == ("Linux", "Debian")


def test_tls_report_is_the_generated_certificate(standard: Scan) -> None:
    assert [r["port"] for r in standard.of("tls")] == [standard.lab.tls_port]  # nothing else is TLS
    (report,) = standard.of("tls")
    cert = standard.lab.cert.cert
    assert report["error"] is None
    assert report["subject"] == report["issuer"] == "O=pentora tests,CN=localhost"
    assert report["chain"][0]["sha256"] == cert.fingerprint(hashes.SHA256()).hex()
    assert (report["self_signed"], report["expired"], report["hostname_mismatch"]) == (True, False, False)
    assert (report["key_type"].split()[0], report["key_bits"]) == ("RSA", 2048)
    assert set(report["sans"]) == {"localhost", HOST}
    assert report["protocols"] == {} and report["ciphers"] == []  # check_ciphers is off in standard


def test_http_records_and_nginx_webtech(standard: Scan) -> None:
    nginx = standard.lab.daemons["nginx"]
    (plain,) = standard.of("http", nginx.port)
    assert (plain["tls"], plain["status"], plain["title"]) == (False, 200, "Welcome to nginx!")
    assert plain["server"] == f"nginx/{nginx.upstream_version}"
    (tls,) = standard.of("http", standard.lab.tls_port)
    assert (tls["tls"], tls["status"], tls["body"]) == (True, 200, "tls\n")
    assert tls["url"] == f"https://{HOST}:{standard.lab.tls_port}/"
    for port in (nginx.port, standard.lab.tls_port):
        names = {(t["name"], t["version"]) for t in standard.of("webtech", port)}
        assert ("nginx", nginx.upstream_version) in names, names
    assert {r["port"] for r in standard.of("http")} == {nginx.port, standard.lab.tls_port}


def test_misconfigurations_are_found_where_they_are(standard: Scan) -> None:
    d, tls_port = standard.lab.daemons, standard.lab.tls_port
    assert "230" in standard.findings(d["vsftpd"].port)["PENTORA-FTP-ANONYMOUS"]["evidence"]
    redis = standard.findings(d["redis"].port)["PENTORA-REDIS-NOAUTH"]
    assert f"redis_version:{d['redis'].upstream_version}" in redis["evidence"]
    assert "CN=localhost" in standard.findings(tls_port)["PENTORA-TLS-SELF-SIGNED"]["evidence"]
    assert "PENTORA-HTTP-DEFAULT-PAGE" in standard.findings(d["nginx"].port)
    where = {(v["port"], v["id"]) for v in standard.of("vulnerability")}
    for port, vid in ((d["vsftpd"].port, "PENTORA-FTP-ANONYMOUS"), (d["redis"].port, "PENTORA-REDIS-NOAUTH"),
                      (tls_port, "PENTORA-TLS-SELF-SIGNED")):
        assert {p for p, i in where if i == vid} == {port}, vid


@pytest.mark.parametrize("name", ["sshd", "nginx", "redis", "vsftpd"])
def test_cves_are_judged_by_the_debian_build(standard: Scan, name: str) -> None:
    daemon = standard.lab.daemons[name]
    ports = [daemon.port, standard.lab.tls_port] if name == "nginx" else [daemon.port]
    for port in ports:
        found = {k: v for k, v in standard.findings(port).items() if k.startswith("CVE-")}
        check_findings(found, CPE[name], daemon.upstream_version, daemon.package,
                       daemon.package_version, exact=name == "sshd")
        for v in found.values():
            assert v["cvss"] is not None and v["references"] and v["source"] == "builtin"


def test_no_finding_is_reported_twice(standard: Scan) -> None:
    assert_unique_findings(standard)


# -- web-scan and vuln-scan on nginx ------------------------------------------------------------


@pytest.fixture(scope="module", params=["web-scan", "vuln-scan"])
def web(request: pytest.FixtureRequest, running: Lab, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    out = tmp_path_factory.mktemp(request.param) / "scan.jsonl"
    ports = [running.daemons["nginx"].port, running.tls_port]
    extra = ("--set", "icmp=false") if request.param == "vuln-scan" else ()
    return Scan(running, run_profile(request.param, ports, out, *extra), read_jsonl(out))


def test_web_profiles_run_every_node(web: Scan) -> None:
    assert web.done.returncode == 0, web.why()
    (record,) = web.of("scan")
    skipped = ({**NO_ICMP, **NO_ARP, **NO_CREDENTIALS, **SCANNERS_UNCHOSEN} if record["dag"] == "vuln-scan"
               else SCANNERS_UNCHOSEN)
    assert_nodes_completed(web, record["dag"], skipped)
    assert_unique_findings(web)


def test_web_profiles_read_both_nginx_ports(web: Scan) -> None:
    nginx, tls_port = web.lab.daemons["nginx"], web.lab.tls_port
    assert {(r["port"], r["tls"], r["status"]) for r in web.of("http")} == {(nginx.port, False, 200),
                                                                            (tls_port, True, 200)}
    for port in (nginx.port, tls_port):
        names = {(t["name"], t["version"]) for t in web.of("webtech", port)}
        assert ("nginx", nginx.upstream_version) in names, names


def test_web_profiles_enumerate_the_protocols_nginx_accepts(web: Scan) -> None:
    (report,) = web.of("tls")
    assert report["port"] == web.lab.tls_port and report["self_signed"] is True
    expected = {name: accepts(web.lab.tls_port, name) for name in PROTOCOLS}
    assert report["protocols"] == {"SSLv3": False, **expected}
    assert report["ciphers"] and {c["protocol"] for c in report["ciphers"]} == {
        name for name, ok in expected.items() if ok}
    weak = {f"PENTORA-TLS-WEAK-PROTOCOL-{name.upper()}" for name in ("TLSv1.0", "TLSv1.1") if expected[name]}
    found = web.findings(web.lab.tls_port)
    assert {k for k in found if k.startswith("PENTORA-TLS-WEAK-PROTOCOL")} == weak
    assert ("PENTORA-TLS-WEAK-CIPHER" in found) == any(c["weak"] for c in report["ciphers"])


def test_web_profiles_findings(web: Scan) -> None:
    nginx, tls_port = web.lab.daemons["nginx"], web.lab.tls_port
    plain, tls = web.findings(nginx.port), web.findings(tls_port)
    assert {"PENTORA-HTTP-DEFAULT-PAGE", "PENTORA-HTTP-MISSING-HEADERS"} <= set(plain)
    assert {"PENTORA-TLS-SELF-SIGNED", "PENTORA-HTTP-MISSING-HEADERS"} <= set(tls)
    cves = [v for v in (*plain.values(), *tls.values()) if v["id"].startswith("CVE-")]
    # nginx alone shows no distribution: its upstream ranges, at the quality of a banner
    assert {v["id"] for v in cves} == catalog_cves("nginx", nginx)
    assert all((v["method"], v["quality"]) == ("banner", 80) for v in cves), cves
    if web.of("scan")[0]["dag"] == "web-scan":  # no asset profile in web-scan
        assert not web.of("asset")
    else:
        assert [a["open_ports"] for a in web.of("asset")] == [sorted((nginx.port, tls_port))]
