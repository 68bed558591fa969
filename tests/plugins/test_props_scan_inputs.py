"""Property tests of what a scan reads from outside: target and port specs, what services
send (the probe catalog's matching, the TLS certificate reader, the fingerprint rules),
and the YAML catalogs users write (probe and fingerprint catalogs).

Each property: whatever the input, the answer is a result or the documented error
(``TargetSpecError``, ``PortSpecError``, ``CatalogError``, ``ValueError`` from the DER
reader, which ``describe`` catches), never another exception. Round trips check that
well-formed specs mean exactly what they say. Examples are derandomised (set
``PENTORA_HYPOTHESIS_RANDOM=1`` to explore).
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pentora_plugins.kit import catalog as rules
from pentora_plugins.kit.net import http as _http
from pentora_plugins.kit.net import http_facts as _http_facts
from pentora_plugins.kit.net.tls import certificate_fields
from pentora_plugins.kit.portspec import MAX_PORT, PortSpecError, parse_ports
from pentora_plugins.kit.probes import CatalogError, builtin_catalog, parse_catalog, telnet_refuse
from pentora_plugins.kit.records import Banner
from pentora_plugins.kit.targetspec import TargetSpecError, iter_specs, parse_spec
from pentora_plugins.services.fingerprint_parser import fingerprint_banners
from pentora_plugins.tls._cert import analyze_chain

from tests.fuzz.fuzz_banner import Peer  # the fuzz harness's fake socket
from tests.hostile.servers import malformed_certificate

SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    derandomize=not os.environ.get("PENTORA_HYPOTHESIS_RANDOM"),
                    suppress_health_check=[HealthCheck.too_slow])
FEW = settings(SETTINGS, max_examples=60)

# -- target specs -------------------------------------------------------------------------

TARGET_TOKENS = st.sampled_from(["10.0.0.1", "127.0.0.1", "::1", "fe80::1%eth0", "/", "/24", "/0", "/33",
                                 "/129", "-", "-50", "-10.0.1.5", ".", "..", ",", " ", "\t", "\n", "@",
                                 "@/nonexistent", "#", "*", "localhost", "a" * 64, "xn--", "é", "\x00",
                                 "256", "0x7f", "1e3", "::ffff:1.2.3.4", "[", "]", "%", "_", "1", "0"])
target_text = st.text(max_size=40) | st.lists(TARGET_TOKENS, max_size=8).map("".join)


@SETTINGS
@given(target_text)
@example("10.0.0.1-10.0.0.0")
@example("::/0")
@example("0.0.0.0/0")
@example("a" * 300)
@example("@")
def test_any_target_spec_parses_or_names_the_problem(text: str) -> None:
    try:
        specs = list(iter_specs(text))
    except TargetSpecError as e:
        assert str(e) and "Traceback" not in str(e)
    else:
        for spec in specs:
            assert spec.hostname or spec.start <= spec.end  # a hostname waits for its lookup


@SETTINGS
@given(st.lists(st.none() | st.booleans() | st.integers() | st.floats() | target_text
                | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers()),
                max_size=5))
def test_any_list_of_target_items_parses_or_names_the_problem(items: list[Any]) -> None:
    try:
        list(iter_specs(items))
    except TargetSpecError as e:
        assert str(e)


@SETTINGS
@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=32))
def test_ipv4_cidr_covers_exactly_its_network(address: ipaddress.IPv4Address, prefix: int) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    spec = parse_spec(f"{address}/{prefix}")
    assert (spec.start, spec.end) == (int(network.network_address), int(network.broadcast_address))


@SETTINGS
@given(st.ip_addresses(v=6), st.ip_addresses(v=6))
def test_ipv6_range_covers_exactly_its_addresses(a: ipaddress.IPv6Address, b: ipaddress.IPv6Address) -> None:
    first, last = sorted([a, b])
    spec = parse_spec(f"{first}-{last}")
    assert spec.end - spec.start == int(last) - int(first)


# -- port specs ------------------------------------------------------------------------------


@SETTINGS
@given(st.none() | st.booleans() | st.integers() | st.floats() | st.binary(max_size=10)
       | st.lists(st.integers() | st.text(max_size=8) | st.none(), max_size=5)
       | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
@example(-1)
@example(70000)
@example([0, "1-65536"])
def test_any_port_value_parses_or_names_the_problem(value: Any) -> None:
    try:
        ports = parse_ports(value)
    except PortSpecError as e:
        assert str(e)
    else:
        assert all(1 <= a <= b <= MAX_PORT for a, b in ports.ranges)


# -- what services send: the probe catalog and the certificate reader -------------------------

HEADS = [b"SSH-2.0-", b"HTTP/1.1 200 OK\r\n", b"\x16\x03\x03", b"\x15\x03\x01", b"220 ", b"\xff\xfd\x18",
         b"-ERR ", b"RFB 003.008\n", b"+OK", b"N", b"S", b"E\x00\x00\x00", b"\x00\x00\x00\x55\xffSMB"]
hostile_bytes = (st.binary(max_size=600)
                 | st.builds(lambda head, tail: head + tail, st.sampled_from(HEADS), st.binary(max_size=300)))


@SETTINGS
@given(hostile_bytes)
def test_probe_catalog_reads_any_answer(answer: bytes) -> None:
    catalog = builtin_catalog()
    protocol = catalog.recognise(answer)
    assert protocol is None or isinstance(protocol, str)
    assert isinstance(catalog.greeting(answer), bool)
    for probe in catalog.followups(answer):
        assert isinstance(probe.build(answer), bytes)


@SETTINGS
@given(st.binary(max_size=200))
def test_telnet_refusal_answers_only_what_was_asked(answer: bytes) -> None:
    reply = telnet_refuse(answer)
    if reply == b"\r\n":
        return
    assert len(reply) % 3 == 0
    for i in range(0, len(reply), 3):
        assert reply[i] == 0xFF and reply[i + 1] in (0xFC, 0xFE)  # WONT, DONT: never agree


def _real_der() -> bytes:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "props.pentora.test")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(start).not_valid_after(start + datetime.timedelta(days=9))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("props.pentora.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


REAL_DER = _real_der()


@SETTINGS
@given(st.binary(max_size=400)
       | st.builds(lambda i, b: REAL_DER[:i] + b + REAL_DER[i + len(b):],
                   st.integers(min_value=0, max_value=len(REAL_DER)), st.binary(min_size=1, max_size=4))
       | st.integers(min_value=0, max_value=len(REAL_DER)).map(lambda i: REAL_DER[:i]))
def test_certificate_reader_gives_fields_or_value_error(der: bytes) -> None:
    """``describe`` catches ValueError and IndexError: nothing else may escape."""
    try:
        found = certificate_fields(der)
    except (ValueError, IndexError):
        return
    assert set(found) == {"subject", "issuer", "not_before", "not_after", "san"}
    assert all(isinstance(v, str) for v in found.values())


MALFORMED = [malformed_certificate("bad_version"), malformed_certificate("duplicate_extension")]
DERS = st.sampled_from([REAL_DER, *MALFORMED])
mangled_der = (DERS | st.binary(max_size=300)
               | st.builds(lambda i, b, der: der[:i] + b + der[i + len(b):],
                           st.integers(min_value=0, max_value=len(REAL_DER)),
                           st.binary(min_size=1, max_size=4), DERS))


@SETTINGS
@given(st.lists(mangled_der, min_size=1, max_size=3),
       st.sampled_from(["127.0.0.1", "props.pentora.test", ""]))
@example([MALFORMED[0]], "127.0.0.1")
@example([REAL_DER, MALFORMED[1]], "props.pentora.test")
def test_chain_analysis_gives_facts_or_value_error(ders: list[bytes], hostname: str) -> None:
    """ssl_analyzer catches ValueError (an unreadable certificate, reported as the port's
    error); cryptography's own exception classes must not escape."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography warns about negative serials and the like
        try:
            facts = analyze_chain(ders, hostname)
        except ValueError:
            return
    assert len(facts["chain"]) == len(ders) and isinstance(facts["hostname_mismatch"], bool)



