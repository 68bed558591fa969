"""banner_grabber against real sockets on 127.0.0.1: services on ports that are not
their usual ones (ephemeral ports), identified by what they say first or by the
generic probes; TLS found on a random port and HTTP probed through it; and the
bounds: a silent server within the deadline, an endless streamer within max_bytes,
a reset mid-banner keeping what came before."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import itertools
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pentora_plugins.engine.modules
import pentora_plugins.services.banner_grabber
import pytest
from pentora_plugins.kit.net.tls import certificate_fields
from pentora_plugins.kit.records import Banner, Port

from pentora import DagBuilder, Orchestrator
from pentora.testing import RecordCollector

# Short waits: every server here answers at once, on loopback.
FAST = {"connect_timeout": "1s", "read_timeout": "1s", "passive_timeout": "500ms",
        "short_passive_timeout": "200ms", "idle_timeout": "200ms", "deadline": "8s"}
HTTP_OK = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n"
           b"Content-Length: 31\r\nConnection: close\r\n\r\n<html><title>hi</title></html>\n")


Emitted = RecordCollector  # what the scan emits, as (kind, record) pairs


def grab(open_ports: list[Any], **config: Any) -> tuple[list[Banner], Emitted, Any]:
    """Run set(open_ports) → banner_grabber; returns (published banners, emitted, result)."""
    emitted = Emitted()
    orch = Orchestrator(plugins=[pentora_plugins.services, pentora_plugins.engine,
                                 emitted],
                        autoload=False)
    orch.load_dag(DagBuilder("banners")
                  .add_node("ports", "set", config={"values": {"open_ports": open_ports}})
                  .add_node("grab", "banner_grabber", ["ports"], {**FAST, **config})
                  .build())
    result = orch.execute()
    assert result.nodes["grab"].status == "completed", result.nodes["grab"].stack_trace
    return result.context.get("banners"), emitted, result


def port(server: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": server.port, "protocol": "tcp", "state": "open"}


def by_probe(banners: list[Banner]) -> dict[tuple[str, bool], str]:
    return {(b.probe, b.tls): b.data for b in banners}


# -- services that speak first -----------------------------------------------------------


def test_ssh_on_an_unusual_port_is_read_passively(tcp_server: Callable[..., Any]) -> None:
    ident = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
    server = tcp_server(banner=ident)
    banners, _, _ = grab([port(server)])
    assert [(b.probe, b.data, b.tls) for b in banners] == [("passive", ident.decode(), False)]
    assert server.received == []  # recognised: nothing was sent


def test_ipv6_loopback(tcp_server: Callable[..., Any]) -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    try:
        server = tcp_server(host="::1", banner=b"SSH-2.0-OpenSSH_9.6\r\n")
    except OSError as e:
        pytest.skip(f"cannot listen on ::1: {e}")
    banners, _, _ = grab([{"host": "::1", "port": server.port}])
    assert [(b.host, b.probe, b.data) for b in banners] == [("::1", "passive", "SSH-2.0-OpenSSH_9.6\r\n")]


def test_ftp_greeting_selects_syst(tcp_server: Callable[..., Any]) -> None:
    server = tcp_server(banner=b"220 (vsFTPd 3.0.3)\r\n",
                        respond=lambda d: b"215 UNIX Type: L8\r\n" if d == b"SYST\r\n" else b"500 ?\r\n")
    banners, _, _ = grab([port(server)])
    assert by_probe(banners) == {("passive", False): "220 (vsFTPd 3.0.3)\r\n",
                                 ("ftp_syst", False): "215 UNIX Type: L8\r\n"}


def test_smtp_greeting_selects_ehlo_not_syst(tcp_server: Callable[..., Any]) -> None:
    ehlo = b"250-mail.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 SMTPUTF8\r\n"
    server = tcp_server(banner=b"220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n",
                        respond=lambda d: ehlo if d.startswith(b"EHLO ") else b"502 5.5.2 Error\r\n")
    banners, _, _ = grab([port(server)])
    found = by_probe(banners)
    assert found[("smtp_ehlo", False)] == ehlo.decode()
    assert server.received == [b"EHLO pentora.invalid\r\n"]


@pytest.mark.parametrize(("greeting", "command", "answer", "probe"), [
    (b"* OK [CAPABILITY IMAP4rev1 LITERAL+] Dovecot (Debian) ready.\r\n", b"a001 CAPABILITY\r\n",
     b"* CAPABILITY IMAP4rev1 IDLE\r\na001 OK Capability completed.\r\n", "imap_capability"),
    (b"+OK Dovecot (Debian) ready.\r\n", b"CAPA\r\n", b"+OK\r\nTOP\r\nUIDL\r\n.\r\n", "pop3_capa"),
    (b"@RSYNCD: 31.0\n", b"@RSYNCD: 31.0\n#list\n", b"ftp\tpublic files\n@RSYNCD: EXIT\n", "rsync_list"),
])
def test_greeting_selects_its_follow_up(tcp_server: Callable[..., Any], greeting: bytes,
                                        command: bytes, answer: bytes, probe: str) -> None:
    server = tcp_server(banner=greeting, respond=lambda d: answer if d == command else b"")
    banners, _, _ = grab([port(server)])
    assert by_probe(banners) == {("passive", False): greeting.decode(), (probe, False): answer.decode()}


def test_vnc_security_banner_is_the_whole_exchange(tcp_server: Callable[..., Any]) -> None:
    server = tcp_server(banner=b"RFB 003.008\n", respond=lambda d: b"\x02\x02\x10")
    banners, _, _ = grab([port(server)])
    assert server.received == [b"RFB 003.008\n"]
    assert by_probe(banners)[("vnc_security", False)] == "RFB 003.008\n\x02\x02\x10"


def test_telnet_options_are_refused(tcp_server: Callable[..., Any]) -> None:
    server = tcp_server(banner=b"\xff\xfd\x18\xff\xfd\x20\xff\xfb\x01",
                        respond=lambda d: b"Debian GNU/Linux 12\r\nlogin: ")
    banners, _, _ = grab([port(server)])
    assert server.received == [b"\xff\xfc\x18\xff\xfc\x20\xff\xfe\x01"]
    assert by_probe(banners)[("telnet_options", False)] == "Debian GNU/Linux 12\r\nlogin: "


def mysql_greeting(version: bytes) -> bytes:
    """A protocol-10 handshake packet, its salt holding bytes above 0x7F."""
    body = (b"\x0a" + version + b"\x00" + struct.pack("<I", 42) + b"\x81\x92\xa3\xb4\xc5\xd6\xe7\xf8"
            + b"\x00" + struct.pack("<HBHH", 0xF7FF, 0xFF, 0x0002, 0xDFFF) + bytes([21]) + bytes(10)
            + b"\x99\xaa\xbb\xcc\xdd\xee\xff\x01\x02\x03\x04\x05\x00" + b"mysql_native_password\x00")
    return struct.pack("<I", len(body))[:3] + b"\x00" + body


def test_mysql_greeting_keeps_every_byte(tcp_server: Callable[..., Any]) -> None:
    packet = mysql_greeting(b"8.0.36-0ubuntu0.22.04.1")
    server = tcp_server(banner=packet)
    banners, _, _ = grab([port(server)])
    assert [b.probe for b in banners] == ["passive"]
    assert banners[0].data.encode("latin-1") == packet  # latin-1: byte N is U+00NN
    assert server.received == []


# -- services that wait for the client -----------------------------------------------------


def test_http_on_an_unusual_port_found_by_the_generic_probe(tcp_server: Callable[..., Any]) -> None:
    server = tcp_server(respond=lambda d: HTTP_OK if d.startswith(b"GET / HTTP/1.0\r\n") else None)
    banners, _, _ = grab([port(server)])
    assert by_probe(banners) == {("http_get", False): HTTP_OK.decode()}
    assert len(server.received) == 1  # recognised: the TLS probe was not needed


def redis(data: bytes) -> bytes:
    if b"INFO" in data:
        info = b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nos:Linux 6.1.0 x86_64\r\n"
        return b"$%d\r\n%s\r\n" % (len(info), info)
    if data.startswith(b"GET "):
        return b"-ERR wrong number of arguments for 'get' command\r\n"
    return b"-ERR unknown command\r\n"


def test_redis_on_an_unusual_port_answers_the_http_probe_then_info(
        tcp_server: Callable[..., Any]) -> None:
    server = tcp_server(respond=redis)
    banners, _, _ = grab([port(server)])
    found = by_probe(banners)
    assert set(found) == {("http_get", False), ("redis_info", False)}  # no TLS probe after INFO
    assert found[("http_get", False)].startswith("-ERR wrong number of arguments")
    assert found[("redis_info", False)].startswith("$")
    assert "redis_version:7.0.15" in found[("redis_info", False)]


def memcached(data: bytes) -> bytes:
    if data == b"version\r\n":
        return b"VERSION 1.6.21\r\n"
    if data == b"stats\r\n":
        return b"STAT pid 1234\r\nSTAT uptime 42\r\nSTAT version 1.6.21\r\nEND\r\n"
    return b"ERROR\r\n" * data.count(b"\n")


def test_memcached_version_then_stats(tcp_server: Callable[..., Any]) -> None:
    server = tcp_server(respond=memcached)
    banners, _, _ = grab([port(server)])
    found = by_probe(banners)
    assert set(found) == {("http_get", False), ("memcached_version", False), ("memcached_stats", False)}
    assert found[("memcached_version", False)] == "VERSION 1.6.21\r\n"
    assert found[("memcached_stats", False)].startswith("STAT pid 1234\r\n")
    assert found[("memcached_stats", False)].endswith("END\r\n")


SCRAM = b"R" + struct.pack("!II", 23, 10) + b"SCRAM-SHA-256\0\0"


def postgresql(data: bytes) -> bytes | None:
    if data == struct.pack("!II", 8, 80877103):
        return b"N"
    if data[4:8] == struct.pack("!I", 3 << 16):
        return SCRAM
    return None  # like PostgreSQL: an invalid startup packet closes without a word


def test_postgresql_on_an_unusual_port_by_the_generic_sslrequest(
        tcp_server: Callable[..., Any]) -> None:
    server = tcp_server(respond=postgresql)
    banners, _, _ = grab([port(server)])
    assert by_probe(banners) == {("pg_sslrequest", False): "N",
                                 ("pg_startup", False): SCRAM.decode("latin-1")}


def mongodb(data: bytes) -> bytes | None:
    if data.startswith(b"GET "):
        text = b"It looks like you are trying to access MongoDB over HTTP on the native driver port.\r\n"
        return (b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(text), text))
    if data[12:16] == struct.pack("<i", 2013):
        doc = b"\x02version\x00" + struct.pack("<i", 6) + b"7.0.5\x00"
        doc = struct.pack("<i", 5 + len(doc)) + doc + b"\x00"
        body = struct.pack("<I", 0) + b"\x00" + doc
        return struct.pack("<iiii", 16 + len(body), 9, 2, 2013) + body
    return None


def test_mongodb_answer_to_http_selects_buildinfo(tcp_server: Callable[..., Any]) -> None:
    server = tcp_server(respond=mongodb)
    banners, _, _ = grab([port(server)])
    found = by_probe(banners)
    assert set(found) == {("http_get", False), ("mongodb_buildinfo", False)}
    assert "7.0.5" in found[("mongodb_buildinfo", False)]


def test_probes_option_limits_what_is_sent(tcp_server: Callable[..., Any]) -> None:
    server = tcp_server(respond=memcached)
    banners, _, _ = grab([port(server)], probes=["http_get"])
    assert [b.probe for b in banners] == ["http_get"]
    assert len(server.received) == 1


def test_unknown_probe_name_fails_the_node_naming_it(tcp_server: Callable[..., Any]) -> None:
    orch = Orchestrator(plugins=[pentora_plugins.services, pentora_plugins.engine],
                        autoload=False)
    orch.load_dag(DagBuilder("banners")
                  .add_node("ports", "set", config={"values": {"open_ports": []}})
                  .add_node("grab", "banner_grabber", ["ports"], {"probes": ["http_gte"]}).build())
    result = orch.execute()
    assert result.nodes["grab"].status == "failed"
    assert "http_gte" in result.nodes["grab"].error and "http_get" in result.nodes["grab"].error


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for CN=pentora-test (cert file, key file)."""
    x509 = pytest.importorskip("cryptography.x509", reason="the TLS tests make their certificate "
                               "with the 'cryptography' package, which is not installed")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pentora-test"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pentora Tests")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1234).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("pentora.test"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


@contextlib.contextmanager
def threaded_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A 127.0.0.1 listener running ``handle(conn)`` per connection in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=_handle_quietly, args=(handle, conn), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def _handle_quietly(handle: Callable[[socket.socket], None], conn: socket.socket) -> None:
    with contextlib.suppress(OSError), conn:
        conn.settimeout(5)
        handle(conn)


def https_handler(cert: tuple[str, str]) -> Callable[[socket.socket], None]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)

    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            request = tls.recv(4096)
            if request.startswith(b"GET "):
                tls.sendall(HTTP_OK)

    return handle


