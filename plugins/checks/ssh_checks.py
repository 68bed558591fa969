"""``ssh_checks``: weak algorithms an SSH server offers, read from its KEXINIT.

For each port fingerprinted as ``ssh``: connect, read the server's identification
string, send ours, and read the server's first binary packet, SSH_MSG_KEXINIT (RFC 4253,
7.1), whose name-lists are every key exchange, host key, cipher, MAC and compression
algorithm it would agree to. Then hang up: no key exchange, no authentication, no
credentials. Weak entries (the ones ssh-audit and the RFC 9142 / RFC 8758 deprecations
name) become one finding per category in ``vulnerabilities``: ``PENTORA-SSH-WEAK-KEX``,
``-WEAK-HOSTKEY``, ``-WEAK-CIPHER``, ``-WEAK-MAC``, and ``PENTORA-SSH-PROTOCOL-1`` for a
server that speaks only SSH 1.
"""

from __future__ import annotations

import fnmatch
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pentora_plugins.kit.findings import add_vulnerabilities, severity_of
from pentora_plugins.kit.inputs import per_item
from pentora_plugins.kit.net.talk import talk
from pentora_plugins.kit.quality import ACTIVE, QUALITY
from pentora_plugins.kit.records import ServiceFingerprint, Vulnerability
from voluptuous import Optional

from pentora import Module, NodeContext
from pentora.schema import Duration

SOURCE = "check:ssh"
CLIENT_ID = b"SSH-2.0-pentora_check\r\n"
KEXINIT = 20
MAX_PACKET = 35000  # RFC 4253, 6.1: the size every implementation must accept
LISTS = ("kex", "hostkey", "ciphers_c2s", "ciphers_s2c", "macs_c2s", "macs_s2c",
         "compression_c2s", "compression_s2c", "languages_c2s", "languages_s2c")

# category -> [(name pattern, CVSS v3 score, why)]; the first matching pattern counts.
WEAK: dict[str, list[tuple[str, float, str]]] = {
    "kex": [
        ("diffie-hellman-group1-sha1", 7.4, "1024-bit Oakley group 2 (Logjam) with SHA-1"),
        ("diffie-hellman-group14-sha1", 5.3, "SHA-1 (RFC 9142: SHOULD NOT)"),
        ("diffie-hellman-group-exchange-sha1", 5.3, "SHA-1, and the group may be 1024-bit"),
        ("rsa1024-sha1", 7.4, "1024-bit RSA key exchange with SHA-1"),
        ("gss-*-sha1-*", 5.3, "SHA-1 (GSS-API key exchange)"),
    ],
    "hostkey": [
        ("ssh-dss*", 5.3, "DSA: 1024-bit keys and SHA-1 signatures"),
        ("ssh-rsa", 3.7, "RSA signatures with SHA-1 (RFC 9142 deprecates ssh-rsa)"),
        ("ssh-rsa-cert-v01@openssh.com", 3.7, "RSA certificate signatures with SHA-1"),
    ],
    "ciphers": [
        ("none", 7.5, "no encryption"),
        ("arcfour*", 5.9, "RC4 (RFC 8758)"),
        ("des-cbc*", 7.5, "DES: 56-bit key"),
        ("3des-cbc", 7.5, "3DES: 64-bit block (Sweet32) and CBC"),
        ("blowfish-cbc", 5.9, "64-bit block (Sweet32) and CBC"),
        ("cast128-cbc", 5.9, "64-bit block (Sweet32) and CBC"),
        ("*-cbc", 3.7, "CBC mode (CVE-2008-5161 plaintext recovery)"),
        ("rijndael-cbc@lysator.liu.se", 3.7, "CBC mode (CVE-2008-5161 plaintext recovery)"),
    ],
    "macs": [
        ("none", 7.5, "no integrity protection"),
        ("hmac-md5*", 5.3, "MD5"),
        ("hmac-sha1-96*", 3.7, "SHA-1 truncated to 96 bits"),
        ("umac-64*", 3.7, "64-bit tag"),
        ("hmac-ripemd160-96*", 3.7, "truncated to 96 bits"),
    ],
}
TITLES = {"kex": ("WEAK-KEX", "SSH server offers weak key exchange algorithms"),
          "hostkey": ("WEAK-HOSTKEY", "SSH server offers weak host key algorithms"),
          "ciphers": ("WEAK-CIPHER", "SSH server offers weak ciphers"),
          "macs": ("WEAK-MAC", "SSH server offers weak MAC algorithms")}
