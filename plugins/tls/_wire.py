"""The first flight of a TLS handshake, spoken by hand: a ClientHello built with ``struct``
and the server's answer parsed up to its Certificate message.

The local OpenSSL no longer speaks SSLv3 (and Debian's may refuse TLS 1.0/1.1 or the
weak suites a scanner must ask about), so the analyzer asks every question itself:
one ClientHello for one protocol version and a list of cipher suites, on a plain gevent
TCP socket, read until the ServerHello (or the alert, or the hang-up) says whether the
server accepted, and which suite it chose. Nothing past the server's first flight is
needed, so no key is ever derived: the TLS 1.3 key share is random bytes.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from gevent import socket
from pentora_plugins.kit.net.talk import talk
from pentora_plugins.kit.net.tls import sni_name

SSL3, TLS10, TLS11, TLS12, TLS13 = "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"
VERSIONS = {SSL3: 0x0300, TLS10: 0x0301, TLS11: 0x0302, TLS12: 0x0303, TLS13: 0x0304}
VERSION_NAMES = {v: k for k, v in VERSIONS.items()}

HANDSHAKE, ALERT = 22, 21
SERVER_HELLO, CERTIFICATE, SERVER_HELLO_DONE = 2, 11, 14
# ServerHello.random of a TLS 1.3 HelloRetryRequest (RFC 8446, 4.1.3): the server accepts
# TLS 1.3 and the suite but wants another key share; for a scanner that is a yes.
HELLO_RETRY = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
# x25519, secp256r1, secp384r1, secp521r1, x448, ffdhe2048..8192
GROUPS = (0x001D, 0x0017, 0x0018, 0x0019, 0x001E, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104)
# ECDSA, RSA-PSS, EdDSA, RSA PKCS#1 with SHA-2, then the SHA-1 and DSA ones old servers need
SIGNATURE_ALGORITHMS = (0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0807, 0x0808,
                        0x0809, 0x080A, 0x080B, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201,
                        0x0402, 0x0202, 0x0303, 0x0301, 0x0302)
MAX_FLIGHT = 256 * 1024  # a server's first flight with a long chain stays far below this
ALERTS = {10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
          47: "illegal_parameter", 50: "decode_error", 70: "protocol_version",
          71: "insufficient_security", 80: "internal_error", 86: "inappropriate_fallback",
          109: "missing_extension", 112: "unrecognized_name", 120: "no_application_protocol"}


class WireError(ValueError):
    """The server's bytes are not the TLS they claim to be."""


@dataclass
class Hello:
    """What the server answered to one ClientHello."""

    accepted: bool
    version: str | None = None      # the version the server chose
    cipher: int | None = None       # the suite the server chose
    alert: str | None = None        # the alert it sent instead, or why there was no answer
    certificates: list[bytes] = field(default_factory=list)  # DER, leaf first (TLS <= 1.2)


# -- the ClientHello --------------------------------------------------------------------


def _u8(data: bytes) -> bytes:
    return struct.pack("!B", len(data)) + data


def _u16(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _u16s(values: tuple[int, ...] | list[int]) -> bytes:
    return struct.pack(f"!{len(values)}H", *values)


def _extension(kind: int, body: bytes) -> bytes:
    return struct.pack("!H", kind) + _u16(body)


def _extensions(version: str, server_name: str | None) -> bytes:
    out = []
    server_name = sni_name(server_name)
    if server_name:
        name = server_name.encode("idna")
        out.append(_extension(0, _u16(b"\x00" + _u16(name))))
    out += [
        _extension(10, _u16(_u16s(GROUPS))),                     # supported_groups
        _extension(11, _u8(b"\x00")),                            # ec_point_formats: uncompressed
        _extension(13, _u16(_u16s(SIGNATURE_ALGORITHMS))),      # signature_algorithms
        _extension(23, b""),                                    # extended_master_secret
        _extension(0xFF01, b"\x00"),                            # renegotiation_info (initial)
    ]
    if version == TLS13:
        out.append(_extension(43, _u8(_u16s([VERSIONS[TLS13]]))))             # supported_versions
        share = struct.pack("!H", 0x001D) + _u16(os.urandom(32))
        out.append(_extension(51, _u16(share)))                                 # key_share: x25519
        out.append(_extension(45, _u8(b"\x01")))                                # psk_key_exchange_modes
    return b"".join(out)


def client_hello(version: str, suites: list[int], server_name: str | None = None) -> bytes:
    """One TLS record holding a ClientHello that offers ``version`` and ``suites``.

    SSLv3 goes without extensions, as an SSLv3 client would; TLS 1.3 is offered the
    RFC 8446 way (legacy version 1.2 plus ``supported_versions``).
    """
    legacy = min(VERSIONS[version], VERSIONS[TLS12])
    body = struct.pack("!H", legacy) + os.urandom(32) + _u8(os.urandom(32) if version == TLS13 else b"")
    body += _u16(_u16s(suites)) + _u8(b"\x00")
    if version != SSL3:
        body += _u16(_extensions(version, server_name))
    handshake = struct.pack("!B", 1) + struct.pack("!I", len(body))[1:] + body
    record_version = VERSIONS[SSL3] if version == SSL3 else VERSIONS[TLS10]
    return struct.pack("!BHH", HANDSHAKE, record_version, len(handshake)) + handshake


# -- the server's answer ----------------------------------------------------------------


class FlightReader:
    """Handshake messages out of the records a server sends, however they are split."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.handshake = b""
        self.read_total = 0

    def _fill(self, count: int) -> bool:
        while len(self.buffer) < count:
            chunk = self.sock.recv(16384)
            if not chunk:
                return False
            self.read_total += len(chunk)
            if self.read_total > MAX_FLIGHT:
                raise WireError(f"more than {MAX_FLIGHT} bytes before the handshake was complete")
            self.buffer += chunk
        return True

    def record(self) -> tuple[int, bytes] | None:
        """(content type, fragment) of the next record; None when the server hung up."""
        if not self._fill(5):
            return None
        kind, version, length = struct.unpack("!BHH", self.buffer[:5])
        if kind not in (20, 21, 22, 23) or version >> 8 != 3:
            raise WireError(f"not a TLS record (first bytes {self.buffer[:5].hex()})")
        if not self._fill(5 + length):
            return None
        fragment, self.buffer = self.buffer[5:5 + length], self.buffer[5 + length:]
        return kind, fragment

    def message(self) -> tuple[int, bytes] | str | None:
        """The next handshake message (type, body); an alert's name; None on hang-up."""
        while len(self.handshake) < 4 or len(self.handshake) < 4 + _u24(self.handshake, 1):
            got = self.record()
            if got is None:
                return None
            kind, fragment = got
            if kind == ALERT and len(fragment) >= 2:
                return ALERTS.get(fragment[1], f"alert {fragment[1]}")
            if kind != HANDSHAKE:
                raise WireError(f"record type {kind} in the middle of the handshake")
            self.handshake += fragment
        size = _u24(self.handshake, 1)
        kind, body = self.handshake[0], self.handshake[4:4 + size]
        self.handshake = self.handshake[4 + size:]
        return kind, body


def _u24(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos:pos + 3], "big")


