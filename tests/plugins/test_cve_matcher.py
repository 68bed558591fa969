"""cve_matcher in a DAG: fingerprints (and web technologies) in, findings out, with the
confidence of distribution builds lowered and the reason given; filters; config errors."""

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


def test_debian_build_is_reported_with_lower_confidence_and_the_reason() -> None:
    found = by_key(run({"service_fingerprints": [DEBIAN_SSH, UPSTREAM_SSH]}))
    v = found[("127.0.0.1", 22, "CVE-2024-6387")]
    assert (v.cvss, v.severity, v.source) == (8.1, "high", "builtin")
    assert v.title.startswith("regreSSHion")
    assert "https://www.qualys.com/2024/07/01/cve-2024-6387/regresshion.txt" in v.references
    assert v.evidence.startswith("OpenSSH 9.2p1 (openbsd:openssh) matches CVE-2024-6387: affected "
                                 "range >=8.5p1, <9.8p1; confidence 0.47 (lowered: "
                                 "Debian build (Debian-2+deb12u3): the distribution may have "
                                 "backported the fix")
    upstream = found[("127.0.0.2", 2222, "CVE-2024-6387")]
    assert "confidence 0.95" in upstream.evidence and "lowered" not in upstream.evidence
    assert ("127.0.0.2", 2222, "CVE-2025-26466") in found  # 9.5p1 <= 9.7p1 < 9.9p2
    assert ("127.0.0.1", 22, "CVE-2025-26466") not in found  # 9.2p1 is older than 9.5p1


def test_other_services_of_a_debian_host_are_lowered_too() -> None:
    found = by_key(run({"service_fingerprints": [DEBIAN_SSH, NGINX, UPSTREAM_NGINX]}))
    lowered = found[("127.0.0.1", 8080, "CVE-2024-7347")]
    assert "confidence 0.47 (lowered: the host runs Debian, from OpenSSH on port 22" in lowered.evidence
    plain = found[("127.0.0.2", 80, "CVE-2024-7347")]
    assert "confidence 0.93;" not in plain.evidence and plain.evidence.endswith("confidence 0.93")


def test_version_with_a_debian_revision_and_asset_profile_os() -> None:
    web = [{"host": "127.0.0.4", "port": 443, "name": "nginx", "version": "1.20.0-9+deb11u1"},
           {"host": "127.0.0.5", "port": 80, "name": "nginx", "version": "1.20.0"},
           {"host": "127.0.0.6", "port": 80, "name": "Apache httpd", "version": "2.4.49"}]
    profiles = [{"host": "127.0.0.5", "os": {"family": "Linux", "distribution": "Ubuntu"}}]
    found = by_key(run({"service_fingerprints": [], "web_technologies": web,
                        "asset_profiles": profiles}))
    assert "lowered: Debian build (deb11u1)" in found[("127.0.0.4", 443, "CVE-2021-23017")].evidence
    assert "the host runs Ubuntu, from the asset profile" in \
        found[("127.0.0.5", 80, "CVE-2021-23017")].evidence
    # no CPE: the product name is looked up the way the fingerprint catalog spells it
    assert ("127.0.0.6", 80, "CVE-2021-41773") in found and ("127.0.0.6", 80, "CVE-2021-42013") in found


def test_filters_and_the_merge_with_earlier_findings() -> None:
    earlier = Vulnerability("127.0.0.3", 21, "PENTORA-FTP-ANONYMOUS", "anonymous FTP", "medium", 5.3,
                            source="check:services")
    values = {"service_fingerprints": [DEBIAN_SSH, BACKDOOR], "vulnerabilities": [earlier]}
    found = by_key(run(values, {"min_confidence": 0.5}))
    assert not any(k[0] == "127.0.0.1" for k in found)  # Debian: 0.475 < 0.5
    assert ("127.0.0.3", 21, "CVE-2011-2523") in found
    assert found[("127.0.0.3", 21, "PENTORA-FTP-ANONYMOUS")] == earlier
    strong = by_key(run({"service_fingerprints": [DEBIAN_SSH]}, {"min_cvss": 9.0}))
    assert set(strong) == {("127.0.0.1", 22, "CVE-2023-38408")}


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
