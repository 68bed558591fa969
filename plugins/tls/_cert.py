"""What a certificate chain says, read with ``cryptography``: names, validity, key,
signature algorithm, whether it signs itself, and whether it names the host.

``_tlsinfo`` keeps its dependency-free DER walker for the one-line banner summary; the
analyzer needs key sizes, signature checks and SAN matching, which are ``cryptography``'s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_info(cert: x509.Certificate) -> tuple[str, int | None]:
    """(key type, size in bits) of the certificate's public key."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "unknown", None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC ({key.curve.name})", key.key_size
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return type(key).__name__, None


def signature_algorithm(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    # cryptography names the OIDs it knows (sha256WithRSAEncryption, ecdsa-with-SHA384...)
    return getattr(oid, "_name", None) or oid.dotted_string


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name and key signed ``cert``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def sans(cert: x509.Certificate) -> list[str] | None:
    """DNS names and IP addresses of the subjectAltName extension; None without one."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    # a malformed extension (or two of them, which cryptography refuses) is as good as none
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        return None
    names = list(ext.get_values_for_type(x509.DNSName))
    return names + [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]


def common_names(cert: x509.Certificate) -> list[str]:
    with contextlib.suppress(ValueError):
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return []


def _dns_match(pattern: str, name: str) -> bool:
    """RFC 6125: exact, or one wildcard standing for the whole left-most label."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*.") or "*" in pattern[2:]:
        return False
    head, _, rest = name.partition(".")
    return bool(head) and rest == pattern[2:] and rest.count(".") >= 1


def matches_host(cert: x509.Certificate, name: str) -> bool:
    """Whether the certificate is valid for ``name`` (a host name or an IP address).

    The subjectAltName decides when present; the subject CN only counts without one,
    as in the older clients that still read it.
    """
    try:
        ip: Any = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    names = sans(cert)
    if names is None:
        names = common_names(cert)
    for entry in names:
        if ip is not None:
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(entry) == ip:
                    return True
        elif _dns_match(entry, name):
            return True
    return False


def summary(cert: x509.Certificate, der: bytes, now: dt.datetime) -> dict[str, Any]:
    """The facts of one certificate, as a JSON-ready mapping."""
    key_type, key_bits = key_info(cert)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": f"{cert.serial_number:x}",
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "expired": now > cert.not_valid_after_utc,
        "not_yet_valid": now < cert.not_valid_before_utc,
        "key_type": key_type,
        "key_bits": key_bits,
        "signature_algorithm": signature_algorithm(cert),
        "self_signed": cert.subject == cert.issuer and issued_by(cert, cert),
        "sha256": hashlib.sha256(der).hexdigest(),
    }


def analyze_chain(ders: list[bytes], hostname: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The report fields of a chain (leaf first): the leaf's facts, the chain, the verdicts.

    Raises ValueError when the leaf is not a certificate.
    """
    now = now or dt.datetime.now(dt.UTC)
    try:
        certs = [x509.load_der_x509_certificate(der) for der in ders]
    except x509.InvalidVersion as e:  # not a ValueError, but as malformed as one (a hostile server's)
        raise ValueError(f"certificate version {e.parsed_version} is not an X.509 version") from e
    chain = [summary(c, d, now) for c, d in zip(certs, ders)]
    for i, entry in enumerate(chain):
        # Whether the next certificate the server sent really signed this one.
        entry["signed_by_next"] = issued_by(certs[i], certs[i + 1]) if i + 1 < len(certs) else None
    leaf, facts = certs[0], chain[0]
    return {
        "subject": facts["subject"], "issuer": facts["issuer"], "sans": sans(leaf) or [],
        "not_before": facts["not_before"], "not_after": facts["not_after"],
        "key_type": facts["key_type"], "key_bits": facts["key_bits"],
        "signature_algorithm": facts["signature_algorithm"], "self_signed": facts["self_signed"],
        "expired": facts["expired"], "hostname_mismatch": not matches_host(leaf, hostname),
        "chain": chain,
    }
