"""Vulnerable versions are still reported as verified: the other half of trusting a finding.

Small fake servers on 127.0.0.1 (plain sockets, in threads of this process) announce
versions whose flaws are public, and are scanned as a user would, with the standard
profile (``pentora scan --targets 127.0.0.1 --profile standard -p PORTS``). Each scenario is
a scan of its own, so that one server's distribution does not colour another's findings:

- ``upstream``: ``SSH-2.0-OpenSSH_9.3`` and an HTTP server answering
  ``Server: Apache/2.4.49 (Unix)``, builds that show no distribution. CVE-2024-6387
  (regreSSHion, 8.5p1 to 9.7p1) and CVE-2021-41773 (Apache 2.4.49's path traversal) must be
  reported with method ``banner`` and a quality of 70 or more, and so must every CVE
  reported on those ports; ssh's client-side CVEs (CVE-2023-38408 in ssh-agent,
  CVE-2025-26465, CVE-2023-51385) must not be, at any quality.
- ``deb12u2``: ``SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2``, a Debian 12 revision older than
  the regreSSHion fix (``1:9.2p1-2+deb12u3``, DSA-5724-1): CVE-2024-6387 is reported with
  method ``banner-distro``, quality 90.
- ``deb12u10``: ``Debian-2+deb12u10``, which carries that fix: CVE-2024-6387 is not reported.

For both Debian revisions, as for the real daemons of ``test_patched_daemons.py``, no
verified finding may name a CVE that Debian's openssh changelog (the installed one, read
by ``changelog.py``) lists as fixed at or below the revision shown.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pentora_plugins.kit.quality import DEFAULT_MIN_QUALITY, is_verified

from pentora.testing import TcpServer

from . import changelog
from .test_standard_profile import read_jsonl, run_profile

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
SSH_CLIENT_SIDE = ("CVE-2023-38408", "CVE-2025-26465", "CVE-2023-51385")
REGRESSHION = "CVE-2024-6387"
APACHE_TRAVERSAL = "CVE-2021-41773"
SCAN_TIMEOUT = 240.0  # a hang guard: each scan of two local ports takes seconds
READ_TIMEOUT = 5.0
PAGE = b"<html><head><title>It works</title></head><body><h1>It works!</h1></body></html>\n"
# The Debian revision each scenario's sshd shows, and the package version it stands for.
DEBIAN_REVISION = {"deb12u2": "1:9.2p1-2+deb12u2", "deb12u10": "1:9.2p1-2+deb12u10"}


def ssh_banner(line: bytes) -> Any:
    """A connection handler: the identification line, then (as sshd would, without the key
    exchange) wait for the client's line and close."""
    def handle(conn: socket.socket) -> None:
        conn.sendall(line)
        conn.settimeout(READ_TIMEOUT)
        with contextlib.suppress(OSError):
            conn.recv(4096)
    return handle