HTTP_HEADS = [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.0 302 Found\r\nLocation: /x\r\n",
              b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
              b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", b"HTTP/1.1 204 No Content\r\n\r\n",
              b"HTTP/9.9 999 \xff\r\n"]
HTTP_TAILS = [b"-5\r\nabc\r\n0\r\n\r\n", b"ffffffffffff\r\nab",
              b"Set-Cookie: \x00;;=\r\nAllow: ,,GET\r\n\r\n"]
http_bytes = st.builds(lambda head, tail: head + tail, st.sampled_from(HTTP_HEADS),
                       st.binary(max_size=300) | st.sampled_from(HTTP_TAILS))


@SETTINGS
@given(st.binary(max_size=300) | http_bytes, st.integers(min_value=1, max_value=64),
       st.sampled_from(["GET", "HEAD"]))
def test_http_reply_reader_gives_a_reply_or_http_error(data: bytes, step: int, method: str) -> None:
    try:
        reply = _http.read_reply(_http._Reader(Peer(data, step)), method, 64)
    except _http.HttpError as e:
        assert str(e)
        return
    assert len(reply.body) <= 64 and 0 <= reply.status <= 999
    _http_facts.parse_cookies(reply.all("set-cookie"))
    _http_facts.allowed_methods(reply.header("allow"))
    _http_facts.title_of(_http_facts.body_text(reply.body, reply.header("content-type")))


def test_certificate_reader_reads_the_unmangled_certificate() -> None:
    found = certificate_fields(REAL_DER)
    assert (found["subject"], found["san"]) == ("CN=props.pentora.test", "DNS:props.pentora.test")


# -- user catalogs: probe entries and fingerprint rules of any shape ----------------------------

REGEX_TOKENS = st.sampled_from([r"\A", "^", "SSH-", r"(?P<version>", r"(?P<v>", ")", "(", r"\d+", r"[\w.]*",
                                "[", "]", "*", "+", "?", "{1,3}", "{99999}", "(a+)+", "(a|a)*", ".*", r"\x00",
                                r"\xff", "\\", "|", "$", "(?i)", "(?<=a)", r"\1", "é", "(?P=version)"])
