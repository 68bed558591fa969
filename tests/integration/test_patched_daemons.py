"""Findings on Debian's own, patched daemons, held to what each package's changelog says it fixed.

sshd, Exim, redis-server, nginx, Apache httpd, vsftpd and PostgreSQL from Debian's
packages are started by ``daemons.py`` on free ports of 127.0.0.1, each with a config of
its own, and scanned as a user would::

    python -m pentora scan --targets 127.0.0.1 --profile standard -p PORTS --set icmp=false -o OUT.jsonl

Debian keeps the upstream version in a banner while it backports fixes, so a scanner that
reads ``OpenSSH_9.2p1`` and reports every CVE of 9.2p1 as verified is wrong about a
patched package. The truth here is outside pentora: the CVE ids that the package's own
``/usr/share/doc/BINARY/changelog.Debian.gz`` names in an entry at or below the installed
version (``changelog.py``; versions ordered by dpkg). What must hold:

- no vulnerability of quality 70 or more (kit.quality's verified findings, which the
  default views count; a record without a quality counts as verified) names a CVE the
  package's changelog lists as fixed;
- the client-side OpenSSH CVEs (ssh, ssh-agent: CVE-2023-38408, CVE-2025-26465,
  CVE-2023-51385) are not reported against sshd at any quality.

A changelog is a lower bound of what is fixed (an entry may fix a CVE without naming it),
so these tests can miss a false finding, never invent one. Each test prints the findings
of its daemon with their quality and method, and what the changelog says of each.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pentora_plugins.kit.quality import DEFAULT_MIN_QUALITY, is_verified

from . import changelog, daemons
from .test_standard_profile import read_jsonl, run_profile

pytestmark = pytest.mark.integration

NAMES = ("sshd", "exim", "redis", "nginx", "apache2", "vsftpd", "postgresql")
STARTERS = {"sshd": daemons.sshd, "exim": daemons.exim, "redis": daemons.redis, "nginx": daemons.nginx,
            "apache2": daemons.apache2, "vsftpd": daemons.vsftpd, "postgresql": daemons.postgresql}
# Flaws of ssh(1) and ssh-agent(1), the client programs: a server's banner says nothing of them.
SSH_CLIENT_SIDE = ("CVE-2023-38408", "CVE-2025-26465", "CVE-2023-51385")
SCAN_TIMEOUT = 240.0  # a hang guard: the scan of seven local ports takes seconds


@dataclass
class Scan:
    daemons: dict[str, daemons.Daemon]
    returncode: int
    stderr: str
    lines: list[dict[str, Any]]

    def of(self, kind: str, port: int) -> list[dict[str, Any]]:
        return [r for r in self.lines if r.get("kind") == kind and r.get("port") == port]

    def findings(self, name: str) -> list[dict[str, Any]]:
        return sorted(self.of("vulnerability", self.daemons[name].port), key=lambda v: v["id"])


def fixed_by_package(daemon: daemons.Daemon) -> dict[str, str]:
    """CVE id -> the Debian revision whose changelog entry names it (at or below the installed one)."""
    return changelog.fixed_cves(daemon.package, daemon.package_version)


def table(scan: Scan, names: tuple[str, ...]) -> str:
    """The findings of the named daemons, one line each, with what the changelog says."""
    rows = [("daemon", "port", "package", "finding", "quality", "method", "kev", "changelog")]
    for name in names:
        daemon = scan.daemons[name]
        fixed = fixed_by_package(daemon)
        package = f"{daemon.package} {daemon.package_version}"
        found = scan.findings(name)
        if not found:
            rows.append((name, str(daemon.port), package, "(none)", "", "", "", ""))
        for v in found:
            rows.append((name, str(daemon.port), package, v["id"], str(v.get("quality")),
                         str(v.get("method")), "yes" if v.get("known_exploited") else "",
                         f"fixed in {fixed[v['id']]}" if v["id"] in fixed else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    reason = daemons.ensure_packages()
    if reason:
        pytest.skip(f"real daemons unavailable: {reason}")
    out = tmp_path_factory.mktemp("patched") / "scan.jsonl"
    with contextlib.ExitStack() as stack:
        running = {name: stack.enter_context(STARTERS[name]()) for name in NAMES}
        done = run_profile("standard", [d.port for d in running.values()], out, "--set", "icmp=false",
                           timeout=SCAN_TIMEOUT)
        result = Scan(running, done.returncode, done.stderr, read_jsonl(Path(out)))
        print(table(result, NAMES))
        yield result


def test_standard_scan_of_the_patched_daemons_succeeds(scan: Scan) -> None:
    assert scan.returncode == 0, f"exit {scan.returncode}\n{scan.stderr[-3000:]}"
    assert [r for r in scan.lines if r.get("kind") == "scan"], "the JSONL has no scan record"


@pytest.mark.parametrize("name", NAMES)
def test_each_daemon_is_identified(scan: Scan, name: str) -> None:
    # Without its product and version the daemon could not be held to its changelog at all.
    daemon = scan.daemons[name]
    services = scan.of("service", daemon.port)
    assert len(services) == 1, f"{name} on {daemon.port}: {services}"
    (found,) = services
    verdict = daemon.judge(found["service"], found["product"], found["version"])
    assert verdict[:2] == (True, True) and verdict[2] in (True, None), (found, daemon)


@pytest.mark.parametrize("name", NAMES)
def test_no_verified_finding_is_a_cve_the_package_fixed(scan: Scan, name: str) -> None:
    daemon = scan.daemons[name]
    fixed = fixed_by_package(daemon)
    print(table(scan, (name,)))
    if not fixed:
        pytest.skip(f"{daemon.package} {daemon.package_version}: its changelog names no CVE, "
                    f"nothing to hold the findings to")
    wrong = [v for v in scan.findings(name) if v["id"] in fixed and is_verified(v)]
    assert not wrong, (
        f"{len(wrong)} finding(s) of quality {DEFAULT_MIN_QUALITY} or more (or none stated) on "
        f"{daemon.product} ({daemon.package} {daemon.package_version}, port {daemon.port}) name CVEs "
        f"its Debian changelog lists as fixed:\n" + "\n".join(
            f"  {v['id']}: quality {v.get('quality')}, method {v.get('method')}; fixed in "
            f"{fixed[v['id']]}; evidence: {v.get('evidence')}" for v in wrong))


def test_ssh_client_side_cves_are_not_reported_against_sshd(scan: Scan) -> None:
    sshd = scan.daemons["sshd"]
    wrong = [v for v in scan.findings("sshd") if v["id"] in SSH_CLIENT_SIDE]
    assert not wrong, (f"client-side OpenSSH CVEs reported against sshd on port {sshd.port}:\n" + "\n".join(
        f"  {v['id']}: quality {v.get('quality')}, method {v.get('method')}; {v.get('title')}"
        for v in wrong))
