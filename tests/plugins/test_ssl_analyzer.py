"""ssl_analyzer against TLS servers on 127.0.0.1: Python's ssl (OpenSSL) with certificates
made here, and a scripted server for the SSLv3 / TLS 1.0 handshakes OpenSSL refuses."""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path
from typing import Any

import pentora_plugins.engine
import pentora_plugins.tls
import pytest
from pentora_plugins.kit.records import Banner, ServiceFingerprint, TlsReport
from pentora_plugins.tls._cert import matches_host
from pentora_plugins.tls._ciphers import candidates, describe_suite, suites
from pentora_plugins.tls._wire import (
    HELLO_RETRY,
    TLS12,
    TLS13,
    WireError,
    client_hello,
    parse_server_hello,
)

from pentora import DagBuilder, Orchestrator, ValidationError
from pentora.testing import RecordCollector

from ._tlsfixtures import (
    DAY,
    NOW,
    Dripper,
    issue,
    openssl_handler,
    read_client_hello,
    scripted_handler,
    write,
)

HOST = "127.0.0.1"


def analyze(numbers: list[int], *, tls: bool = True, service: str = "https",
            **config: Any) -> tuple[list[TlsReport], RecordCollector]:
    fps = [ServiceFingerprint(HOST, p, service=service, tls=tls) for p in numbers]
    dag = (DagBuilder().add_node("seed", "set", config={"values": {"service_fingerprints": fps}})
           .add_node("tls", "ssl_analyzer", ["seed"], config={"timeout": "3s", **config}).build())
    collector = RecordCollector()
    orch = Orchestrator(plugins=[pentora_plugins.engine, pentora_plugins.tls, collector], autoload=False)
    orch.load_dag(dag)
    result = orch.execute()
    assert result.ok, result.nodes["tls"].error
    return result.context.get("tls_results"), collector


def serve(tcp_server: Any, handler: Any) -> int:
    return int(tcp_server(handler=handler).port)


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    root = issue("pentora test root", ca=True)
    intermediate = issue("pentora test intermediate", issuer=root, ca=True)
    return {"root": root, "intermediate": intermediate,
            "leaf": issue("localhost", issuer=intermediate, names=("localhost", HOST))}


def test_chain_with_an_intermediate_is_read_whole_and_valid(tcp_server, tmp_path: Path, pki) -> None:
    files = write(tmp_path, pki["leaf"], pki["intermediate"])
    port = serve(tcp_server, openssl_handler(files))
    (report,), collector = analyze([port])
    assert report.error is None
    assert report.subject == "O=pentora tests,CN=localhost"
    assert report.issuer == "O=pentora tests,CN=pentora test intermediate"
    assert report.sans == ["localhost", HOST]
    assert (report.key_type, report.key_bits) == ("RSA", 2048)
    assert report.signature_algorithm == "sha256WithRSAEncryption"
    assert (report.self_signed, report.expired, report.hostname_mismatch) == (False, False, False)
    assert [c["subject"] for c in report.chain] == ["O=pentora tests,CN=localhost",
                                                    "O=pentora tests,CN=pentora test intermediate"]
    assert report.chain[0]["signed_by_next"] is True and report.chain[1]["signed_by_next"] is None
    assert report.not_after == pki["leaf"].cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert report.protocols == {} and report.ciphers == []  # check_ciphers is off by default
    assert [r.port for r in collector.of("tls")] == [port]  # emitted as found


def test_expired_certificate(tcp_server, tmp_path: Path) -> None:
    old = issue("localhost", names=("localhost",), not_before=NOW - 400 * DAY, not_after=NOW - 10 * DAY)
    port = serve(tcp_server, openssl_handler(write(tmp_path, old)))
    (report,), _ = analyze([port], server_name="localhost")
    assert report.expired is True and report.self_signed is True
    assert report.hostname_mismatch is False
    assert dt.datetime.strptime(report.not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC) < NOW


