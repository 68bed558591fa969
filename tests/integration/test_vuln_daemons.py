"""Vulnerability evaluation of real daemons from Debian's packages on 127.0.0.1.

sshd, nginx, redis-server, vsftpd with anonymous logins and vsftpd without are started by
``daemons.py`` and scanned in-process through the pipeline
``target_parser → connect_scanner → banner_grabber → fingerprint_parser → cve_matcher +
service_checks``. What must come out:

- the CVEs the built-in catalog lists for each daemon's upstream version, judged by the
  build: OpenSSH's banner shows its Debian revision (compared with Debian's fixed
  versions), and the other daemons share its host (so below quality 70 unless Debian's
  statement proves them vulnerable); client-side flaws never;
- ``PENTORA-FTP-ANONYMOUS`` on the anonymous vsftpd and not on the other one;
- ``PENTORA-REDIS-NOAUTH`` on redis-server (no ``requirepass``; protected mode lets a
  loopback client in).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pentora_plugins.checks
import pentora_plugins.cve
import pentora_plugins.portscan
import pentora_plugins.services
import pentora_plugins.targets
import pytest

from pentora import DagBuilder, Orchestrator

from . import daemons
from ._verdicts import check_findings

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
def test_catalog_cves_are_judged_by_the_debian_build(scan: Scan, name: str) -> None:
    daemon = scan.daemons[name]
    found = {k: v for k, v in scan.findings(name).items() if k.startswith("CVE-")}
    check_findings(found, CPE[name], daemon.upstream_version, daemon.package,
                   daemon.package_version, exact=name == "sshd")
    for v in found.values():
        assert v.source == "builtin" and v.references and v.cvss is not None


def test_the_debian_host_is_named_for_the_daemons_that_do_not_say(scan: Scan) -> None:
    cves = [v for k, v in scan.findings("nginx").items() if k.startswith("CVE-")]
    assert cves, "nginx 1.22.1 is in CVE-2024-7347's upstream range"
    assert all("host: debian 12, from OpenSSH" in v.evidence and v.quality < 70 for v in cves), \
        [(v.id, v.quality, v.evidence) for v in cves]


def test_anonymous_ftp_found_only_where_enabled(scan: Scan) -> None:
    v = scan.findings("vsftpd")["PENTORA-FTP-ANONYMOUS"]
    assert "PASS anonymous@example.com → 230" in v.evidence
    assert "PENTORA-FTP-ANONYMOUS" not in scan.findings("vsftpd-closed")


def test_redis_without_password_found(scan: Scan) -> None:
    v = scan.findings("redis")["PENTORA-REDIS-NOAUTH"]
    assert f"redis_version:{scan.daemons['redis'].upstream_version}" in v.evidence
    assert v.severity == "critical"