regex_text = st.lists(REGEX_TOKENS, max_size=8).map("".join) | st.text(max_size=20)
scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
TEMPLATES = st.sampled_from(["$1", "$9", "${version}", "${v:u8}", "${v:u16be}", "${v:u16le}", "${v:nonul}",
                             "${v:lower}", "${v:bogus}", "${nope}", "$", "${", "x${version}y"])
CPES = st.sampled_from(["cpe:2.3:a:openbsd:openssh:{version}:*:*:*:*:*:*:*",
                        "cpe:2.3:a:x:y:{v}:*:*:*:*:*:*:*", "cpe:/a:x:y", "cpe:2.3:a:x",
                        "cpe:2.3:a:x:y:{nope}:*:*:*:*:*:*:*", ""])


def _field(name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(st.just(name), values)


rule_like = st.lists(st.one_of(
    _field("id", st.sampled_from(["r1", "r2", "R", "", "ssh-openssh"]) | scalar),
    _field("service", st.sampled_from(["ssh", "http", ""]) | scalar),
    _field("product", st.sampled_from(["OpenSSH", None]) | scalar),
    _field("vendor", scalar), _field("match", regex_text | scalar),
    _field("flags", st.sampled_from(["i", "m", "s", "x", "ims", "q", ""]) | scalar),
    _field("version", TEMPLATES | scalar), _field("cpe", CPES | scalar), _field("info", TEMPLATES | scalar),
    _field("confidence", st.floats() | scalar), _field("enabled", scalar),
    _field("probe", st.sampled_from(["passive", "http_get"]) | st.lists(st.text(max_size=5), max_size=2)
           | scalar),
    _field("os", st.dictionaries(st.sampled_from(["family", "distribution", "release", "kernel"]),
                                 TEMPLATES | scalar, max_size=3) | scalar),
    _field("bogus", scalar)), max_size=10).map(dict)


def _write(tmp: Path, doc: Any) -> str:
    path = tmp / f"{uuid.uuid4().hex}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return str(path)


@FEW
@given(st.lists(rule_like, min_size=1, max_size=3), st.lists(hostile_bytes, min_size=1, max_size=3))
@example([{"id": "u", "service": "x", "match": r"\A(?P<v>.*)", "version": "${v:u16be}"}], [b"\x00"])
@example([{"id": "u", "service": "x", "match": r"\A(?P<v>\w*)", "cpe": "cpe:2.3:a:x:y:{v}:*:*:*:*:*:*:*"}],
         [b"A:B*C?\\"])
def test_any_fingerprint_rules_load_or_name_the_problem_and_never_break_a_scan(
        docs: list[dict[str, Any]], answers: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), {"rules": docs})
        try:
            catalog = rules.load_catalog([path])
        except rules.CatalogError as e:
            assert path in str(e)
            return
    banners = [Banner(host="127.0.0.1", port=1, protocol="tcp", tls=False, probe="passive",
                      data=a.decode("latin-1")) for a in answers]
    [found] = fingerprint_banners(catalog, banners)
    assert isinstance(found.service, str)


probe_like = st.lists(st.one_of(
    _field("name", st.sampled_from(["p1", "p2", "P", "", "http_get"]) | scalar),
    _field("protocol", st.sampled_from(["tls", "http", ""]) | scalar),
    _field("ports", st.sampled_from(["80", "1-1024", "0", "x", "top-100"])
           | st.lists(st.integers(), max_size=2) | scalar),
    _field("payload_hex", st.sampled_from(["00ff", "0", "zz", "16 03 01"]) | scalar),
    _field("payload_text", st.sampled_from(["GET /\r\n", "\xff", "ok"]) | scalar),
    _field("reply", st.sampled_from(["telnet_refuse", "nope"]) | scalar),
    _field("match", regex_text | st.lists(regex_text, max_size=2)), _field("expect", regex_text | scalar),
    _field("read_until", regex_text | scalar), _field("flags", st.sampled_from(["i", "m", "z"]) | scalar),
    _field("max_bytes", scalar), _field("generic", scalar), _field("greets", scalar),
    _field("transport", st.sampled_from(["any", "plain", "tls", "udp"]) | scalar),
    _field("connection", st.sampled_from(["new", "same", "old"]) | scalar),
    _field("transcript", scalar), _field("unknown_field", scalar)), max_size=10).map(dict)


@FEW
@given(st.lists(probe_like | scalar, max_size=3) | scalar, hostile_bytes)
@example([{"name": "p", "protocol": "x", "generic": 1, "payload_hex": "0"}], b"")
def test_any_probe_catalog_loads_or_names_the_problem(entries: Any, answer: bytes) -> None:
    try:
        catalog = parse_catalog(yaml.safe_dump({"probes": entries}), "user-probes.yaml")
    except CatalogError as e:
        assert str(e).startswith("user-probes.yaml: ")
        return
    catalog.recognise(answer)
    for probe in catalog.followups(answer):
        probe.build(answer)
