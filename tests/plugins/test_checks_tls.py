"""tls_checks: findings from ssl_analyzer's reports of real TLS servers on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pentora_plugins.checks
import pentora_plugins.checks.tls_checks as checks_tls
import pentora_plugins.engine
import pentora_plugins.tls
from pentora_plugins.kit.records import ServiceFingerprint, TlsReport, Vulnerability

from pentora import DagBuilder, Orchestrator
from pentora.testing import RecordCollector

from ._tlsfixtures import DAY, NOW, issue, openssl_handler, scripted_handler, write

HOST = "127.0.0.1"


def scan(ports: list[int], existing: list[Vulnerability] | None = None,
         **analyzer: Any) -> tuple[dict[tuple[int | None, str], Vulnerability], RecordCollector]:
    values: dict[str, Any] = {"service_fingerprints": [ServiceFingerprint(HOST, p, service="https", tls=True)
                                                       for p in ports]}
    if existing is not None:
        values["vulnerabilities"] = existing
    dag = (DagBuilder().add_node("seed", "set", config={"values": values})
           .add_node("tls", "ssl_analyzer", ["seed"], config={"timeout": "3s", **analyzer})
           .add_node("checks", "tls_checks", ["tls"]).build())
    collector = RecordCollector()
    orch = Orchestrator(plugins=[pentora_plugins.engine, pentora_plugins.tls, pentora_plugins.checks,
                                 collector], autoload=False)
    orch.load_dag(dag)
    result = orch.execute()
    assert result.ok, {n: r.error for n, r in result.nodes.items() if r.error}
    return {(v.port, v.id): v for v in result.context.get("vulnerabilities")}, collector


def test_expired_self_signed_mismatched_certificate(tcp_server, tmp_path: Path) -> None:
    old = issue("old.pentora.test", names=("old.pentora.test",), not_before=NOW - 400 * DAY,
                not_after=NOW - 3 * DAY)
    port = tcp_server(handler=openssl_handler(write(tmp_path, old))).port
    found, collector = scan([port])
    assert {i for _, i in found} == {"PENTORA-TLS-EXPIRED", "PENTORA-TLS-SELF-SIGNED",
                                     "PENTORA-TLS-HOSTNAME-MISMATCH"}
    expired = found[(port, "PENTORA-TLS-EXPIRED")]
    assert expired.source == "check:tls" and expired.severity == "medium" and expired.host == HOST
    assert old.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ") in expired.evidence
    assert expired.references and all(isinstance(r, str) for r in expired.references)
    mismatch = found[(port, "PENTORA-TLS-HOSTNAME-MISMATCH")]
    assert "127.0.0.1 is not among old.pentora.test" in mismatch.evidence
    assert {v.id for v in collector.of("vulnerability")} == {i for _, i in found}  # emitted too
    assert {(v.method, v.quality) for v in found.values()} == {("active", 95)}


def test_a_good_certificate_and_server_give_no_finding(tcp_server, tmp_path: Path) -> None:
    root = issue("root", ca=True)
    leaf = issue("localhost", issuer=root, names=("localhost", HOST))
    port = tcp_server(handler=openssl_handler(write(tmp_path, leaf, root),
                                              versions=("TLSv1_2", "TLSv1_3"))).port
    found, _ = scan([port], check_ciphers=True)
    assert found == {}


def test_weak_protocols_and_ciphers(tcp_server, tmp_path: Path) -> None:
    root = issue("root", ca=True)
    files = write(tmp_path, issue("localhost", issuer=root, names=(HOST,)), root)
    port = tcp_server(handler=openssl_handler(files, versions=("TLSv1", "TLSv1_2"),
                                              ciphers="AECDH-AES128-SHA:AES128-SHA:@SECLEVEL=0")).port
    found, _ = scan([port], check_ciphers=True)
    assert {i for _, i in found} == {"PENTORA-TLS-WEAK-PROTOCOL-TLSV1.0", "PENTORA-TLS-WEAK-PROTOCOL-TLSV1.1",
                                     "PENTORA-TLS-WEAK-CIPHER"}
    cipher = found[(port, "PENTORA-TLS-WEAK-CIPHER")]
    assert cipher.severity == "high" and cipher.cvss == 7.5  # anonymous key exchange
    assert "TLSv1.2 TLS_ECDH_anon_WITH_AES_128_CBC_SHA (0xC018): anonymous" in cipher.evidence
    assert "TLS_RSA_WITH_AES_128_CBC_SHA (" not in cipher.evidence
    assert found[(port, "PENTORA-TLS-WEAK-PROTOCOL-TLSV1.0")].severity == "medium"


def test_sslv3_from_a_scripted_server_is_high(tcp_server) -> None:
    root = issue("root", ca=True)
    chain = [issue("localhost", issuer=root, names=(HOST,)).der, root.der]
    port = tcp_server(handler=scripted_handler({0x0300}, [0x0004], chain)).port
    found, _ = scan([port], check_ciphers=True)
    sslv3 = found[(port, "PENTORA-TLS-WEAK-PROTOCOL-SSLV3")]
    assert sslv3.severity == "high" and any("POODLE" in r for r in sslv3.references)
    assert "RC4" in found[(port, "PENTORA-TLS-WEAK-CIPHER")].evidence


def test_findings_merge_into_existing_vulnerabilities(tcp_server, tmp_path: Path) -> None:
    port = tcp_server(handler=openssl_handler(write(tmp_path, issue("x", names=("x.pentora.test",))))).port
    earlier = Vulnerability(HOST, 22, "CVE-2023-48795", title="Terrapin", source="cve")
    found, _ = scan([port], existing=[earlier])
    assert found[(22, "CVE-2023-48795")] == earlier
    assert (port, "PENTORA-TLS-SELF-SIGNED") in found


def test_reports_with_errors_short_keys_and_sha1_signatures() -> None:
    broken = TlsReport(HOST, 1, error="connection failed: refused")
    weak = TlsReport(HOST, 2, subject="CN=a", issuer="CN=b", key_type="RSA", key_bits=1024,
                     signature_algorithm="sha1WithRSAEncryption", self_signed=False,
                     chain=[{"not_yet_valid": True}])
    found = {v.id: v for v in checks_tls.findings([broken, weak.to_dict() | {"kind": "tls"}])}
    assert set(found) == {"PENTORA-TLS-WEAK-KEY", "PENTORA-TLS-WEAK-SIGNATURE", "PENTORA-TLS-NOT-YET-VALID"}
    assert found["PENTORA-TLS-WEAK-KEY"].evidence.startswith("RSA key of 1024 bits")
    assert "PENTORA-TLS-WEAK-KEY" not in {v.id for v in checks_tls.findings([weak], min_key_bits=1024)}
