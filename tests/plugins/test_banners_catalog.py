"""The probe catalog of banner_grabber: its binary payloads are exactly the bytes the
protocols define (rebuilt here with struct), text payloads cannot be UTF-8-mangled,
broken catalogs are refused naming the entry and field, and probe selection by port
and by first bytes."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pentora_plugins.engine.modules
import pentora_plugins.services.banner_grabber
import pytest
import yaml
from pentora_plugins.kit.probes import CatalogError, load_catalog, parse_catalog, telnet_refuse

from pentora import DagBuilder, Orchestrator

CATALOG = load_catalog()
REQUIRED = {"http", "tls", "ssh", "ftp", "smtp", "imap", "pop3", "redis", "memcached", "mysql",
            "postgresql", "mongodb", "ldap", "rdp", "vnc", "smb", "dns", "rsync", "telnet"}


def payload(name: str) -> bytes:
    probe = next(p for p in CATALOG.probes if p.name == name)
    assert probe.payload is not None
    return probe.payload


def der(tag: int, content: bytes) -> bytes:
    assert len(content) < 0x80  # every element of these requests is short
    return bytes([tag, len(content)]) + content


# -- exact bytes -----------------------------------------------------------------------------


def test_postgresql_payloads() -> None:
    assert payload("pg_sslrequest") == struct.pack("!II", 8, 80877103)
    params = b"user\0postgres\0database\0postgres\0application_name\0pentora\0\0"
    assert payload("pg_startup") == struct.pack("!II", 8 + len(params), 3 << 16) + params


def bson_int(name: bytes, value: int) -> bytes:
    return b"\x10" + name + b"\0" + struct.pack("<i", value)


def bson(*elements: bytes) -> bytes:
    body = b"".join(elements) + b"\0"
    return struct.pack("<i", 4 + len(body)) + body


def test_mongodb_payloads() -> None:
    doc = bson(bson_int(b"buildinfo", 1), b"\x02$db\0" + struct.pack("<i", 6) + b"admin\0")
    msg = struct.pack("<I", 0) + b"\0" + doc  # flagBits, body section (kind 0)
    assert payload("mongodb_buildinfo") == struct.pack("<iiii", 16 + len(msg), 2, 0, 2013) + msg
    query = struct.pack("<i", 0) + b"admin.$cmd\0" + struct.pack("<ii", 0, -1) + bson(
        bson_int(b"isMaster", 1))
    assert payload("mongodb_hello") == struct.pack("<iiii", 16 + len(query), 1, 0, 2004) + query


def smb2_header(command: int, message_id: int) -> bytes:
    return (b"\xfeSMB" + struct.pack("<HHIHHIIQIIQ", 64, 0, 0, command, 1, 0, 0, message_id, 0, 0, 0)
            + bytes(16))


def test_smb_negotiate_payload() -> None:
    dialects = (0x0202, 0x0210, 0x0300, 0x0302)
    body = (struct.pack("<HHHHI", 36, len(dialects), 1, 0, 0) + b"pentora-smb-guid" + bytes(8)
            + struct.pack("<4H", *dialects))
    message = smb2_header(0, 0) + body
    assert payload("smb_negotiate") == struct.pack("!I", len(message)) + message


def test_smb_session_setup_payload() -> None:
    ntlm = (b"NTLMSSP\0" + struct.pack("<II", 1, 0xE2088207) + bytes(16)
            + struct.pack("<BBH", 6, 1, 7601) + b"\0\0\0\x0f")
    ntlm_oid = der(0x06, bytes([0x2B, 6, 1, 4, 1, 0x82, 0x37, 2, 2, 10]))  # 1.3.6.1.4.1.311.2.2.10
    init = der(0x30, der(0xA0, der(0x30, ntlm_oid)) + der(0xA2, der(0x04, ntlm)))
    spnego = der(0x60, der(0x06, bytes([0x2B, 6, 1, 5, 5, 2])) + der(0xA0, init))
    body = struct.pack("<HBBIIHHQ", 25, 0, 1, 0, 0, 64 + 24, len(spnego), 0) + spnego
    message = smb2_header(1, 1) + body
    assert payload("smb_session_setup") == struct.pack("!I", len(message)) + message


def test_rdp_payload() -> None:
    negotiation = struct.pack("<BBHI", 1, 0, 8, 3)  # RDP_NEG_REQ: TLS | CredSSP
    x224 = bytes([6 + len(negotiation), 0xE0]) + struct.pack("!HHB", 0, 0, 0) + negotiation
    assert payload("rdp_negotiation") == struct.pack("!BBH", 3, 0, 4 + len(x224)) + x224


def test_dns_version_bind_payload() -> None:
    query = (struct.pack("!6H", 0x7065, 0, 1, 0, 0, 0) + b"\x07version\x04bind\x00"
             + struct.pack("!HH", 16, 3))  # TXT, CHAOS
    assert payload("dns_version_bind") == struct.pack("!H", len(query)) + query


def test_dns_version_bind_payload_per_scapy() -> None:
    from scapy.layers.dns import DNS

    query = DNS(payload("dns_version_bind")[2:])
    assert (query.qd[0].qname, query.qd[0].qtype, query.qd[0].qclass) == (b"version.bind.", 16, 3)


def test_ldap_rootdse_payload() -> None:
    search = der(0x63, der(0x04, b"") + der(0x0A, b"\0") + der(0x0A, b"\0") + der(0x02, b"\0")
                 + der(0x02, b"\0") + der(0x01, b"\0") + der(0x87, b"objectClass")
                 + der(0x30, der(0x04, b"*") + der(0x04, b"+")))
    assert payload("ldap_rootdse") == der(0x30, der(0x02, b"\x01") + search)


def test_tls_client_hello_is_a_well_formed_tls12_hello() -> None:
    hello = payload("tls_client_hello")
    kind, version, length = struct.unpack("!BHH", hello[:5])
    assert (kind, version, length) == (0x16, 0x0301, len(hello) - 5)
    assert hello[5] == 1 and int.from_bytes(hello[6:9], "big") == len(hello) - 9
    assert hello[9:11] == b"\x03\x03" and hello[11:43] == bytes(range(32)) and hello[43] == 0
    (suites_len,) = struct.unpack("!H", hello[44:46])
    suites = struct.unpack(f"!{suites_len // 2}H", hello[46:46 + suites_len])
    assert 0xC02F in suites and 0xC02B in suites and suites[-1] == 0x00FF
    pos = 46 + suites_len
    assert hello[pos:pos + 2] == b"\x01\x00"  # null compression only
    (ext_len,) = struct.unpack("!H", hello[pos + 2:pos + 4])
    assert pos + 4 + ext_len == len(hello)


def test_mssql_and_mqtt_payloads() -> None:
    options = [(0, bytes(6)), (1, b"\x02"), (2, b"\0"), (3, bytes(4)), (4, b"\0")]
    offset, head, data = 5 * len(options) + 1, b"", b""
    for token, value in options:
        head += struct.pack("!BHH", token, offset + len(data), len(value))
        data += value
    body = head + b"\xff" + data
    assert payload("mssql_prelogin") == struct.pack("!BBHHBB", 0x12, 1, 8 + len(body), 0, 1, 0) + body
    connect = struct.pack("!H", 4) + b"MQTT" + bytes([4, 2]) + struct.pack("!HH", 60, 7) + b"pentora"
    assert payload("mqtt_connect") == bytes([0x10, len(connect)]) + connect
    topic = b"$SYS/broker/version"
    subscribe = struct.pack("!HH", 1, len(topic)) + topic + b"\0"
    assert payload("mqtt_sys_version") == payload("mqtt_connect") + bytes([0x82, len(subscribe)]) + subscribe


def test_mysql_needs_no_payload_its_greeting_is_recognised() -> None:
    body = b"\x0a" + b"10.11.6-MariaDB-0+deb12u1\0" + struct.pack("<I", 7) + b"\xa1" * 8 + b"\0"
    packet = struct.pack("<I", len(body))[:3] + b"\0" + body
    assert CATALOG.recognise(packet) == "mysql"
    assert not CATALOG.client_first(3306)


def test_text_payloads_are_ascii() -> None:
    assert payload("http_get") == b"GET / HTTP/1.0\r\nUser-Agent: pentora\r\nAccept: */*\r\n\r\n"
    assert payload("redis_info") == b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"
    assert payload("amqp_header") == b"AMQP\x00\x00\x09\x01"
    assert payload("clamav_version") == b"zVERSION\x00"


# -- bytes above 0x7F ----------------------------------------------------------------------------


def test_the_known_yaml_bug_is_real() -> None:
    text = yaml.safe_load('p: "\\xff\\x00"')["p"]
    assert text == "\u00ff\x00" and text.encode() == b"\xc3\xbf\x00"  # what a naive loader sends


def test_payload_text_above_0x7f_is_refused() -> None:
    with pytest.raises(CatalogError, match=r"probe 'bad'.*payload_text.*U\+00FF.*c3 bf.*payload_hex"):
        parse_catalog('probes:\n- {name: bad, protocol: x, generic: 1, payload_text: "\\xff\\x00"}\n', "t")


@pytest.mark.parametrize("field", ['payload_hex: "ff 00 80"', "payload: !!binary /wCA"])
def test_binary_payloads_keep_high_bytes(field: str) -> None:
    catalog = parse_catalog(f"probes:\n- name: p\n  protocol: x\n  generic: 1\n  {field}\n", "t")
    assert catalog.probes[0].payload == b"\xff\x00\x80"


def test_builtin_high_bytes_are_single_bytes() -> None:
    hello, setup = payload("tls_client_hello"), payload("smb_session_setup")
    assert hello.count(b"\xc0") >= 4 and b"\xc3\x80" not in hello
    assert b"\x82\x37\x02\x02\x0a" in setup and b"\xc2\x82" not in setup
    assert payload("mongodb_hello")[-19:-15] == b"\x13\x00\x00\x00"
    assert b"\xff\xff\xff\xff" in payload("mongodb_hello")  # numberToReturn -1


def test_regexes_match_raw_bytes() -> None:
    assert CATALOG.recognise(b"\xff\xfd\x18\xff\xfd\x20") == "telnet"
    assert CATALOG.recognise(b"\x16\x03\x03\x00\x5d\x02") == "tls"
    assert CATALOG.recognise(b"\x15\x03\x01\x00\x02\x02\x46") == "tls"


# -- catalog errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: a, protocol: x, generic: 1, payload_hex: 'f'}", "pairs of hex digits"),
    ("{name: a, protocol: x, generic: 1, payload_hex: 'zz'}", "pairs of hex digits"),
    ("{name: a, protocol: x, generic: 1, payload_hex: '00', payload_text: 'a'}", "give one payload"),
    ("{name: a, protocol: x, generic: 1, payload: 'text'}", "expected !!binary"),
    ("{name: a, protocol: x, payload_text: 'a'}", "ports, match or generic"),
    ("{name: a, protocol: x, expect: 'SSH-'}", "anchored"),
    ("{name: a, protocol: x, expect: '\\Ax(?=y)'}", "field 'expect': bad regex .*RE2 has no look-ahead"),
    ("{name: a, protocol: x, read_until: '(?<=\\r)\\n'}", "field 'read_until': .*RE2 has no look-behind"),
    ("{name: a, protocol: x, expect: '\\A[NS]\\Z'}", "write \\\\z for the end of the text"),
    ("{name: a, protocol: x, expect: '\\A\u0100'}", "above U\\+00FF"),
    ("{name: a, protocol: x, expect: '\\A('}", "bad regex"),
    ("{name: a, protocol: x, colour: red}", "field 'colour'"),
    ("{name: A b, protocol: x}", "field 'name'"),
    ("{name: a, protocol: x, ports: '1-99999'}", "field 'ports'"),
    ("{name: a, protocol: x, reply: nope}", "field 'reply'"),
])
def test_bad_entries_are_refused_naming_the_field(entry: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(f"probes:\n- {entry}\n", "user.yaml")


def test_duplicate_names_and_bad_documents() -> None:
    with pytest.raises(CatalogError, match="'a' is used twice"):
        parse_catalog("probes:\n- {name: a, protocol: x}\n- {name: a, protocol: y}\n", "t")
    with pytest.raises(CatalogError, match="expected a mapping with 'probes:'"):
        parse_catalog("- just a list\n", "t")
    with pytest.raises(CatalogError, match="probe catalog file not found: /nonexistent/probes.yaml"):
        load_catalog("/nonexistent/probes.yaml")


# -- selection -----------------------------------------------------------------------------------


def test_builtin_catalog_covers_the_protocols() -> None:
    assert REQUIRED <= {p.protocol for p in CATALOG.probes}
    assert len(set(CATALOG.names())) == len(CATALOG.names())
    assert all(p.expect for p in CATALOG.probes)


def test_port_hints_and_generic_order() -> None:
    assert [p.name for p in CATALOG.generic()] == ["http_get", "tls_client_hello", "pg_sslrequest"]
    assert [p.name for p in CATALOG.hinted(443)] == ["tls_client_hello", "http_get"]
    assert [p.name for p in CATALOG.hinted(27017)] == ["mongodb_buildinfo", "mongodb_hello"]
    assert CATALOG.client_first(80) and CATALOG.client_first(6379)
    assert not CATALOG.client_first(22) and not CATALOG.client_first(21)
    assert not CATALOG.client_first(40000)  # unhinted: anything may greet there


@pytest.mark.parametrize(("answer", "selected"), [
    (b"220 (vsFTPd 3.0.3)\r\n", ["ftp_syst"]),
    (b"220 mx.example.test ESMTP Exim 4.96\r\n", ["smtp_ehlo"]),
    (b"* OK [CAPABILITY IMAP4rev1] ready\r\n", ["imap_capability"]),
    (b"+OK POP3 ready\r\n", ["pop3_capa"]),
    (b"RFB 003.008\n", ["vnc_security"]),
    (b"@RSYNCD: 31.0\n", ["rsync_list"]),
    (b"\xff\xfd\x18", ["telnet_options"]),
    (b"-ERR wrong number of arguments for 'get' command\r\n", ["redis_info"]),
    (b"ERROR\r\n", ["memcached_version"]),
    (b"VERSION 1.6.21\r\n", ["memcached_stats"]),
    (b"N", ["pg_startup"]),
    (b"AMQP\x00\x00\x09\x01", ["amqp_header"]),
    (b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 85\r\n\r\n"
     b"It looks like you are trying to access MongoDB over HTTP on the native driver port.\r\n",
     ["mongodb_buildinfo"]),
    (b"SSH-2.0-OpenSSH_9.6\r\n", []),
])
def test_first_bytes_select_follow_ups(answer: bytes, selected: list[str]) -> None:
    assert [p.name for p in CATALOG.followups(answer)] == selected


def test_plain_http_on_a_tls_port_means_tls() -> None:
    nginx = (b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n<html><head><title>400 The plain "
             b"HTTP request was sent to HTTPS port</title></head>")
    assert CATALOG.recognise(nginx) == "tls"
    assert CATALOG.recognise(b"HTTP/1.1 200 OK\r\n") == "http"


def test_telnet_refuse() -> None:
    assert telnet_refuse(b"\xff\xfd\x18\xff\xfb\x01\xff\xfe\x05") == b"\xff\xfc\x18\xff\xfe\x01"
    assert telnet_refuse(b"login: ") == b"\r\n"


def test_select_unknown_probe_names_them() -> None:
    with pytest.raises(CatalogError, match="unknown probe.*nope.*known: tls_client_hello"):
        CATALOG.select(["http_get", "nope"])
    assert CATALOG.select(["http_get"]).names() == ["http_get"]


# -- a user catalog ------------------------------------------------------------------------------


def test_user_catalog_file(tmp_path: Path, tcp_server: Any) -> None:
    path = tmp_path / "probes.yaml"
    path.write_text("probes:\n- name: hello\n  protocol: greeter\n  generic: 1\n"
                    "  payload_text: \"HELLO\\r\\n\"\n  expect: '\\AHI '\n")
    server = tcp_server(respond=lambda d: b"HI there\r\n" if d == b"HELLO\r\n" else None)
    orch = Orchestrator(plugins=[pentora_plugins.services, pentora_plugins.engine],
                                 autoload=False)
    orch.load_dag(DagBuilder("banners")
                  .add_node("ports", "set", config={"values": {"open_ports": [
                      {"host": "127.0.0.1", "port": server.port}]}})
                  .add_node("grab", "banner_grabber", ["ports"],
                            {"catalog": str(path), "passive_timeout": "200ms", "read_timeout": "1s"})
                  .build())
    result = orch.execute()
    assert result.nodes["grab"].status == "completed", result.nodes["grab"].stack_trace
    assert [(b.probe, b.data) for b in result.context.get("banners")] == [("hello", "HI there\r\n")]