def test_self_signed_ec_certificate_with_the_wrong_name(tcp_server, tmp_path: Path) -> None:
    cert = issue("other.pentora.test", key="ec", names=("other.pentora.test",))
    port = serve(tcp_server, openssl_handler(write(tmp_path, cert)))
    (report,), _ = analyze([port], server_name="www.pentora.test")
    assert report.self_signed is True and report.expired is False
    assert report.hostname_mismatch is True and report.server_name == "www.pentora.test"
    assert (report.key_type, report.key_bits) == ("EC (secp256r1)", 256)
    assert report.signature_algorithm == "ecdsa-with-SHA256"


def test_without_a_name_the_address_is_checked(tcp_server, tmp_path: Path) -> None:
    port = serve(tcp_server, openssl_handler(write(tmp_path, issue("localhost", names=("localhost",)))))
    (report,), _ = analyze([port])
    assert report.hostname_mismatch is True  # 127.0.0.1 is not among the SANs


def test_hostname_rules() -> None:
    wild = issue("x", names=("*.pentora.test", "10.1.2.3")).cert
    assert matches_host(wild, "www.pentora.test") and matches_host(wild, "WWW.Pentora.Test.")
    assert not matches_host(wild, "pentora.test") and not matches_host(wild, "a.b.pentora.test")
    assert matches_host(wild, "10.1.2.3") and not matches_host(wild, "10.1.2.4")
    cn_only = issue("legacy.pentora.test").cert  # no SAN extension: the CN counts
    assert matches_host(cn_only, "legacy.pentora.test")


def test_protocols_and_suites_of_a_tls12_only_server(tcp_server, tmp_path: Path) -> None:
    files = write(tmp_path, issue("localhost", names=("localhost",)))
    port = serve(tcp_server, openssl_handler(files, versions=("TLSv1_2", "TLSv1_2"),
                                             ciphers="ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA"))
    (report,), _ = analyze([port], check_ciphers=True)
    assert report.protocols == {"SSLv3": False, "TLSv1.0": False, "TLSv1.1": False, "TLSv1.2": True,
                                "TLSv1.3": False}
    assert sorted((c["name"], c["code"], c["protocol"], c["weak"]) for c in report.ciphers) == [
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "0xC02F", "TLSv1.2", False),
        ("TLS_RSA_WITH_AES_256_CBC_SHA", "0x0035", "TLSv1.2", False)]


def test_weak_suites_and_old_versions_openssl_still_serves(tcp_server, tmp_path: Path) -> None:
    files = write(tmp_path, issue("localhost", names=("localhost",)))
    ciphers = "NULL-MD5:NULL-SHA:AECDH-AES128-SHA:AES128-SHA:@SECLEVEL=0"
    port = serve(tcp_server, openssl_handler(files, versions=("TLSv1", "TLSv1_1"), ciphers=ciphers))
    (report,), _ = analyze([port], check_ciphers=True)
    assert report.protocols == {"SSLv3": False, "TLSv1.0": True, "TLSv1.1": True, "TLSv1.2": False,
                                "TLSv1.3": False}
    by_name = {c["name"]: c for c in report.ciphers if c["protocol"] == "TLSv1.0"}
    assert set(by_name) == {"TLS_RSA_WITH_NULL_MD5", "TLS_RSA_WITH_NULL_SHA",
                            "TLS_ECDH_anon_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"}
    assert by_name["TLS_RSA_WITH_NULL_MD5"]["reason"] == "NULL cipher: no encryption; MD5 MAC"
    assert "anonymous" in by_name["TLS_ECDH_anon_WITH_AES_128_CBC_SHA"]["reason"]
    assert by_name["TLS_RSA_WITH_AES_128_CBC_SHA"]["weak"] is False
    assert {c["name"] for c in report.ciphers if c["protocol"] == "TLSv1.1"} == set(by_name)


def test_tls13_only_server_certificate_through_openssl(tcp_server, tmp_path: Path) -> None:
    files = write(tmp_path, issue("localhost", key="ec", names=(HOST,)))
    port = serve(tcp_server, openssl_handler(files, versions=("TLSv1_3", "TLSv1_3")))
    (report,), _ = analyze([port], check_ciphers=True)
    assert report.error is None and report.hostname_mismatch is False
    assert report.key_type == "EC (secp256r1)" and len(report.chain) == 1
    assert [p for p, on in report.protocols.items() if on] == ["TLSv1.3"]
    assert {c["name"] for c in report.ciphers} == {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                                   "TLS_CHACHA20_POLY1305_SHA256"}


