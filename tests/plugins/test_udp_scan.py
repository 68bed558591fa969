"""udp_scanner: payloads checked with scapy's dissectors, and scans of udp_server
fixtures on loopback (answering, silent, closed) and of the default ports inside a
test network namespace (with an ICMP-rejected port where iptables exists)."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pentora_plugins.engine.modules
import pentora_plugins.portscan.udp_scanner
import pytest
from pentora_plugins.portscan._udp_payloads import DNS_ID, PAYLOADS, SNMP_REQUEST_ID, payload_name, recognise
from scapy.asn1.asn1 import ASN1_OID, ASN1_STRING
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.netbios import NBNSHeader
from scapy.layers.ntp import NTPHeader
from scapy.layers.snmp import SNMP, SNMPget, SNMPresponse, SNMPvarbind

import pentora
from pentora import DagBuilder, Orchestrator
from pentora.testing import RecordCollector, free_port

RUNNER = str(Path(__file__).with_name("_netns_scan.py"))
SYS_DESCR = "1.3.6.1.2.1.1.1.0"

DNS_REPLY = bytes(DNS(id=DNS_ID, qr=1, rd=0, qd=DNSQR(qname=".", qtype="NS"),
                      an=DNSRR(rrname=".", type="NS", rdata="a.root-servers.net.")))
NTP_REPLY = bytes(NTPHeader(leap=0, version=4, mode=4, stratum=2))
SNMP_REPLY = bytes(SNMP(version=0, community="public", PDU=SNMPresponse(
    id=SNMP_REQUEST_ID, varbindlist=[SNMPvarbind(oid=ASN1_OID(SYS_DESCR),
                                                 value=ASN1_STRING(b"Linux pentora-test"))])))


Emitted = RecordCollector  # what the scan emits, as (kind, record) pairs


def run_scan(config: dict[str, Any], targets: list[str]) -> tuple[pentora.ScanResult, Emitted]:
    emitted = Emitted()
    orch = Orchestrator(plugins=[pentora_plugins.portscan, pentora_plugins.engine,
                                 emitted],
                        autoload=False)
    orch.load_dag(DagBuilder("udp")
                  .add_node("targets", "set", config={"values": {"targets": targets}})
                  .add_node("scan", "udp_scanner", ["targets"], {**config, "input": "targets"})
                  .build())
    result = orch.execute()
    assert result.nodes["scan"].status == "completed", result.nodes["scan"].stack_trace
    return result, emitted


# -- payloads ------------------------------------------------------------------------


def test_dns_payload_is_a_root_ns_query() -> None:
    query = DNS(PAYLOADS["dns"])
    assert (query.id, query.qr, query.qdcount) == (DNS_ID, 0, 1)
    assert (query.qd[0].qname, query.qd[0].qtype) == (b".", 2)


def test_ntp_payload_is_a_v4_client_request() -> None:
    request = NTPHeader(PAYLOADS["ntp"])
    assert len(PAYLOADS["ntp"]) == 48
    assert (request.version, request.mode) == (4, 3)


def test_snmp_payload_equals_scapys_get_sysdescr() -> None:
    expected = SNMP(version=0, community="public",
                    PDU=SNMPget(id=SNMP_REQUEST_ID, varbindlist=[SNMPvarbind(oid=ASN1_OID(SYS_DESCR))]))
    assert PAYLOADS["snmp"] == bytes(expected)


def test_other_payloads_dissect() -> None:
    assert NBNSHeader(PAYLOADS["netbios-ns"]).QUESTION_TYPE == 0x21
    assert DNS(PAYLOADS["mdns"]).qd[0].qname == b"_services._dns-sd._udp.local."
    assert PAYLOADS["ssdp"].startswith(b"M-SEARCH * HTTP/1.1\r\n")


def test_payload_by_port_with_overrides() -> None:
    assert [payload_name(p) for p in (53, 123, 161, 5353, 9999)] == ["dns", "ntp", "snmp", "mdns", "empty"]
    assert payload_name(9999, {9999: "snmp"}) == "snmp"


def test_replies_are_recognised() -> None:
    assert recognise("dns", DNS_REPLY) == "dns-response"
    assert recognise("ntp", NTP_REPLY) == "ntp-response"
    assert recognise("snmp", SNMP_REPLY) == "snmp-response"
    assert recognise("dns", b"garbage") == "udp-response"
    assert recognise("empty", b"anything") == "udp-response"


@pytest.mark.parametrize(("key", "value"), [("payloads", {"53": "gopher"}), ("payloads", {"0": "dns"}),
                                            ("rate", -5), ("retries", 11), ("ports", "U:99999")])
def test_bad_config_is_rejected_naming_the_key(key: str, value: Any) -> None:
    orch = Orchestrator(plugins=[pentora_plugins.portscan, pentora_plugins.engine],
                        autoload=False)
    orch.load_dag(DagBuilder().add_node("t", "set", config={"values": {"targets": ["127.0.0.1"]}})
                  .add_node("scan", "udp_scanner", ["t"], {key: value, "input": "targets"}).build())
    with pytest.raises(pentora.ValidationError, match=f"config.{key}"):
        orch.validate()


# -- scans on loopback ---------------------------------------------------------------


def test_loopback_answers_silence_and_port_unreachable(udp_server: Any) -> None:
    dns = udp_server(reply=DNS_REPLY)
    ntp = udp_server(reply=NTP_REPLY)
    snmp = udp_server(reply=SNMP_REPLY)
    other = udp_server(reply=b"?")
    silent = udp_server(reply=b"")
    closed = free_port(kind=socket.SOCK_DGRAM)
    ports = [dns.port, ntp.port, snmp.port, other.port, silent.port, closed]
    result, emitted = run_scan({
        "ports": ",".join(map(str, ports)), "timeout": "300ms", "retries": 1,
        "payloads": {str(dns.port): "dns", str(ntp.port): "ntp", str(snmp.port): "snmp"},
    }, ["127.0.0.1"])

    states = {p.port: (p.protocol, p.state, p.method, p.reason) for p in result.context.get("open_ports")}
    assert states == {
        dns.port: ("udp", "open", "udp", "dns-response"),
        ntp.port: ("udp", "open", "udp", "ntp-response"),
        snmp.port: ("udp", "open", "udp", "snmp-response"),
        other.port: ("udp", "open", "udp", "udp-response"),
        silent.port: ("udp", "open|filtered", "udp", "no-response"),
    }
    assert closed not in {p.port for p in result.context.get("port_states")}
    assert sorted(r.port for _, r in emitted.records) == sorted(states)
    # each server got its protocol's request; the silent one got the retry too
    assert dns.received == [PAYLOADS["dns"]]
    assert ntp.received == [PAYLOADS["ntp"]]
    assert snmp.received == [PAYLOADS["snmp"]]
    assert other.received == [b""]
    assert silent.received == [b"", b""]


def test_ipv6_loopback(udp_server: Any) -> None:
    server = udp_server(host="::1", reply=b"pong")
    result, _ = run_scan({"ports": str(server.port), "timeout": "300ms"}, ["::1"])
    assert [(p.host, p.port, p.state) for p in result.context.get("open_ports")] == [
        ("::1", server.port, "open")]


def test_retries_zero_sends_once(udp_server: Any) -> None:
    silent = udp_server(reply=b"")
    result, _ = run_scan({"ports": str(silent.port), "timeout": "200ms", "retries": 0}, ["127.0.0.1"])
    assert [p.state for p in result.context.get("open_ports")] == ["open|filtered"]
    assert silent.received == [b""]


# -- default ports inside a namespace ------------------------------------------------


def test_default_ports_in_a_namespace(netns: Any) -> None:
    spec: dict[str, Any] = {
        "plugin": "pentora_plugins.portscan", "module_type": "udp_scanner",
        "config": {"timeout": "300ms", "retries": 1},
        "udp": {53: DNS_REPLY.hex(), 123: NTP_REPLY.hex(), 161: SNMP_REPLY.hex(), 500: ""},
    }
    rejected = shutil.which("iptables") is not None
    if rejected:
        netns.run("iptables", "-A", "INPUT", "-p", "udp", "--dport", "514", "-j", "REJECT",
                  "--reject-with", "icmp-admin-prohibited")
    proc = netns.python(RUNNER, json.dumps(spec), check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed", out
    assert {r["port"]: (r["state"], r["reason"]) for r in out["open_ports"]} == {
        53: ("open", "dns-response"), 123: ("open", "ntp-response"),
        161: ("open", "snmp-response"), 500: ("open|filtered", "no-response"),
    }
    # Linux reports ICMP "administratively prohibited" as EHOSTUNREACH on the socket
    expected = [(514, "filtered", "host-unreach")] if rejected else []
    assert [(r["port"], r["state"], r["reason"]) for r in out["port_states"]] == expected
