"""cve_matcher in a DAG: fingerprints (and web technologies, banners, installed packages)
in, findings out, each with its method and quality: distribution builds judged by the
distribution's own fixed version, client-side flaws never reported against a server;
filters; config errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pentora_plugins.cve
import pentora_plugins.engine
import pytest
from pentora_plugins.kit.records import ServiceFingerprint, Vulnerability

from pentora import DagBuilder, Orchestrator, ValidationError
from pentora.testing import RecordCollector

DEBIAN_SSH = ServiceFingerprint(
    "127.0.0.1", 22, "tcp", "ssh", "OpenSSH", "9.2p1", "cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*",
    0.95, False, 'ssh-openssh [passive]: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"',
    {"family": "Linux", "distribution": "Debian", "release": "12"}, "protocol 2.0")
NGINX = ServiceFingerprint("127.0.0.1", 8080, "tcp", "http", "nginx", "1.22.1",
                           "cpe:2.3:a:f5:nginx:1.22.1:*:*:*:*:*:*:*", 0.93, False,
                           'http-nginx [http_get]: "Server: nginx/1.22.1"')
UPSTREAM_SSH = ServiceFingerprint("127.0.0.2", 2222, "tcp", "ssh", "OpenSSH", "9.7p1",
                                  "cpe:2.3:a:openbsd:openssh:9.7p1:*:*:*:*:*:*:*", 0.95, False,
                                  'ssh-openssh [passive]: "SSH-2.0-OpenSSH_9.7p1"')
UPSTREAM_NGINX = ServiceFingerprint("127.0.0.2", 80, "tcp", "http", "nginx", "1.22.1",
                                    "cpe:2.3:a:f5:nginx:1.22.1:*:*:*:*:*:*:*", 0.93, False,
                                    'http-nginx [http_get]: "Server: nginx/1.22.1"')
BACKDOOR = {"host": "127.0.0.3", "port": 21, "protocol": "tcp", "service": "ftp",
            "product": "vsftpd", "version": "2.3.4", "cpe": "cpe:2.3:a:beasts:vsftpd:2.3.4:*:*:*:*:*:*:*",
            "confidence": 0.97, "evidence": 'ftp-vsftpd [passive]: "220 (vsFTPd 2.3.4)"'}


def run(values: dict[str, Any], config: dict[str, Any] | None = None,
        recorder: RecordCollector | None = None) -> Any:
    orch = Orchestrator(plugins=[pentora_plugins.cve, pentora_plugins.engine,
                                 *([recorder] if recorder else [])], autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("seed", "set", config={"values": values})
                  .add_node("cve", "cve_matcher", ["seed"], config=config or {}).build())
    result = orch.execute()
    assert result.ok, result.nodes["cve"].error
    return result


def by_key(result: Any) -> dict[tuple[str, int | None, str], Vulnerability]:
    return {(v.host, v.port, v.id): v for v in result.context.get("vulnerabilities")}


CATALOG = """
entries:
  - id: CVE-2099-0001
    product: openbsd:openssh
    title: sshd flaw fixed by Debian in a revision
    cvss: 8.1
    role: server
    component: sshd
    kev: true
    affected: [{from: '8.5p1', before: '9.8p1'}]
    source_url: https://example.invalid/0001
    distros:
      debian/12: {package: openssh, fixed: '1:9.2p1-2+deb12u3', advisory: DSA-9999-1}
      debian/11: {package: openssh, status: not-affected, advisory: https://security-tracker.debian.org/tracker/CVE-2099-0001}
  - id: CVE-2099-0002
    product: openbsd:openssh
    title: ssh-agent flaw
    cvss: 9.8
    role: client
    component: ssh-agent
    affected: [{before: '9.3p2'}]
    source_url: https://example.invalid/0002
    distros:
      debian/12: {package: openssh, fixed: '1:9.2p1-2+deb12u1', advisory: DSA-9998-1}
  - id: CVE-2099-0003
    product: openbsd:openssh
    title: sshd flaw Debian says nothing of
    cvss: 5.9
    role: server
    affected: [{before: '9.6p1'}]
    source_url: https://example.invalid/0003
  - id: CVE-2099-0004
    product: apache:http_server
    title: httpd flaw Debian fixed with a new upstream release
    cvss: 7.5
    role: server
    affected: [{before: '2.4.60'}]
    source_url: https://example.invalid/0004
    distros:
      debian/12: {package: apache2, fixed: '2.4.62-1~deb12u1', advisory: DSA-9997-1}
  - id: CVE-2099-0005
    product: f5:nginx
    title: nginx flaw
    cvss: 5.3
    role: server
    affected: [{before: '1.26.2'}]
    source_url: https://example.invalid/0005
    distros:
      debian/12: {package: nginx, fixed: '1.22.1-9+deb12u2', advisory: DSA-9996-1}
"""


def ssh(host: str, banner: str, port: int = 22) -> ServiceFingerprint:
    version = banner.split("_", 1)[1].split(" ")[0]
    return ServiceFingerprint(host, port, "tcp", "ssh", "OpenSSH", version,
                              f"cpe:2.3:a:openbsd:openssh:{version}:*:*:*:*:*:*:*", 0.95, False,
                              f'ssh-openssh [passive]: "{banner}"')


def web(host: str, server: str, product: str, version: str, port: int = 80) -> ServiceFingerprint:
    return ServiceFingerprint(host, port, "tcp", "http", product, version, None, 0.9, False,
                              f'http-x [http_get]: "Server: {server}"')


@pytest.fixture
def catalog(tmp_path: Path) -> str:
    path = tmp_path / "trust.yaml"
    path.write_text(CATALOG, encoding="utf-8")
    return str(path)


def test_a_debian_revision_is_judged_by_debians_fixed_version(catalog: str) -> None:
    fps = [ssh("127.0.0.1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2"),
           ssh("127.0.0.2", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"),
           ssh("127.0.0.3", "SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3"),
           ssh("127.0.0.4", "SSH-2.0-OpenSSH_9.3")]
    found = by_key(run({"service_fingerprints": fps}, {"catalog": catalog}))
    older = found[("127.0.0.1", 22, "CVE-2099-0001")]
    assert (older.method, older.quality, older.known_exploited) == ("banner-distro", 90, True)
    assert "debian 12 openssh 1:9.2p1-2+deb12u2 is older than the fix 1:9.2p1-2+deb12u3 " \
           "(DSA-9999-1)" in older.evidence
    assert "https://security-tracker.debian.org/tracker/DSA-9999-1" in older.references
    assert ("127.0.0.2", 22, "CVE-2099-0001") not in found  # the fixed revision itself
    assert ("127.0.0.3", 22, "CVE-2099-0001") not in found  # bullseye: not affected
    # Debian says nothing of 0003: it may be fixed, so it is not counted as verified
    unknown = found[("127.0.0.2", 22, "CVE-2099-0003")]
    assert (unknown.method, unknown.quality) == ("banner-backport-prone", 30)
    # an upstream build: the upstream ranges, at full quality
    upstream = found[("127.0.0.4", 22, "CVE-2099-0001")]
    assert (upstream.method, upstream.quality) == ("banner", 80)
    assert "no distribution build seen" in upstream.evidence


def test_client_side_flaws_are_never_reported_against_a_server(catalog: str) -> None:
    fps = [ssh("127.0.0.1", "SSH-2.0-OpenSSH_9.2p1 Debian-2"), ssh("127.0.0.4", "SSH-2.0-OpenSSH_9.3")]
    found = by_key(run({"service_fingerprints": fps}, {"catalog": catalog}))
    assert not [k for k in found if k[2] == "CVE-2099-0002"]
    assert ("127.0.0.1", 22, "CVE-2099-0001") in found  # 1:9.2p1-2 is older than deb12u3


def test_a_distribution_build_without_revision_is_backport_prone(catalog: str) -> None:
    fps = [web("127.0.0.5", "Apache/2.4.59 (Debian)", "Apache httpd", "2.4.59"),
           web("127.0.0.6", "Apache/2.4.59 (Unix)", "Apache httpd", "2.4.59"),
           # nginx says no distribution, but the host's sshd does
           ssh("127.0.0.7", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"),
           web("127.0.0.7", "nginx/1.22.1", "nginx", "1.22.1", 8080),
           web("127.0.0.8", "nginx/1.22.1", "nginx", "1.22.1", 8080)]
    found = by_key(run({"service_fingerprints": fps}, {"catalog": catalog}))
    # Debian fixed 0004 only with 2.4.62: no 2.4.59 package of bookworm has the fix... but
    # the release is not known from "(Debian)" alone: backport-prone
    debian = found[("127.0.0.5", 80, "CVE-2099-0004")]
    assert (debian.method, debian.quality) == ("banner-backport-prone", 30)
    assert "may have backported the fix" in debian.evidence
    unix = found[("127.0.0.6", 80, "CVE-2099-0004")]
    assert (unix.method, unix.quality) == ("banner", 80)
    inferred = found[("127.0.0.7", 8080, "CVE-2099-0005")]
    assert (inferred.method, inferred.quality) == ("banner-backport-prone", 30)
    assert "host: debian 12" in inferred.evidence and "fixed in 1.22.1-9+deb12u2" in inferred.evidence
    alone = found[("127.0.0.8", 8080, "CVE-2099-0005")]
    assert (alone.method, alone.quality) == ("banner", 80)


def test_a_later_upstream_fix_proves_an_older_distribution_build_vulnerable(catalog: str) -> None:
    fps = [ssh("127.0.0.9", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"),
           web("127.0.0.9", "Apache/2.4.59 (Debian)", "Apache httpd", "2.4.59")]
    found = by_key(run({"service_fingerprints": fps}, {"catalog": catalog}))
    v = found[("127.0.0.9", 80, "CVE-2099-0004")]
    assert (v.method, v.quality) == ("banner-distro", 90)
    assert "first fixed in 2.4.62-1~deb12u1 (DSA-9997-1), a later upstream release than 2.4.59" \
        in v.evidence


def test_banners_in_the_context_show_the_build(catalog: str) -> None:
    fp = {"host": "127.0.0.1", "port": 2222, "product": "OpenSSH", "version": "9.2p1",
          "cpe": "cpe:2.3:a:openbsd:openssh:9.2p1:*:*:*:*:*:*:*", "evidence": "ssh-openssh"}
    banner = {"host": "127.0.0.1", "port": 2222, "probe": "passive",
              "data": "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2\r\n"}
    found = by_key(run({"service_fingerprints": [fp], "banners": [banner]}, {"catalog": catalog}))
    assert found[("127.0.0.1", 2222, "CVE-2099-0001")].method == "banner-distro"


def test_installed_packages_make_findings_exact(catalog: str) -> None:
    inventory = {"host": "127.0.0.7", "distribution": "debian", "release": "12",
                 "codename": "bookworm", "manager": "dpkg",
                 "packages": [{"name": "nginx", "version": "1.22.1-9+deb12u1", "source": "nginx",
                               "source_version": "1.22.1-9+deb12u1"},
                              {"name": "openssh-client", "version": "1:9.2p1-2",
                               "source": "openssh", "source_version": "1:9.2p1-2"}]}
    fps = [web("127.0.0.7", "nginx/1.22.1", "nginx", "1.22.1", 8080)]
    found = by_key(run({"service_fingerprints": fps, "packages": [inventory]}, {"catalog": catalog}))
    nginx = found[("127.0.0.7", 8080, "CVE-2099-0005")]
    assert (nginx.method, nginx.quality) == ("package", 97)
    assert "nginx 1.22.1-9+deb12u1 is older than the fix 1.22.1-9+deb12u2" in nginx.evidence
    # the host's own programs, client side included, from the inventory alone
    agent = found[("127.0.0.7", None, "CVE-2099-0002")]
    assert (agent.method, agent.quality, agent.title) == ("package", 97, "ssh-agent flaw")
    assert found[("127.0.0.7", None, "CVE-2099-0001")].method == "package"
    # no statement of debian about 0003: the inventory alone reports nothing of it
    assert ("127.0.0.7", None, "CVE-2099-0003") not in found
    fixed = dict(inventory, packages=[{"name": "nginx", "version": "1.22.1-9+deb12u12",
                                       "source": "nginx"}])
    found = by_key(run({"service_fingerprints": fps, "packages": [fixed]}, {"catalog": catalog}))
    assert not found


def test_forged_revisions_are_not_trusted(catalog: str) -> None:
    fps = [ssh("127.0.0.1", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u99;rm -rf"),
           ssh("127.0.0.2", "SSH-2.0-OpenSSH_9.2p1 Debian-" + "9" * 300)]
    found = by_key(run({"service_fingerprints": fps}, {"catalog": catalog}))
    for host in ("127.0.0.1", "127.0.0.2"):
        v = found[(host, 22, "CVE-2099-0001")]
        assert v.quality is not None and v.quality < 70, (host, v.method, v.evidence)


def test_builtin_catalog_on_upstream_and_named_products() -> None:
    web_techs = [{"host": "127.0.0.6", "port": 80, "name": "Apache httpd", "version": "2.4.49"}]
    found = by_key(run({"service_fingerprints": [UPSTREAM_SSH], "web_technologies": web_techs}))
    assert ("127.0.0.2", 2222, "CVE-2025-26466") in found  # 9.5p1 <= 9.7p1 < 9.9p2
    # no CPE: the product name is looked up the way the fingerprint catalog spells it
    assert ("127.0.0.6", 80, "CVE-2021-41773") in found and ("127.0.0.6", 80, "CVE-2021-42013") in found
    assert found[("127.0.0.6", 80, "CVE-2021-41773")].quality == 80


def test_filters_and_the_merge_with_earlier_findings() -> None:
    earlier = Vulnerability("127.0.0.3", 21, "PENTORA-FTP-ANONYMOUS", "anonymous FTP", "medium", 5.3,
                            source="check:services")
    low = dict(BACKDOOR, host="127.0.0.4", confidence=0.3)
    values = {"service_fingerprints": [BACKDOOR, low], "vulnerabilities": [earlier]}
    found = by_key(run(values, {"min_confidence": 0.5}))
    assert not any(k[0] == "127.0.0.4" for k in found)  # the fingerprint is below 0.5
    assert ("127.0.0.3", 21, "CVE-2011-2523") in found
    assert found[("127.0.0.3", 21, "PENTORA-FTP-ANONYMOUS")] == earlier
    strong = by_key(run({"service_fingerprints": [UPSTREAM_SSH, BACKDOOR]}, {"min_cvss": 9.0}))
    assert set(strong) == {("127.0.0.3", 21, "CVE-2011-2523")}  # 9.8; 9.7p1's are below 9


def test_findings_are_emitted_and_sorted() -> None:
    recorder = RecordCollector()
    result = run({"service_fingerprints": [UPSTREAM_SSH, BACKDOOR, DEBIAN_SSH]}, recorder=recorder)
    stored = result.context.get("vulnerabilities")
    assert stored == sorted(stored, key=lambda v: v.sort_key())
    assert sorted(recorder.of("vulnerability"), key=lambda v: v.sort_key()) == stored


@pytest.mark.parametrize("fingerprint", [
    {"host": "127.0.0.1", "port": 22, "product": "OpenSSH", "version": None,
     "cpe": "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*"},
    {"host": "127.0.0.1", "port": 22, "product": "OpenSSH", "version": "unknown"},
    {"host": "127.0.0.1", "port": 22, "service": "unknown"},
    {"host": "127.0.0.1", "port": 22, "product": "OpenSSH", "version": "9.9p2"},
])
def test_nothing_reported_without_a_known_affected_version(fingerprint: dict[str, Any]) -> None:
    assert run({"service_fingerprints": [fingerprint]}).context.get("vulnerabilities") == []


def test_version_from_the_cpe_when_the_record_has_none() -> None:
    fp = {"host": "127.0.0.1", "port": 21, "cpe": "cpe:2.3:a:beasts:vsftpd:2.3.4:*:*:*:*:*:*:*"}
    assert ("127.0.0.1", 21, "CVE-2011-2523") in by_key(run({"service_fingerprints": [fp]}))


def test_nvd_file_in_the_config(tmp_path: Path) -> None:
    doc = {"vulnerabilities": [{"cve": {
        "id": "CVE-2099-1234", "descriptions": [{"lang": "en", "value": "Test entry."}],
        "metrics": {"cvssMetricV31": [{"type": "Primary", "cvssData": {"baseScore": 9.1}}]},
        "configurations": [{"nodes": [{"operator": "OR", "cpeMatch": [
            {"vulnerable": True, "criteria": "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*",
             "versionStartIncluding": "9.0", "versionEndIncluding": "9.2"}]}]}]}}]}
    path = tmp_path / "local-nvd.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    found = by_key(run({"service_fingerprints": [UPSTREAM_SSH, DEBIAN_SSH]}, {"catalog": str(path)}))
    # NVD's "through 9.2" includes the portable release 9.2p1 (NVD writes it openssh:9.2:p1)
    assert set(found) == {("127.0.0.1", 22, "CVE-2099-1234")}
    v = found[("127.0.0.1", 22, "CVE-2099-1234")]
    assert (v.source, v.severity, v.title) == ("local-nvd.json", "critical", "Test entry.")


def test_config_errors_name_the_node_and_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"vulnerabilities": [{"cve": {"id": 7}}]}', encoding="utf-8")
    for config, message in [({"catalog": str(broken)},
                             f"{broken}: $.vulnerabilities[0].cve.id: expected a string, got int 7"),
                            ({"catalog": str(tmp_path / "none.json")}, "cannot read it"),
                            ({"min_cvss": 11}, "expected a CVSS score from 0 to 10, got 11"),
                            ({"min_confidence": 2}, "min_confidence")]:
        orch = Orchestrator(plugins=[pentora_plugins.cve, pentora_plugins.engine], autoload=False)
        orch.load_dag(DagBuilder()
                      .add_node("seed", "set", config={"values": {"service_fingerprints": []}})
                      .add_node("cve", "cve_matcher", ["seed"], config=config).build())
        with pytest.raises(ValidationError) as e:
            orch.validate()
        assert "cve" in str(e.value) and message in str(e.value)


def test_requires_fingerprints() -> None:
    orch = Orchestrator(plugins=[pentora_plugins.cve, pentora_plugins.engine], autoload=False)
    orch.load_dag(DagBuilder().add_node("cve", "cve_matcher").build())
    with pytest.raises(ValidationError, match="requires 'service_fingerprints'"):
        orch.validate()


def test_the_evaluation_leaves_the_garbage_collector_as_it_found_it() -> None:
    import gc

    from pentora_plugins.cve._match import as_subject, evaluate
    from pentora_plugins.cve.sources import load_catalog

    subjects = [as_subject(UPSTREAM_SSH), as_subject(BACKDOOR)]
    catalog = load_catalog()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    findings = evaluate(catalog, [s for s in subjects if s])
    next(findings)
    assert not gc.isenabled()  # paused while the evaluation runs
    rest = list(findings)
    assert rest and gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        assert list(evaluate(catalog, [s for s in subjects if s])) and not gc.isenabled()
    finally:
        gc.enable()
    gc.freeze()  # a program that froze its own objects keeps them frozen
    try:
        frozen = gc.get_freeze_count()
        assert list(evaluate(catalog, [s for s in subjects if s]))
        # still frozen (an unfreeze would leave none); some may have been freed meanwhile
        assert 0 < gc.get_freeze_count() <= frozen and gc.isenabled()
    finally:
        gc.unfreeze()
    abandoned = evaluate(catalog, [s for s in subjects if s])
    next(abandoned)
    abandoned.close()  # a consumer that stops early resumes it too
    assert gc.isenabled()