def parse_server_hello(body: bytes) -> tuple[int, int, bool]:
    """(negotiated version, cipher suite, is a HelloRetryRequest) of a ServerHello body."""
    try:
        version, random = struct.unpack("!H", body[:2])[0], body[2:34]
        pos = 35 + body[34]
        suite = struct.unpack("!H", body[pos:pos + 2])[0]
        pos += 3  # suite, compression method
        if pos + 2 <= len(body):
            end = pos + 2 + struct.unpack("!H", body[pos:pos + 2])[0]
            pos += 2
            while pos + 4 <= end:
                kind, size = struct.unpack("!HH", body[pos:pos + 4])
                if kind == 43 and size == 2:  # supported_versions: the real choice (1.3)
                    version = struct.unpack("!H", body[pos + 4:pos + 6])[0]
                pos += 4 + size
    except (struct.error, IndexError) as e:
        raise WireError(f"truncated ServerHello ({len(body)} bytes)") from e
    return version, suite, random == HELLO_RETRY


def parse_certificates(body: bytes) -> list[bytes]:
    """The DER certificates of a TLS <= 1.2 Certificate message, leaf first."""
    total, pos, out = _u24(body, 0), 3, []
    end = min(len(body), 3 + total)
    while pos + 3 <= end:
        size = _u24(body, pos)
        out.append(body[pos + 3:pos + 3 + size])
        pos += 3 + size
    return out


# -- one question -----------------------------------------------------------------------


def ask(host: str, port: int, version: str, suites: list[int], *, server_name: str | None,
        timeout: float, want_certificates: bool = False) -> Hello:
    """Offer ``version`` and ``suites`` to host:port; the server's answer.

    Raises OSError when the TCP connection itself fails (the port is gone) and
    WireError when what comes back is not TLS. ``timeout`` bounds each socket operation,
    and twice that the whole question: a server dripping a byte at a time stops there.
    """
    with talk(host, port, timeout, "no complete answer") as sock:
        sock.sendall(client_hello(version, suites, server_name))
        return _answer(FlightReader(sock), version, want_certificates)


def _answer(reader: FlightReader, version: str, want_certificates: bool) -> Hello:
    try:
        first = reader.message()
    except (socket.timeout, ConnectionResetError) as e:
        return Hello(False, alert="timeout" if isinstance(e, socket.timeout) else "connection reset")
    if first is None or isinstance(first, str):
        return Hello(False, alert=first or "connection closed")
    kind, body = first
    if kind != SERVER_HELLO:
        raise WireError(f"handshake message {kind} where a ServerHello was expected")
    chosen, suite, _retry = parse_server_hello(body)
    name = VERSION_NAMES.get(chosen, f"0x{chosen:04x}")
    hello = Hello(accepted=name == version, version=name, cipher=suite)
    if want_certificates and chosen < VERSIONS[TLS13]:
        hello.certificates = _certificates(reader)
    return hello


def _certificates(reader: FlightReader) -> list[bytes]:
    """Read on to the Certificate message (plaintext up to TLS 1.2); [] without one."""
    try:
        while True:
            message = reader.message()
            if message is None or isinstance(message, str):
                return []
            kind, body = message
            if kind == CERTIFICATE:
                return parse_certificates(body)
            if kind == SERVER_HELLO_DONE:
                return []  # an anonymous suite: no certificate at all
    except socket.timeout:
        raise  # a handshake that stalls is not one without a certificate: say it timed out
    except (OSError, WireError):
        return []
