"""Hostile servers: connection handlers for ``pentora.testing.TcpServer(handler=...)``.

Each handler runs the whole conversation of one accepted connection in its own OS
thread (blocking sockets, independent of the gevent hub that runs the scan) and
misbehaves in one way: never speaks, drips, streams without end, sends garbage,
resets mid-banner, stalls or breaks a TLS handshake, presents a broken certificate, or
answers HTTP with huge headers or a redirect loop. They end when the scanner hangs up.

TLS handshakes that OpenSSL would refuse to produce (a ServerHello and then nothing, a
Certificate message holding garbage) are written here record by record; the TLS 1.2
ServerHello picks a cipher suite the client offered, so the client reads on and stalls
or fails exactly where the test wants it to.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[socket.socket], None]

SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
HTTP_OK = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n"
           b"Content-Length: 31\r\nConnection: close\r\n\r\n<html><title>hi</title></html>\n")
# Every byte value, then sequences that no UTF-8 decoder accepts (lone continuation
# bytes, overlong forms, surrogates, a truncated 4-byte form), NULs and escapes.
GARBAGE = (bytes(range(256)) + b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\xc0\xaf\xed\xa0\x80"
           + b"\xf4\x90\x80\x80\xf0\x9f\x98" + b"\x00" * 16 + b"\x1b[2J\x1b]0;pwned\x07\r\n")


def _hang(conn: socket.socket, limit: float = 60.0) -> None:
    """Read (and ignore) until the peer hangs up, or ``limit`` seconds pass."""
    conn.settimeout(limit)
    while conn.recv(65536):
        pass


# -- plain TCP ----------------------------------------------------------------------------


def silent(conn: socket.socket) -> None:
    """Accepts, reads whatever is sent, never says a word."""
    _hang(conn)


def drip(data: bytes = SSH_BANNER, interval: float = 1.0) -> Handler:
    """Sends ``data`` one byte every ``interval`` seconds, then stays silent."""
    def handle(conn: socket.socket) -> None:
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            time.sleep(interval)
        _hang(conn)
    return handle


def endless(chunk: bytes = b"A" * 65536) -> Handler:
    """Streams ``chunk`` forever, whatever is sent; ends when the peer hangs up."""
    def handle(conn: socket.socket) -> None:
        conn.settimeout(60)
        while True:
            conn.sendall(chunk)
    return handle


def garbage(data: bytes = GARBAGE) -> Handler:
    """Sends ``data`` (binary, invalid UTF-8) first, and again in answer to anything."""
    def handle(conn: socket.socket) -> None:
        conn.sendall(data)
        conn.settimeout(60)
        while conn.recv(65536):
            conn.sendall(data)
    return handle


def reset_mid_banner(partial: bytes = SSH_BANNER[:14]) -> Handler:
    """Sends the start of a banner, then resets the connection (SO_LINGER 0: an RST)."""
    def handle(conn: socket.socket) -> None:
        conn.sendall(partial)
        time.sleep(0.2)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return handle


def ssh_then(after: bytes, drip_every: float = 0.0, forever: bool = False) -> Handler:
    """An SSH identification line, then ``after`` in place of a KEXINIT packet (dripped a
    byte every ``drip_every`` seconds, or sent again and again with ``forever``)."""
    def handle(conn: socket.socket) -> None:
        conn.sendall(SSH_BANNER)
        conn.settimeout(60)
        while True:
            if drip_every:
                for i in range(len(after)):
                    conn.sendall(after[i:i + 1])
                    time.sleep(drip_every)
            else:
                conn.sendall(after)
            if not forever:
                break
        _hang(conn)
    return handle


# -- HTTP -----------------------------------------------------------------------------------


def _read_request(conn: socket.socket, buf: bytearray) -> bool:
    """Read up to the end of one request head into ``buf`` (consumed); False at EOF."""
    conn.settimeout(60)
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        buf += chunk
    del buf[:buf.index(b"\r\n\r\n") + 4]
    return True


def http_huge_headers(total: int = 1 << 20) -> Handler:
    """Answers each request with ``total`` bytes of headers (one line of them 64 KiB)."""
    line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
    long_line = b"X-Long: " + b"L" * 65536 + b"\r\n"

    def handle(conn: socket.socket) -> None:
        buf = bytearray()
        while _read_request(conn, buf):
            conn.sendall(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n" + long_line)
            for _ in range(total // len(line)):
                conn.sendall(line)
            conn.sendall(b"Content-Length: 0\r\n\r\n")
    return handle


def http_redirect_loop(conn: socket.socket) -> None:
    """Answers every request (keep-alive) with a redirect to itself."""
    buf = bytearray()
    n = 0
    while _read_request(conn, buf):
        n += 1
        target = b"/loop" if n % 2 else b"/"
        conn.sendall(b"HTTP/1.1 302 Found\r\nServer: nginx/1.22.1\r\nLocation: " + target
                     + b"\r\nContent-Length: 0\r\n\r\n")


# -- TLS written by hand --------------------------------------------------------------------

_TLS12_SUITES = (0xC02F, 0xC030, 0xC02B, 0xC02C, 0x009C, 0x009D, 0x002F, 0x0035)


def _record(content_type: int, body: bytes) -> bytes:
    return struct.pack("!BHH", content_type, 0x0303, len(body)) + body


def _handshake(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def read_client_hello(conn: socket.socket) -> list[int]:
    """Read one ClientHello record; returns the cipher suites it offers ([] if not TLS)."""
    conn.settimeout(30)
    head = _recv_exact(conn, 5)
    if len(head) < 5 or head[0] != 0x16:
        return []
    body = _recv_exact(conn, struct.unpack("!H", head[3:5])[0])
    try:
        pos = 4 + 2 + 32  # handshake header, version, random
        pos += 1 + body[pos]  # session id
        count = struct.unpack("!H", body[pos:pos + 2])[0]
        return [struct.unpack("!H", body[i:i + 2])[0] for i in range(pos + 2, pos + 2 + count, 2)]
    except (IndexError, struct.error):
        return []


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def server_hello(offered: list[int]) -> bytes:
    """A TLS 1.2 ServerHello choosing a suite from ``offered`` (renegotiation_info included,
    which OpenSSL 3 clients require)."""
    suite = next((s for s in _TLS12_SUITES if s in offered), offered[0] if offered else 0xC02F)
    extensions = b"\xff\x01\x00\x01\x00"
    body = (b"\x03\x03" + os.urandom(32) + b"\x20" + os.urandom(32) + struct.pack("!H", suite) + b"\x00"
            + struct.pack("!H", len(extensions)) + extensions)
    return _handshake(2, body)


def tls_stall_after_hello(conn: socket.socket) -> None:
    """Answers a ClientHello with a ServerHello, then never sends the rest of the handshake."""
    offered = read_client_hello(conn)
    if offered:
        conn.sendall(_record(0x16, server_hello(offered)))
    _hang(conn)


def tls_raw_certificate(der: bytes = GARBAGE[:300]) -> Handler:
    """A handshake whose Certificate message holds ``der`` (by default bytes that are no
    certificate at all), then ServerHelloDone with no key exchange: a client goes no further."""
    def handle(conn: socket.socket) -> None:
        offered = read_client_hello(conn)
        if offered:
            entry = len(der).to_bytes(3, "big") + der
            certificate = _handshake(11, len(entry).to_bytes(3, "big") + entry)
            done = _handshake(14, b"")
            conn.sendall(_record(0x16, server_hello(offered) + certificate + done))
        _hang(conn)
    return handle


# -- TLS with real certificates that are wrong ----------------------------------------------


def tls_server(cert_file: str, key_file: str, answer: bytes = HTTP_OK) -> Handler:
    """A real TLS server (Python's ssl) presenting the chain in ``cert_file``; answers
    a request with ``answer``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)

    def handle(conn: socket.socket) -> None:
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the raw ClientHello probe hangs up mid-handshake
        with tls:
            if tls.recv(65536):
                tls.sendall(answer)
    return handle


