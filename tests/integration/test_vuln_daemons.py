"""Vulnerability evaluation of real daemons from Debian's packages on 127.0.0.1.

sshd, nginx, redis-server, vsftpd with anonymous logins and vsftpd without are started by
``daemons.py`` and scanned in-process through the pipeline
``target_parser → connect_scanner → banner_grabber → fingerprint_parser → cve_matcher +
service_checks``. What must come out:

- the CVEs the built-in catalog lists for each daemon's upstream version (computed from
  the catalog for the installed package, so a Debian point release does not break it),
  every one with lowered confidence: OpenSSH's banner shows a Debian build, and the other
  daemons share its host;
- ``PENTORA-FTP-ANONYMOUS`` on the anonymous vsftpd and not on the other one;
- ``PENTORA-REDIS-NOAUTH`` on redis-server (no ``requirepass``; protected mode lets a
  loopback client in).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pentora_plugins.checks
import pentora_plugins.cve
import pentora_plugins.portscan
import pentora_plugins.services
import pentora_plugins.targets
import pytest
from pentora_plugins.cve.sources import load_catalog

from pentora import DagBuilder, Orchestrator

from . import daemons

pytestmark = pytest.mark.integration

CPE = {"sshd": ("openbsd", "openssh"), "nginx": ("f5", "nginx"), "redis": ("redis", "redis"),
       "vsftpd": ("beasts", "vsftpd")}


@dataclass
class Scan:
    daemons: dict[str, daemons.Daemon]
    result: Any

    def findings(self, name: str) -> dict[str, Any]:
        port = self.daemons[name].port
        return {v.id: v for v in self.result.context.get("vulnerabilities") if v.port == port}


@pytest.fixture(scope="module")
def scan() -> Iterator[Scan]:
    reason = daemons.ensure_packages()
    if reason:
        pytest.skip(f"real daemons unavailable: {reason}")
    with contextlib.ExitStack() as stack:
        running = {"sshd": stack.enter_context(daemons.sshd()),
                   "nginx": stack.enter_context(daemons.nginx()),
                   "redis": stack.enter_context(daemons.redis()),
                   "vsftpd": stack.enter_context(daemons.vsftpd(anonymous=True)),
                   "vsftpd-closed": stack.enter_context(daemons.vsftpd())}
        ports = ",".join(str(d.port) for d in running.values())
        orch = Orchestrator(plugins=[pentora_plugins.targets, pentora_plugins.portscan,
                                     pentora_plugins.services, pentora_plugins.cve, pentora_plugins.checks],
                            autoload=False)
        orch.load_dag(DagBuilder()
                      .add_node("targets", "target_parser", config={"targets": daemons.HOST})
                      .add_node("ports", "connect_scanner", ["targets"],
                                config={"ports": ports, "input": "targets"})
                      .add_node("banners", "banner_grabber", ["ports"])
                      .add_node("fingerprint", "fingerprint_parser", ["banners"])
                      .add_node("cve", "cve_matcher", ["fingerprint"])
                      .add_node("checks", "service_checks", ["fingerprint"]).build())
        result = orch.execute()
        yield Scan(running, result)


def test_pipeline_completes(scan: Scan) -> None:
    failed = {k: n.error for k, n in scan.result.nodes.items() if n.status != "completed"}
    assert not failed


@pytest.mark.parametrize("name", ["sshd", "nginx", "redis", "vsftpd"])
def test_catalog_cves_of_the_installed_version_are_reported_lowered(scan: Scan, name: str) -> None:
    daemon = scan.daemons[name]
    expected = {h.entry.id for h in load_catalog().find(*CPE[name], daemon.upstream_version)}
    found = {k: v for k, v in scan.findings(name).items() if k.startswith("CVE-")}
    assert set(found) == expected, f"{daemon.product} {daemon.upstream_version} ({daemon.package_version})"
    fp = next(f for f in scan.result.context.get("service_fingerprints") if f.port == daemon.port)
    for v in found.values():
        shown = float(re.search(r"confidence (\d\.\d+)", v.evidence).group(1))  # type: ignore[union-attr]
        assert shown < fp.confidence * 0.6, v.evidence
        assert "(lowered: " in v.evidence and "Debian" in v.evidence, v.evidence
        assert v.source == "builtin" and v.references and v.cvss is not None


def test_debian_openssh_is_lowered_for_its_own_banner(scan: Scan) -> None:
    found = scan.findings("sshd")
    assert "CVE-2024-6387" in found  # 9.2p1 is in 8.5p1 <= v < 9.8p1; Debian patched it (deb12u3)
    assert "lowered: Debian build (Debian-" in found["CVE-2024-6387"].evidence


def test_debian_nginx_is_lowered_because_the_host_runs_debian(scan: Scan) -> None:
    cves = [v for k, v in scan.findings("nginx").items() if k.startswith("CVE-")]
    assert cves, "nginx 1.22.1 is in CVE-2024-7347's range"
    sshd_port = scan.daemons["sshd"].port
    assert all(f"the host runs Debian, from OpenSSH on port {sshd_port}" in v.evidence for v in cves)


def test_anonymous_ftp_found_only_where_enabled(scan: Scan) -> None:
    v = scan.findings("vsftpd")["PENTORA-FTP-ANONYMOUS"]
    assert "PASS anonymous@example.com → 230" in v.evidence
    assert "PENTORA-FTP-ANONYMOUS" not in scan.findings("vsftpd-closed")


def test_redis_without_password_found(scan: Scan) -> None:
    v = scan.findings("redis")["PENTORA-REDIS-NOAUTH"]
    assert f"redis_version:{scan.daemons['redis'].upstream_version}" in v.evidence
    assert v.severity == "critical"