def test_sslv3_and_tls10_through_crafted_client_hellos(tcp_server, pki) -> None:
    seen: list[tuple[int, list[int]]] = []
    rc4_sha, des3, aes128 = 0x0005, 0x000A, 0x002F
    chain = [pki["leaf"].der, pki["intermediate"].der]
    port = serve(tcp_server, scripted_handler({0x0300, 0x0301}, [rc4_sha, des3, aes128], chain, seen))
    (report,), _ = analyze([port], check_ciphers=True)
    assert report.protocols == {"SSLv3": True, "TLSv1.0": True, "TLSv1.1": False, "TLSv1.2": False,
                                "TLSv1.3": False}
    found = {(c["protocol"], c["name"]): c for c in report.ciphers}
    assert sorted(found) == sorted((p, n) for p in ("SSLv3", "TLSv1.0") for n in (
        "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"))
    assert found[("SSLv3", "TLS_RSA_WITH_AES_128_CBC_SHA")]["reason"] == "CBC in SSLv3 (POODLE)"
    assert found[("TLSv1.0", "TLS_RSA_WITH_AES_128_CBC_SHA")]["weak"] is False
    assert found[("SSLv3", "TLS_RSA_WITH_3DES_EDE_CBC_SHA")]["reason"] == (
        "3DES: 64-bit block (Sweet32); CBC in SSLv3 (POODLE)")
    # The chain comes from the Certificate message of the (downgraded) TLS 1.0 handshake.
    assert [c["subject"] for c in report.chain][1] == "O=pentora tests,CN=pentora test intermediate"
    assert report.chain[0]["signed_by_next"] is True
    assert (0x0300, sorted(candidates("SSLv3"))) in [(v, sorted(s)) for v, s in seen]


def test_client_hello_bytes() -> None:
    class Conn:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def recv(self, _: int) -> bytes:
            data, self.data = self.data, b""
            return data

    ssl3 = client_hello("SSLv3", [0x0005], "www.pentora.test")
    assert ssl3[:3] == b"\x16\x03\x00"
    assert read_client_hello(Conn(ssl3)) == (0x0300, [0x0005], b"")  # SSLv3: no extensions
    tls12 = client_hello(TLS12, [0xC02F, 0x0035], "www.pentora.test")
    version, offered, extensions = read_client_hello(Conn(tls12))
    assert (version, offered) == (0x0303, [0xC02F, 0x0035]) and b"www.pentora.test" in extensions
    assert HOST.encode() not in client_hello(TLS12, [0x0035], HOST)  # no SNI for an address
    tls13 = client_hello(TLS13, [0x1301], None)
    assert struct.pack("!HHBH", 43, 3, 2, 0x0304) in tls13  # supported_versions: 1.3 alone


def test_server_hello_parsing() -> None:
    body = struct.pack("!H", 0x0303) + HELLO_RETRY + b"\x00" + struct.pack("!HB", 0x1302, 0)
    body += struct.pack("!H", 6) + struct.pack("!HHH", 43, 2, 0x0304)
    assert parse_server_hello(body) == (0x0304, 0x1302, True)
    with pytest.raises(WireError, match="truncated ServerHello"):
        parse_server_hello(b"\x03\x03\x00")


def test_a_plain_port_is_reported_as_not_tls_or_left_out(tcp_server) -> None:
    port = tcp_server(banner=b"HTTP/1.1 400 Bad Request\r\n\r\n", close_after_banner=True).port
    (report,), _ = analyze([port])
    assert report.error and report.error.startswith("not TLS: not a TLS record")
    reports, _ = analyze([port], tls=False, service="http", ports="all")
    assert reports == []
    reports, _ = analyze([port], tls=False, service="http")  # ports: tls skips it outright
    assert reports == []


