"""Certificates made in the test with ``cryptography``, and TLS servers on 127.0.0.1 that
present them: Python's ssl (OpenSSL) with chosen versions and suites, and a scripted
server that speaks SSLv3 / TLS 1.0 handshakes the local OpenSSL no longer speaks."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import struct
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


@dataclass
class Issued:
    cert: x509.Certificate
    key: Any

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def new_key(kind: str = "rsa") -> Any:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:] or 2048))


def issue(cn: str, *, key: str = "rsa", issuer: Issued | None = None, names: tuple[str, ...] = (),
          not_before: dt.datetime = NOW - DAY, not_after: dt.datetime = NOW + 30 * DAY,
          ca: bool = False) -> Issued:
    """A certificate for ``cn`` (SANs ``names``), signed by ``issuer`` or by itself."""
    private = new_key(key)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pentora tests")])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(private.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    signer = issuer.key if issuer else private
    return Issued(builder.sign(signer, hashes.SHA256()), private)


def write(directory: Path, leaf: Issued, *chain: Issued) -> tuple[str, str]:
    """PEM files (certificate chain, key) for ``load_cert_chain`` or nginx."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "chain.pem", directory / "key.pem"
    cert_file.write_bytes(b"".join(c.cert.public_bytes(serialization.Encoding.PEM)
                                   for c in (leaf, *chain)))
    key_file.write_bytes(leaf.key.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def openssl_handler(files: tuple[str, str], *, versions: tuple[str, str] | None = None,
                    ciphers: str | None = None) -> Callable[[Any], None]:
    """A per-connection handler for ``tcp_server``: one handshake with Python's ssl."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*files)
    if versions:
        with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is the point here
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = getattr(ssl.TLSVersion, versions[0])
            context.maximum_version = getattr(ssl.TLSVersion, versions[1])
    if ciphers:
        context.set_ciphers(ciphers)

    def handle(conn: Any) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            return

    return handle


# -- a scripted server for the versions OpenSSL will not speak ------------------------------


def read_client_hello(conn: Any) -> tuple[int, list[int], bytes]:
    """(client_version, offered suites, raw extensions) of the ClientHello on ``conn``."""
    data = b""
    while len(data) < 5 or len(data) < 5 + struct.unpack("!H", data[3:5])[0]:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client hung up")
        data += chunk
    body = data[9:]
    version = struct.unpack("!H", body[:2])[0]
    pos = 34 + 1 + body[34]
    (size,) = struct.unpack("!H", body[pos:pos + 2])
    suites = list(struct.unpack(f"!{size // 2}H", body[pos + 2:pos + 2 + size]))
    pos += 2 + size
    pos += 1 + body[pos]
    return version, suites, body[pos + 2:] if pos + 2 <= len(body) else b""


def record(kind: int, version: int, fragment: bytes) -> bytes:
    return struct.pack("!BHH", kind, version, len(fragment)) + fragment


def handshake(kind: int, body: bytes) -> bytes:
    return struct.pack("!B", kind) + struct.pack("!I", len(body))[1:] + body


def scripted_handler(versions: set[int], preference: list[int], chain: list[bytes],
                     seen: list[tuple[int, list[int]]] | None = None) -> Callable[[Any], None]:
    """An old server: negotiates the highest of ``versions`` not above the client's, picks
    the first suite of ``preference`` offered, sends ServerHello (split over two records),
    Certificate and ServerHelloDone; otherwise a handshake_failure or protocol_version alert."""

    def handle(conn: Any) -> None:
        client_version, offered, _ = read_client_hello(conn)
        if seen is not None:
            seen.append((client_version, offered))
        usable = [v for v in versions if v <= client_version]
        suite = next((s for s in preference if s in offered), None)
        if not usable or suite is None:
            alert = 70 if not usable else 40
            conn.sendall(record(21, 0x0301, bytes([2, alert])))
            return
        version = max(usable)
        hello = struct.pack("!H", version) + bytes(32) + b"\x00" + struct.pack("!HB", suite, 0)
        flight = handshake(2, hello)
        certs = b"".join(struct.pack("!I", len(c))[1:] + c for c in chain)
        rest = handshake(11, struct.pack("!I", len(certs))[1:] + certs) + handshake(14, b"")
        conn.sendall(record(22, version, flight[:20]) + record(22, version, flight[20:])
                     + record(22, version, rest))
        conn.recv(1)

    return handle


class Dripper:
    """A hostile server: answers with ``first`` then one byte every ``interval`` seconds,
    for up to ``count`` bytes; ``cut_off`` is set when the client hung up on it first."""

    def __init__(self, first: bytes, filler: bytes = b"\x00", count: int = 2000,
                 interval: float = 0.05) -> None:
        self.first, self.filler, self.count, self.interval = first, filler, count, interval
        self.cut_off = threading.Event()

    def __call__(self, conn: Any) -> None:
        conn.recv(65536)
        try:
            conn.sendall(self.first)
            for _ in range(self.count):
                time.sleep(self.interval)
                conn.sendall(self.filler)
        except OSError:
            self.cut_off.set()
