"""TLS for ``banner_grabber``: a client context that talks to anything, and a text
summary of a handshake (version, cipher, certificate subject, issuer, validity,
names) for the ``tls_handshake`` banner.

Verification is off: a scanner wants to see the certificate, not to trust it. With
``CERT_NONE`` Python's ``getpeercert()`` returns an empty dict, so the certificate's
DER is read here with a small ASN.1 walker (no third-party dependency).
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
from typing import Any

from gevent import ssl

OIDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.5": "serialNumber", "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "DC",
}
SAN_OID = "2.5.29.17"


def sni_name(hostname: str | None) -> str | None:
    """The name to send as TLS server name (SNI): a host name, never an IP address
    (RFC 6066 forbids literal addresses there), else None."""
    if not hostname:
        return None
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return hostname
    return None


def client_context() -> ssl.SSLContext:
    """No verification, every protocol version and cipher OpenSSL still allows."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ValueError, ssl.SSLError):
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    # No ALPN: offering h2 would make a server expect HTTP/2 from the HTTP/1.0 probe, and
    # offering only http/1.1 could make a non-HTTP server refuse the handshake.
    return ctx


def describe(sock: Any) -> str:
    """One ``key=value`` line per fact about the handshake of ``sock``."""
    lines = [f"version={sock.version() or ''}"]
    cipher = sock.cipher()
    if cipher:
        lines.append(f"cipher={cipher[0]}")
    der = sock.getpeercert(binary_form=True)
    if der:
        with contextlib.suppress(ValueError, IndexError):
            lines += [f"{k}={v}" for k, v in certificate_fields(der).items() if v]
        lines.append(f"sha256={hashlib.sha256(der).hexdigest()}")
    return "\n".join(lines) + "\n"


# -- DER -----------------------------------------------------------------------------


def _tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, next position) of the DER element at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:pos + length], pos + length


def _children(content: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(content):
        tag, value, pos = _tlv(content, pos)
        out.append((tag, value))
    return out


def _oid(content: bytes) -> str:
    arcs = [content[0] // 40, content[0] % 40] if content[0] < 80 else [2, content[0] - 80]
    value = 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _text(tag: int, content: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return content.decode("utf-16-be", "replace")
    if tag == 0x0C:  # UTF8String
        return content.decode("utf-8", "replace")
    return content.decode("latin-1")


def _name(content: bytes) -> str:
    parts = []
    for _, rdn in _children(content):
        for _, attr in _children(rdn):
            (_, oid), (tag, value) = _children(attr)[:2]
            key = OIDS.get(_oid(oid), _oid(oid))
            parts.append(f"{key}={_text(tag, value)}")
    return ",".join(parts)


def _time(tag: int, content: bytes) -> str:
    text = content.decode("ascii", "replace").rstrip("Z")
    if tag == 0x17:  # UTCTime: two-digit year, 1950-2049
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}Z"


def _san(extensions: bytes) -> str:
    names = []
    for _, ext in _children(extensions):
        parts = _children(ext)
        if _oid(parts[0][1]) != SAN_OID:
            continue
        for tag, value in _children(_children(parts[-1][1])[0][1]):
            if tag == 0x82:
                names.append("DNS:" + value.decode("latin-1"))
            elif tag == 0x87 and len(value) in (4, 16):
                names.append("IP:" + str(ipaddress.ip_address(value)))
            elif tag == 0x81:
                names.append("email:" + value.decode("latin-1"))
    return ",".join(names)


def certificate_fields(der: bytes) -> dict[str, str]:
    """subject, issuer, not_before, not_after and san of a DER certificate."""
    _, cert, _ = _tlv(der, 0)
    _, tbs = _children(cert)[0]
    fields = _children(tbs)
    if fields[0][0] == 0xA0:  # explicit version
        fields = fields[1:]
    # serial, signature algorithm, issuer, validity, subject, public key, [extensions]
    validity = _children(fields[3][1])
    extensions = next((v for t, v in fields[6:] if t == 0xA3), None)
    return {
        "subject": _name(fields[4][1]),
        "issuer": _name(fields[2][1]),
        "not_before": _time(*validity[0]),
        "not_after": _time(*validity[1]),
        "san": _san(_children(extensions)[0][1]) if extensions else "",
    }