def test_tls_on_a_random_port_then_http_inside(certificate: tuple[str, str]) -> None:
    with threaded_server(https_handler(certificate)) as number:
        banners, _, _ = grab([{"host": "127.0.0.1", "port": number}])
    found = by_probe(banners)
    assert found[("tls_client_hello", False)][:2] == "\x16\x03"  # a ServerHello record
    handshake = dict(line.split("=", 1) for line in found[("tls_handshake", True)].splitlines())
    assert handshake["subject"] == "CN=pentora-test,O=Pentora Tests" == handshake["issuer"]
    assert handshake["san"] == "DNS:pentora.test,IP:127.0.0.1"
    assert handshake["not_before"] == "2024-01-01T00:00:00Z"
    assert handshake["version"].startswith("TLSv1.")
    assert found[("http_get", True)] == HTTP_OK.decode()


def test_plain_http_error_on_a_tls_port_means_tls(certificate: tuple[str, str]) -> None:
    """Like nginx: the port answers plain HTTP with a 400 naming HTTPS, and speaks TLS."""
    tls = https_handler(certificate)
    complaint = (b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nConnection: close\r\n\r\n"
                 b"<html><head><title>400 The plain HTTP request was sent to HTTPS port</title>")

    def sniff(conn: socket.socket) -> None:
        if conn.recv(1, socket.MSG_PEEK) == b"\x16":
            tls(conn)
        else:
            conn.recv(4096)
            conn.sendall(complaint)

    with threaded_server(sniff) as number:
        banners, _, _ = grab([{"host": "127.0.0.1", "port": number}])
    found = by_probe(banners)
    assert found[("http_get", False)] == complaint.decode()
    assert found[("tls_client_hello", False)].startswith("\x16\x03")
    assert found[("http_get", True)] == HTTP_OK.decode()