def apache_2449(conn: socket.socket) -> None:
    """Answer the request (any bytes up to the blank line) as Apache 2.4.49 would, then close."""
    conn.settimeout(READ_TIMEOUT)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    head = (b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 12:00:00 GMT\r\nServer: Apache/2.4.49 (Unix)\r\n"
            b"Content-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(PAGE))
    conn.sendall(head + (b"" if data.startswith(b"HEAD ") else PAGE))


SCENARIOS: dict[str, dict[str, Any]] = {
    "upstream": {"ssh": ssh_banner(b"SSH-2.0-OpenSSH_9.3\r\n"), "http": apache_2449},
    "deb12u2": {"ssh": ssh_banner(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2\r\n")},
    "deb12u10": {"ssh": ssh_banner(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n")},
}


@dataclass
class Scan:
    scenario: str
    ports: dict[str, int]
    returncode: int
    stderr: str
    lines: list[dict[str, Any]]

    def of(self, kind: str, what: str) -> list[dict[str, Any]]:
        port = self.ports[what]
        return [r for r in self.lines if r.get("kind") == kind and r.get("port") == port]

    def cves(self, what: str) -> dict[str, dict[str, Any]]:
        return {v["id"]: v for v in self.of("vulnerability", what) if v["id"].startswith("CVE-")}

    def table(self) -> str:
        rows = [f"{what:5} {v['id']:24} quality {v.get('quality')!s:5} method {v.get('method')}"
                for what in self.ports for v in sorted(self.of("vulnerability", what), key=lambda v: v["id"])]
        return f"scenario {self.scenario}:\n" + ("\n".join(rows) or "(no findings)")


def describe(v: dict[str, Any]) -> str:
    return f"{v['id']}: quality {v.get('quality')}, method {v.get('method')}; evidence: {v.get('evidence')}"


def run_scenario(name: str, tmp: Path) -> Scan:
    """Start the scenario's servers, scan their ports with the standard profile, stop them."""
    servers = [TcpServer(host=HOST, handler=handler) for handler in SCENARIOS[name].values()]
    try:
        for server in servers:
            server.start()
        ports = {what: server.port for what, server in zip(SCENARIOS[name], servers, strict=True)}
        out = tmp / "scan.jsonl"
        done = run_profile("standard", list(ports.values()), out, "--set", "icmp=false", timeout=SCAN_TIMEOUT)
        result = Scan(name, ports, done.returncode, done.stderr, read_jsonl(out))
    finally:
        for server in servers:
            if hasattr(server, "_sock"):  # started
                server.stop()
    print(result.table())
    return result


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Scan]:
    """Each scenario's scan, run once, when a test first asks for it."""
    done: dict[str, Scan] = {}

    def get(name: str) -> Scan:
        if name not in done:
            done[name] = run_scenario(name, tmp_path_factory.mktemp(name))
        return done[name]
    return get


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scan_succeeds_and_names_the_fake_products(scans: Callable[[str], Scan], scenario: str) -> None:
    scan = scans(scenario)
    assert scan.returncode == 0, f"exit {scan.returncode}\n{scan.stderr[-3000:]}"
    (ssh,) = scan.of("service", "ssh")
    assert (ssh["product"], ssh["version"]) == ("OpenSSH", "9.3" if scan.scenario == "upstream" else "9.2p1")
    if "http" in scan.ports:
        (http,) = scan.of("service", "http")
        assert (http["product"], http["version"]) == ("Apache httpd", "2.4.49"), http


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_ssh_client_side_cves_are_never_reported(scans: Callable[[str], Scan], scenario: str) -> None:
    scan = scans(scenario)
    wrong = [describe(v) for k, v in scan.cves("ssh").items() if k in SSH_CLIENT_SIDE]
    assert not wrong, "client-side OpenSSH CVEs reported against an sshd banner:\n" + "\n".join(wrong)


def test_upstream_builds_are_reported_verified_by_banner(scans: Callable[[str], Scan]) -> None:
    scan = scans("upstream")
    print(scan.table())
    for what, must in (("ssh", REGRESSHION), ("http", APACHE_TRAVERSAL)):
        found = scan.cves(what)
        assert must in found, f"{must} not reported on the {what} port:\n{scan.table()}"
        wrong = [describe(v) for v in found.values()
                 if v.get("method") != "banner" or (v.get("quality") or 0) < DEFAULT_MIN_QUALITY]
        assert not wrong, (f"findings on the upstream {what} build not reported with method banner and "
                           f"quality {DEFAULT_MIN_QUALITY} or more:\n" + "\n".join(wrong))


def test_debian_revision_below_the_fix_is_reported_banner_distro(scans: Callable[[str], Scan]) -> None:
    scan = scans("deb12u2")
    found = scan.cves("ssh")
    assert REGRESSHION in found, f"{REGRESSHION} not reported on Debian-2+deb12u2:\n{scan.table()}"
    v = found[REGRESSHION]
    assert (v.get("method"), v.get("quality")) == ("banner-distro", 90), describe(v)


def test_debian_revision_with_the_fix_is_not_reported(scans: Callable[[str], Scan]) -> None:
    scan = scans("deb12u10")
    found = scan.cves("ssh")
    assert REGRESSHION not in found, ("reported on OpenSSH_9.2p1 Debian-2+deb12u10, which carries "
                                      f"Debian's fix (1:9.2p1-2+deb12u3): {describe(found[REGRESSHION])}")


@pytest.mark.parametrize("scenario", list(DEBIAN_REVISION))
def test_debian_revisions_findings_agree_with_debians_changelog(scans: Callable[[str], Scan],
                                                                 scenario: str) -> None:
    scan = scans(scenario)
    revision = DEBIAN_REVISION[scan.scenario]
    fixed = changelog.fixed_cves("openssh-server", revision)
    if not fixed:
        pytest.skip(f"Debian's openssh changelog is not installed here, or names no CVE up to {revision}")
    wrong = [f"{describe(v)}; fixed in {fixed[k]}" for k, v in scan.cves("ssh").items()
             if k in fixed and is_verified(v)]
    assert not wrong, (f"verified findings on OpenSSH_9.2p1 Debian revision {revision} name CVEs "
                       "Debian's openssh changelog lists as fixed by then:\n" + "\n".join(wrong))