def test_tls_found_by_banners_or_by_asking_every_port(tcp_server, tmp_path: Path) -> None:
    port = serve(tcp_server, openssl_handler(write(tmp_path, issue("localhost", names=(HOST,)))))
    fps = [ServiceFingerprint(HOST, port, service="http", tls=False)]  # matched the plain answer
    banners = [Banner(HOST, port, tls=True, probe="tls_handshake", data="version=TLSv1.3")]
    dag = (DagBuilder().add_node("seed", "set", config={"values": {"service_fingerprints": fps,
                                                                   "banners": banners}})
           .add_node("tls", "ssl_analyzer", ["seed"]).build())
    orch = Orchestrator(plugins=[pentora_plugins.engine, pentora_plugins.tls], autoload=False)
    orch.load_dag(dag)
    (report,) = orch.execute().context.get("tls_results")
    assert report.port == port and report.subject == "O=pentora tests,CN=localhost"
    (report,), _ = analyze([port], tls=False, service="http", ports="all")
    assert report.hostname_mismatch is False and report.error is None


def test_a_server_dripping_its_answer_is_cut_off(tcp_server) -> None:
    # A record header that promises 16 kB, then a byte at a time: each read succeeds in time,
    # only the whole-question deadline stops it.
    drip = Dripper(b"\x16\x03\x03\x40\x00\x02")
    port = serve(tcp_server, drip)
    (report,), _ = analyze([port], timeout="300ms")
    assert report.error == "no TLS handshake (timeout)"
    assert drip.cut_off.wait(10), "the analyzer kept reading from a server that never finished"


def test_a_closed_tls_port_gives_an_error(closed_tcp_port: int) -> None:
    (report,), _ = analyze([closed_tcp_port])
    assert report.error.startswith("connection failed") and report.subject is None


def test_cipher_table() -> None:
    table = suites()
    assert len(table) > 300 and table[0x0004].name == "TLS_RSA_WITH_RC4_128_MD5"
    assert table[0x0004].weakness == "RC4 (RFC 7465); MD5 MAC"
    assert table[0x1301].tls13 and not table[0xC02F].tls13 and table[0xC02F].weakness == ""
    assert all(s.weakness for s in table.values() if "RC4" in s.name or "EXPORT" in s.name
               or "_anon_" in s.name or "3DES" in s.name or "_NULL_" in s.name)
    assert describe_suite(0xC0FF, "TLSv1.2") == {"name": "0xC0FF", "code": "0xC0FF",
                                                 "protocol": "TLSv1.2", "weak": False, "reason": ""}


def test_bad_config_is_refused_naming_the_key() -> None:
    dag = (DagBuilder().add_node("seed", "set", config={"values": {"service_fingerprints": []}})
           .add_node("tls", "ssl_analyzer", ["seed"], config={"check_ciphers": "yes"}).build())
    orch = Orchestrator(plugins=[pentora_plugins.engine, pentora_plugins.tls], autoload=False)
    orch.load_dag(dag)
    with pytest.raises(ValidationError, match=r"(?s)tls.*check_ciphers.*true or false"):
        orch.validate()


def test_without_fingerprints_the_open_ports_are_tried_and_plain_ones_left_out(tcp_server,
                                                                               tmp_path: Path) -> None:
    """A DAG with a port scan and no fingerprint_parser: every open TCP port is tried; a
    port that does not speak TLS is left out, as it was not known to."""
    tls_port = serve(tcp_server, openssl_handler(write(tmp_path, issue("localhost", names=(HOST,)))))
    plain_port = serve(tcp_server, lambda conn: conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n"))
    ports = [{"host": HOST, "port": p} for p in (tls_port, plain_port)]
    dag = (DagBuilder().add_node("seed", "set", config={"values": {"open_ports": ports}})
           .add_node("tls", "ssl_analyzer", ["seed"], config={"timeout": "3s"}).build())
    orch = Orchestrator(plugins=[pentora_plugins.engine, pentora_plugins.tls], autoload=False)
    orch.load_dag(dag)
    result = orch.execute()
    assert result.ok, result.nodes["tls"].error
    [report] = result.context.get("tls_results")
    assert (report.port, report.error, report.sans) == (tls_port, None, [HOST])
