"""``tls_checks``: findings from ``ssl_analyzer``'s reports, into ``vulnerabilities``.

A certificate that is expired, not yet valid, self-signed, issued for another name,
on a short key or signed with MD5/SHA-1; a protocol version that is broken or
deprecated (SSLv3, TLS 1.0, TLS 1.1); and cipher suites accepted that are weak (one
finding per port listing them, rated by the worst). Nothing is sent to the target:
this reads ``tls_results`` only. The CVSS v3 base scores are those commonly given to
these findings (e.g. Sweet32's CVE-2016-2183, 7.5); severity follows from the score.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pentora_plugins.kit.findings import add_vulnerabilities, severity_of
from pentora_plugins.kit.quality import ACTIVE, QUALITY
from pentora_plugins.kit.records import TlsReport, Vulnerability
from voluptuous import Optional

from pentora import Module, NodeContext
from pentora.schema import Int

SOURCE = "check:tls"
CERT_REFS = {
    "EXPIRED": ["CWE-298: Improper Validation of Certificate Expiration"],
    "NOT-YET-VALID": ["CWE-298: Improper Validation of Certificate Expiration"],
    "SELF-SIGNED": ["CWE-295: Improper Certificate Validation"],
    "HOSTNAME-MISMATCH": ["CWE-297: Improper Validation of Certificate with Host Mismatch"],
    "WEAK-KEY": ["NIST SP 800-131A Rev. 2: RSA and DSA keys below 2048 bits are disallowed"],
    "WEAK-SIGNATURE": ["CVE-2004-2761 (MD5 collisions)", "SHAttered: SHA-1 collisions (2017)"],
}
PROTOCOL_FINDINGS = {  # version -> (id suffix, CVSS, title, references)
    "SSLv3": ("SSLV3", 7.5, "SSLv3 is offered",
              ["CVE-2014-3566 (POODLE)", "RFC 7568: Deprecating Secure Sockets Layer Version 3.0"]),
    "TLSv1.0": ("TLSV1.0", 6.5, "TLS 1.0 is offered",
                ["RFC 8996: Deprecating TLS 1.0 and TLS 1.1", "CVE-2011-3389 (BEAST)"]),
    "TLSv1.1": ("TLSV1.1", 5.3, "TLS 1.1 is offered", ["RFC 8996: Deprecating TLS 1.0 and TLS 1.1"]),
}
# Worst first: the score of a weak-cipher finding is that of its worst reason.
CIPHER_SCORES = (("NULL", 7.5), ("anonymous", 7.5), ("EXPORT", 7.5), ("3DES", 7.5), ("IDEA", 7.5),
                 ("DES", 5.9), ("RC4", 5.9), ("RC2", 5.9), ("MD5", 5.9), ("POODLE", 5.9))
CIPHER_REFS = ["RFC 7465: Prohibiting RC4 Cipher Suites", "CVE-2016-2183 (Sweet32: 64-bit block ciphers)",
               "CVE-2015-0204 (FREAK: EXPORT RSA)", "CVE-2014-3566 (POODLE: CBC in SSLv3)"]
WEAK_HASHES = ("md5", "sha1", "md2")


class TlsChecks(Module):
    """Misconfiguration findings from the TLS analysis: certificate, protocols, ciphers."""

    module_type = "tls_checks"
    description = ("findings from tls_results: expired, self-signed or mismatched certificate, "
                   "weak protocol or cipher")
    requires = ("tls_results",)
    produces = ("vulnerabilities",)
    config_schema = {
        Optional("min_key_bits", default=2048,
                 description="RSA/DSA keys shorter than this are weak (EC keys: below 224 bits)"):
            Int(min=0),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        found = list(findings(ctx.get("tls_results"), config["min_key_bits"]))
        ctx.log.info(f"tls_checks: {len(found)} findings")
        add_vulnerabilities(ctx, found)


def findings(reports: Iterable[Any], min_key_bits: int = 2048) -> Iterator[Vulnerability]:
    """Every finding of every report (TlsReport records or their dicts)."""
    for item in reports:
        report = item if isinstance(item, TlsReport) else TlsReport(**{
            k: v for k, v in item.items() if k != "kind"})
        # What a failed analysis did learn still counts (an anonymous-only server has
        # protocols and suites but no certificate); missing parts give no finding.
        yield from _certificate(report, min_key_bits)
        yield from _protocols(report)
        yield from _ciphers(report)


def _finding(report: TlsReport, suffix: str, title: str, cvss: float, evidence: str,
             references: list[str]) -> Vulnerability:
    return Vulnerability(host=report.host, port=report.port, id=f"PENTORA-TLS-{suffix}", title=title,
                         severity=severity_of(cvss), cvss=cvss, evidence=evidence,
                         references=list(references), source=SOURCE,
                         method=ACTIVE, quality=QUALITY[ACTIVE])


def _certificate(r: TlsReport, min_key_bits: int) -> Iterator[Vulnerability]:
    if r.subject is None:
        return
    leaf = r.chain[0] if r.chain else {}
    who = f"subject {r.subject}, issuer {r.issuer}"
    if r.expired:
        yield _finding(r, "EXPIRED", "TLS certificate has expired", 5.3,
                       f"not after {r.not_after} ({who})", CERT_REFS["EXPIRED"])
    if leaf.get("not_yet_valid"):
        yield _finding(r, "NOT-YET-VALID", "TLS certificate is not valid yet", 5.3,
                       f"not before {r.not_before} ({who})", CERT_REFS["NOT-YET-VALID"])
    if r.self_signed:
        yield _finding(r, "SELF-SIGNED", "TLS certificate is self-signed", 6.5,
                       f"{who}: issuer is the subject and its own key signed it", CERT_REFS["SELF-SIGNED"])
    if r.hostname_mismatch:
        names = ", ".join(r.sans) or "no subjectAltName"
        yield _finding(r, "HOSTNAME-MISMATCH", "TLS certificate does not name the host", 5.3,
                       f"{r.server_name or r.host} is not among {names} ({who})",
                       CERT_REFS["HOSTNAME-MISMATCH"])
    if _short_key(r.key_type, r.key_bits, min_key_bits):
        yield _finding(r, "WEAK-KEY", "TLS certificate key is too short", 5.3,
                       f"{r.key_type} key of {r.key_bits} bits ({who})", CERT_REFS["WEAK-KEY"])
    algorithm = (r.signature_algorithm or "").lower()
    if not r.self_signed and any(algorithm.startswith(h) for h in WEAK_HASHES):
        yield _finding(r, "WEAK-SIGNATURE", "TLS certificate is signed with a broken hash", 5.3,
                       f"signature algorithm {r.signature_algorithm} ({who})", CERT_REFS["WEAK-SIGNATURE"])


def _short_key(key_type: str | None, bits: int | None, min_bits: int) -> bool:
    if not key_type or bits is None:
        return False
    if key_type.startswith("EC"):
        return bits < 224
    return key_type in ("RSA", "DSA") and bits < min_bits


def _protocols(r: TlsReport) -> Iterator[Vulnerability]:
    for version, (suffix, cvss, title, refs) in PROTOCOL_FINDINGS.items():
        if r.protocols.get(version):
            offered = ", ".join(v for v, on in r.protocols.items() if on)
            yield _finding(r, f"WEAK-PROTOCOL-{suffix}", title, cvss,
                           f"the server accepted a {version} ClientHello (offered: {offered})", refs)


def _ciphers(r: TlsReport) -> Iterator[Vulnerability]:
    weak = [c for c in r.ciphers if c.get("weak")]
    if not weak:
        return
    reasons = " ".join(c.get("reason", "") for c in weak)
    cvss = max((score for word, score in CIPHER_SCORES if word in reasons), default=5.3)
    lines = [f"{c['protocol']} {c['name']} ({c['code']}): {c['reason']}" for c in weak]
    yield _finding(r, "WEAK-CIPHER", f"{len(weak)} weak TLS cipher suite(s) accepted", cvss,
                   "\n".join(lines), CIPHER_REFS)