def _name(cn: str) -> object:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pentora Hostile Tests")])


def _certificate(cn: str, key: object, issuer_cn: str, issuer_key: object, days: tuple[int, int],
                 dns: list[str]) -> object:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(issuer_cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())  # type: ignore[attr-defined]
               .not_valid_before(now + datetime.timedelta(days=days[0]))
               .not_valid_after(now + datetime.timedelta(days=days[1])))
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


def write_chain(directory: Path, name: str, kind: str) -> tuple[str, str]:
    """Write a broken certificate chain of ``kind`` and its key; returns (cert, key) files.

    - ``expired``: self-signed, valid from 400 to 30 days ago;
    - ``wrong_host``: self-signed for ``wrong.pentora.test`` only, served on 127.0.0.1;
    - ``chain_loop``: A issued by B and B issued by A, served as the chain A, B.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    if kind == "expired":
        certs = [_certificate("expired.pentora.test", key, "expired.pentora.test", key, (-400, -30),
                              ["expired.pentora.test"])]
    elif kind == "wrong_host":
        certs = [_certificate("wrong.pentora.test", key, "wrong.pentora.test", key, (-1, 365),
                              ["wrong.pentora.test"])]
    elif kind == "chain_loop":
        other = ec.generate_private_key(ec.SECP256R1())
        certs = [_certificate("loop-a.pentora.test", key, "loop-b.pentora.test", other, (-1, 365), []),
                 _certificate("loop-b.pentora.test", other, "loop-a.pentora.test", key, (-1, 365), [])]
    else:
        raise ValueError(f"unknown broken chain {kind!r}")
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)  # type: ignore[attr-defined]
                                   for c in certs))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def malformed_certificate(kind: str) -> bytes:
    """The DER of a certificate broken in a way ``cryptography`` reports with exceptions of
    its own (not ValueError); the signature no longer matches, which no reader checks first.

    - ``bad_version``: version 108 where X.509 has 1 to 3;
    - ``duplicate_extension``: its subjectAltName extension twice.
    """
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from pentora_plugins.kit.net.tls import _children, _tlv

    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("malformed.pentora.test", key, "malformed.pentora.test", key, (-1, 365),
                        ["malformed.pentora.test"])
    _, body, _ = _tlv(cert.public_bytes(Encoding.DER), 0)  # type: ignore[attr-defined]
    (tbs_tag, tbs), *rest = _children(body)
    fields = _children(tbs)
    if kind == "bad_version":
        fields[0] = (0xA0, _der(0x02, b"\x6c"))
    elif kind == "duplicate_extension":
        extensions = _children(_children(fields[-1][1])[0][1])
        fields[-1] = (0xA3, _der(0x30, b"".join(_der(t, v) for t, v in extensions * 2)))
    else:
        raise ValueError(f"unknown malformed certificate {kind!r}")
    tbs = b"".join(_der(t, v) for t, v in fields)
    return _der(0x30, _der(tbs_tag, tbs) + b"".join(_der(t, v) for t, v in rest))