def test_greeting_inside_tls_selects_its_follow_up(certificate: tuple[str, str]) -> None:
    """IMAP over TLS on a random port: the greeting and CAPABILITY are read through TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)

    def imaps(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n")
            if tls.recv(4096) == b"a001 CAPABILITY\r\n":
                tls.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS\r\na001 OK done\r\n")
                tls.recv(4096)

    with threaded_server(imaps) as number:
        banners, _, _ = grab([{"host": "127.0.0.1", "port": number}])
    found = by_probe(banners)
    assert found[("passive", True)] == "* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n"
    assert found[("imap_capability", True)] == "* CAPABILITY IMAP4rev1 STARTTLS\r\na001 OK done\r\n"
    assert ("http_get", True) not in found


def test_tls_false_detects_but_does_not_shake_hands(certificate: tuple[str, str]) -> None:
    with threaded_server(https_handler(certificate)) as number:
        banners, _, _ = grab([{"host": "127.0.0.1", "port": number}], tls=False)
    assert {b.probe for b in banners} <= {"http_get", "tls_client_hello"}
    assert not any(b.tls for b in banners)


def test_certificate_fields_read_the_der(certificate: tuple[str, str]) -> None:
    der = ssl.PEM_cert_to_DER_cert(open(certificate[0]).read())
    fields = certificate_fields(der)
    assert fields["subject"] == "CN=pentora-test,O=Pentora Tests"
    assert fields["not_after"] == "2033-12-29T00:00:00Z"


# -- bounds ----------------------------------------------------------------------------------


def test_silent_server_finishes_within_the_deadline(tcp_server: Callable[..., Any]) -> None:
    server = tcp_server()  # accepts, reads, never speaks
    config = {"passive_timeout": "1s", "read_timeout": "1s", "deadline": "2s"}
    start = time.monotonic()
    banners, _, _ = grab([port(server)], **config)
    assert banners == []
    assert time.monotonic() - start < 2 + 2  # deadline + generous slack


def test_endless_streamer_costs_at_most_max_bytes() -> None:
    def stream(conn: socket.socket) -> None:
        chunk = b"A" * 1024
        while True:
            conn.sendall(chunk)

    with threaded_server(stream) as number:
        banners, _, _ = grab([{"host": "127.0.0.1", "port": number}], max_bytes=4096)
    assert sum(len(b.data) for b in banners) <= 4096
    assert banners[0].probe == "passive" and banners[0].data == "A" * 4096


def test_reset_mid_banner_keeps_what_was_read() -> None:
    def reset(conn: socket.socket) -> None:
        conn.sendall(b"SSH-2.0-Open")
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with threaded_server(reset) as number:
        banners, _, _ = grab([{"host": "127.0.0.1", "port": number}], idle_timeout="1s")
    assert [(b.probe, b.data) for b in banners] == [("passive", "SSH-2.0-Open")]


def test_closed_port_gives_nothing(closed_tcp_port: int) -> None:
    banners, _, _ = grab([{"host": "127.0.0.1", "port": closed_tcp_port}])
    assert banners == []


# -- the probes raced against the passive read ------------------------------------------------


def test_probes_race_the_passive_wait(tcp_server: Callable[..., Any]) -> None:
    """A passive wait longer than the deadline: only the raced probe can find HTTP."""
    server = tcp_server(respond=lambda d: HTTP_OK if d.startswith(b"GET / HTTP/1.0\r\n") else None)
    banners, _, _ = grab([port(server)], passive_timeout="60s", deadline="2s")
    assert by_probe(banners) == {("http_get", False): HTTP_OK.decode()}
    assert server.received == [payload_of("http_get")]
    banners, _, _ = grab([port(server)], passive_timeout="60s", deadline="2s", race_probes=False)
    assert banners == []


def payload_of(name: str) -> bytes:
    from pentora_plugins.kit.probes import load_catalog

    probe = next(p for p in load_catalog().probes if p.name == name)
    assert probe.payload is not None
    return probe.payload


def greeter(greeting: bytes, first_delay: float, later_delay: float, reply: bytes,
            heard: list[bytes]) -> Callable[[socket.socket], None]:
    """A service that speaks first: after ``first_delay`` on its first connection,
    ``later_delay`` on the others; answers what it is sent with ``reply`` and closes."""
    count = itertools.count()

    def handle(conn: socket.socket) -> None:
        time.sleep(first_delay if next(count) == 0 else later_delay)
        conn.sendall(greeting)
        data = conn.recv(4096)
        if data:
            heard.append(data)
            conn.sendall(reply)

    return handle


SSH_IDENT = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


def test_a_slow_greeting_is_read_passively_though_a_probe_was_raced() -> None:
    heard: list[bytes] = []
    with threaded_server(greeter(SSH_IDENT, 0.3, 0.3, b"Invalid SSH identification string.\r\n",
                                 heard)) as number:
        banners, _, _ = grab([{"host": "127.0.0.1", "port": number}], passive_timeout="2s")
    assert [(b.probe, b.data) for b in banners] == [("passive", SSH_IDENT.decode())]


def test_a_greeting_on_the_raced_connection_is_not_taken_for_the_probes_answer() -> None:
    """The service greets the raced connection first: its answer (the greeting) waits
    for the passive connection, which hears the greeting in turn."""
    heard: list[bytes] = []
    with threaded_server(greeter(SSH_IDENT, 0.6, 0, b"Invalid SSH identification string.\r\n",
                                 heard)) as number:
        banners, _, _ = grab([{"host": "127.0.0.1", "port": number}], passive_timeout="3s")
    assert [(b.probe, b.data) for b in banners] == [("passive", SSH_IDENT.decode())]
    assert heard == [payload_of("http_get")]  # the raced probe did go out


@contextlib.contextmanager
def serial_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A 127.0.0.1 listener serving one connection at a time: the next one is accepted
    once ``handle`` returned for the previous."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            _handle_quietly(handle, conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=6)
        listener.close()


def test_a_server_serving_one_connection_at_a_time_answers_the_raced_probe() -> None:
    """The raced probe waits in the server's backlog until the passive connection is
    closed; it is still answered, though the passive wait outlasts read_timeout."""
    def http(conn: socket.socket) -> None:
        if conn.recv(4096).startswith(b"GET "):
            conn.sendall(HTTP_OK)

    with serial_server(http) as number:
        banners, _, _ = grab([{"host": "127.0.0.1", "port": number}], passive_timeout="1s",
                             read_timeout="300ms")
    assert by_probe(banners) == {("http_get", False): HTTP_OK.decode()}


@pytest.mark.parametrize("service", ["http", "redis", "memcached", "postgresql", "mongodb", "ftp",
                                     "unknown_greeter"])
def test_racing_records_the_same_banners(tcp_server: Callable[..., Any], service: str) -> None:
    servers = {
        "http": {"respond": lambda d: HTTP_OK},
        "redis": {"respond": redis},
        "memcached": {"respond": memcached},
        "postgresql": {"respond": postgresql},
        "mongodb": {"respond": mongodb},
        "ftp": {"banner": b"220 (vsFTPd 3.0.3)\r\n", "respond": lambda d: b"215 UNIX Type: L8\r\n"},
        "unknown_greeter": {"banner": b"HELLO pentora\r\n", "respond": lambda d: b"WHAT?\r\n"},
    }
    server = tcp_server(**servers[service])
    raced, _, _ = grab([port(server)])
    plain, _, _ = grab([port(server)], race_probes=False)
    assert [(b.probe, b.tls, b.data) for b in raced] == [(b.probe, b.tls, b.data) for b in plain]
    assert raced


# -- in a DAG --------------------------------------------------------------------------------


def test_dag_emits_each_banner_and_publishes_them_sorted(tcp_server: Callable[..., Any]) -> None:
    ssh = tcp_server(banner=b"SSH-2.0-dropbear_2022.83\r\n")
    ftp = tcp_server(banner=b"220 ProFTPD Server (Debian) [127.0.0.1]\r\n",
                     respond=lambda d: b"215 UNIX Type: L8\r\n")
    web = tcp_server(respond=lambda d: HTTP_OK)
    udp = {"host": "127.0.0.1", "port": ssh.port, "protocol": "udp", "state": "open"}
    filtered = Port(host="127.0.0.1", port=web.port + 1, state="filtered")
    ports = [Port(host="127.0.0.1", port=web.port), port(ftp), port(ssh), udp, filtered,
             Port(host="127.0.0.1", port=ssh.port)]  # the duplicate is grabbed once
    banners, emitted, _ = grab(ports, concurrency=2)
    assert [kind for kind, _ in emitted.records] == ["banner"] * len(banners)
    assert sorted(r.sort_key() for _, r in emitted.records) == [b.sort_key() for b in banners]
    expected = sorted([("127.0.0.1", ssh.port, "passive"), ("127.0.0.1", ftp.port, "passive"),
                       ("127.0.0.1", ftp.port, "ftp_syst"), ("127.0.0.1", web.port, "http_get")],
                      key=lambda t: (t[1], t[2]))
    assert [(b.host, b.port, b.probe) for b in banners] == expected
    assert all(isinstance(b, Banner) and b.protocol == "tcp" for b in banners)


# -- short of descriptors ----------------------------------------------------------------


def test_a_wait_for_a_descriptor_does_not_count_against_the_port_deadline(
        tcp_server: Callable[..., Any]) -> None:
    """Once the passive connection is open, every free descriptor is taken (by other
    ports, in a real scan) for longer than the port's deadline: the rival that sends the
    HTTP probe waits for one, and the port still gets its banner."""
    import os
    import resource

    import gevent

    accepted = threading.Event()

    def http(conn: socket.socket) -> None:
        accepted.set()
        if conn.recv(65536).startswith(b"GET "):
            conn.sendall(HTTP_OK)

    server = tcp_server(handler=http)
    taken: list[int] = []

    def hog() -> None:
        while not accepted.is_set():
            gevent.sleep(0.005)
        until = time.monotonic() + 1.5  # the deadline is 1 s
        while time.monotonic() < until:
            with contextlib.suppress(OSError):
                while True:
                    taken.append(os.open(os.devnull, os.O_RDONLY))
            gevent.sleep(0.005)
        for fd in taken:
            os.close(fd)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # a few spare descriptors above those open now: the hog takes them, not thousands
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 32, hard))
    try:
        hogger = gevent.spawn(hog)
        banners, _, _ = grab([port(server)], deadline="1s", passive_timeout="300ms")
        hogger.join(timeout=10)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert by_probe(banners) == {("http_get", False): HTTP_OK.decode()}



def test_timeout_is_the_deadline_under_the_name_other_scanners_use(tcp_server):
    """A banner dripped a byte every 100 ms, never pausing as long as idle_timeout: only
    the port's deadline ends the conversation. ``timeout: 500ms`` is that deadline: the
    connection is closed after a few bytes (the 8s deadline given beside it would have
    taken some 80)."""
    sent: list[int] = []

    def drip(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for byte in itertools.cycle(b"SSH-2.0-dripping\r\n"):
                conn.sendall(bytes([byte]))
                sent.append(byte)
                time.sleep(0.1)

    server = tcp_server(handler=drip)
    grab([port(server)], timeout="500ms", race_probes=False)
    time.sleep(0.3)  # the handler notices the closed connection at its next send
    assert 0 < len(sent) < 30, f"{len(sent)} bytes sent before the grab gave up"