REFERENCES = {
    "kex": ["RFC 9142: Key Exchange Method Updates for SSH", "CVE-2015-4000 (Logjam)"],
    "hostkey": ["RFC 9142: Key Exchange Method Updates for SSH", "RFC 8332: SHA-2 for RSA keys in SSH"],
    "ciphers": ["RFC 8758: Deprecating RC4 in SSH", "CVE-2008-5161 (CBC plaintext recovery)",
                "CVE-2016-2183 (Sweet32)"],
    "macs": ["RFC 6668: SHA-2 data integrity for SSH", "NIST SP 800-107: truncated MACs"],
}


class SshError(ValueError):
    """The server did not say what an SSH server says."""


@dataclass
class ServerAlgorithms:
    """The identification string and KEXINIT name-lists of one SSH server."""

    ident: str
    lists: dict[str, list[str]] = field(default_factory=dict)

    def category(self, name: str) -> list[str]:
        """The algorithms of one category, both directions merged, in the server's order."""
        keys = [name] if name in self.lists else [f"{name}_c2s", f"{name}_s2c"]
        out: list[str] = []
        for key in keys:
            out += [a for a in self.lists.get(key, []) if a not in out]
        return out


class SshChecks(Module):
    """Weak SSH algorithms, from each server's KEXINIT (no authentication)."""

    module_type = "ssh_checks"
    description = "weak SSH key exchange, host key, cipher and MAC algorithms (from the KEXINIT)"
    requires = ("service_fingerprints",)
    produces = ("vulnerabilities",)
    config_schema = {
        Optional("timeout", default="5s", description="connect and read timeout per server"):
            Duration(min=0.001),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        targets = list(_ssh_ports(ctx.get("service_fingerprints")))

        def check(item: tuple[str, int]) -> list[Vulnerability]:
            host, port = item
            try:
                algorithms = read_kexinit(host, port, config["timeout"])
            except (OSError, SshError) as e:
                ctx.log.info(f"ssh_checks: {host}:{port}: no KEXINIT ({e})")
                return []
            return list(findings(host, port, algorithms))

        found = [v for part in per_item(ctx, check, targets, None) for v in part]
        ctx.log.info(f"ssh_checks: {len(found)} findings on {len(targets)} SSH ports")
        add_vulnerabilities(ctx, found)


def _ssh_ports(fingerprints: Iterable[Any]) -> Iterator[tuple[str, int]]:
    seen: set[tuple[str, int]] = set()
    for fp in fingerprints:
        if isinstance(fp, ServiceFingerprint):
            host, port, service = fp.host, fp.port, fp.service
        else:
            host, port, service = fp["host"], int(fp["port"]), fp.get("service")
        if (service or "").lower() == "ssh" and (host, port) not in seen:
            seen.add((host, port))
            yield host, port


# -- the wire ---------------------------------------------------------------------------


def read_kexinit(host: str, port: int, timeout: float) -> ServerAlgorithms:
    """The identification and KEXINIT of the SSH server at host:port."""
    # ``timeout`` bounds each read; twice that the whole talk (a server could drip bytes).
    with talk(host, port, timeout, "no KEXINIT") as sock:
        # The file holds the socket open past sock.close(): it must be closed too.
        with sock.makefile("rb") as stream:
            ident = _identification(stream)
            if ident.startswith("SSH-1.") and not ident.startswith("SSH-1.99"):
                return ServerAlgorithms(ident)  # SSH 1 only: there is no KEXINIT to read
            sock.sendall(CLIENT_ID)
            return ServerAlgorithms(ident, parse_kexinit(_packet(stream)))


def _identification(stream: Any) -> str:
    # RFC 4253, 4.2: the server may send other lines before its "SSH-" line.
    for _ in range(20):
        line = stream.readline(256)
        if not line:
            raise SshError("connection closed before the identification string")
        if line.startswith(b"SSH-"):
            return line.rstrip(b"\r\n").decode("latin-1")
    raise SshError("no SSH- identification line in the first 20 lines")


def _packet(stream: Any) -> bytes:
    """The payload of the next unencrypted binary packet (RFC 4253, 6)."""
    head = stream.read(5)
    if len(head) < 5:
        raise SshError("connection closed before the KEXINIT packet")
    length, padding = struct.unpack("!IB", head)
    if not padding < length <= MAX_PACKET:
        raise SshError(f"implausible packet length {length} (padding {padding})")
    rest = stream.read(length - 1)
    if len(rest) < length - 1:
        raise SshError("connection closed in the middle of the KEXINIT packet")
    return rest[:length - 1 - padding]


def parse_kexinit(payload: bytes) -> dict[str, list[str]]:
    """The ten name-lists of a SSH_MSG_KEXINIT payload, by name (``LISTS``)."""
    if not payload or payload[0] != KEXINIT:
        raise SshError(f"expected SSH_MSG_KEXINIT (20), got message {payload[:1].hex() or 'nothing'}")
    pos, lists = 17, {}  # message number, 16-byte cookie
    for name in LISTS:
        if pos + 4 > len(payload):
            raise SshError(f"KEXINIT truncated before the {name} name-list")
        (size,) = struct.unpack("!I", payload[pos:pos + 4])
        text = payload[pos + 4:pos + 4 + size]
        if len(text) < size:
            raise SshError(f"KEXINIT truncated in the {name} name-list")
        lists[name] = [n for n in text.decode("ascii", "replace").split(",") if n]
        pos += 4 + size
    return lists


# -- the verdicts -----------------------------------------------------------------------


def weak_algorithms(offered: list[str], category: str) -> list[tuple[str, float, str]]:
    """(algorithm, CVSS, why) of each weak algorithm in ``offered``."""
    out = []
    for algorithm in offered:
        for pattern, cvss, why in WEAK[category]:
            if fnmatch.fnmatchcase(algorithm, pattern):
                out.append((algorithm, cvss, why))
                break
    return out


def findings(host: str, port: int, server: ServerAlgorithms) -> Iterator[Vulnerability]:
    if not server.lists:
        yield Vulnerability(host=host, port=port, id="PENTORA-SSH-PROTOCOL-1",
                            title="SSH server speaks only protocol version 1", severity=severity_of(7.5),
                            cvss=7.5, evidence=f"identification: {server.ident}",
                            references=["CVE-2001-0572 (SSH 1 traffic analysis)", "RFC 4253"],
                            source=SOURCE, method=ACTIVE, quality=QUALITY[ACTIVE])
        return
    for category, (suffix, title) in TITLES.items():
        weak = weak_algorithms(server.category(category), category)
        if not weak:
            continue
        cvss = max(score for _, score, _ in weak)
        evidence = "\n".join([f"identification: {server.ident}"] + [f"{a}: {why}" for a, _, why in weak])
        yield Vulnerability(host=host, port=port, id=f"PENTORA-SSH-{suffix}", title=title,
                            severity=severity_of(cvss), cvss=cvss, evidence=evidence,
                            references=list(REFERENCES[category]), source=SOURCE,
                            method=ACTIVE, quality=QUALITY[ACTIVE])
