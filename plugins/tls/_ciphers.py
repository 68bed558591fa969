"""Which protocol versions and cipher suites a TLS server accepts, asked one ClientHello
at a time (``_tlswire``), and which of them are weak (``data/tls_ciphers.csv``).

Suites are enumerated the way sslyze and nmap's ssl-enum-ciphers do it: offer every
suite known for a version, note the one the server picks, offer the rest again, until
the server refuses; that costs one connection per accepted suite plus one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pentora_plugins.tls._wire import SSL3, TLS10, TLS11, TLS12, TLS13, Hello, WireError, ask

PROTOCOLS = (SSL3, TLS10, TLS11, TLS12, TLS13)
WEAK_PROTOCOLS = {SSL3: "SSLv3 is broken (POODLE, RFC 7568)",
                  TLS10: "TLS 1.0 is deprecated (RFC 8996)",
                  TLS11: "TLS 1.1 is deprecated (RFC 8996)"}
# Servers stop answering sensibly long before this; it bounds a misbehaving one.
MAX_SUITES_PER_VERSION = 128


@dataclass(frozen=True)
class Suite:
    code: int
    name: str
    weakness: str  # "" when the suite is not weak in itself

    @property
    def tls13(self) -> bool:
        return "_WITH_" not in self.name

    def reason(self, protocol: str) -> str:
        """Why the suite is weak under ``protocol`` ("" when it is not)."""
        reasons = [self.weakness] if self.weakness else []
        if protocol == SSL3 and "_CBC_" in self.name:
            reasons.append("CBC in SSLv3 (POODLE)")
        return "; ".join(reasons)


class CipherTableError(ValueError):
    pass


@functools.lru_cache(maxsize=1)
def suites() -> dict[int, Suite]:
    """The cipher-suite table shipped in ``data/tls_ciphers.csv``, by IANA code."""
    text = resources.files("pentora_plugins").joinpath("data/tls_ciphers.csv").read_text("utf-8")
    table: dict[int, Suite] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(",", 2)
        try:
            code = int(parts[0], 16)
            table[code] = Suite(code, parts[1], parts[2] if len(parts) > 2 else "")
        except (ValueError, IndexError) as e:
            raise CipherTableError(f"tls_ciphers.csv line {number}: expected 'code,name,reason', "
                                   f"got {line!r}") from e
    return table


def suite_name(code: int) -> str:
    known = suites().get(code)
    return known.name if known else f"0x{code:04X}"


def candidates(protocol: str, authenticated: bool = False) -> list[int]:
    """Every known suite that may be offered with ``protocol``; with ``authenticated``,
    only those where the server sends a certificate (no anonymous, PSK or SRP suites)."""
    return [s.code for s in suites().values() if s.tls13 == (protocol == TLS13)
            and not (authenticated and _unauthenticated(s.name))]


def _unauthenticated(name: str) -> bool:
    return any(kx in name for kx in ("_anon_", "_NULL_WITH_", "TLS_PSK_", "_DHE_PSK_", "_ECDHE_PSK_",
                                     "TLS_SRP_SHA_WITH", "_KRB5_", "_ECCPWD_"))


@dataclass
class Probe:
    """The questions of one analysis, against one port."""

    host: str
    port: int
    server_name: str | None
    timeout: float

    def ask(self, protocol: str, offer: list[int], want_certificates: bool = False) -> Hello:
        return ask(self.host, self.port, protocol, offer, server_name=self.server_name,
                   timeout=self.timeout, want_certificates=want_certificates)

    def protocols(self) -> dict[str, bool]:
        """Each protocol version, SSLv3 to TLS 1.3: does the server accept it?"""
        return {p: self.ask(p, candidates(p)).accepted for p in PROTOCOLS}

    def ciphers(self, protocol: str) -> list[dict[str, Any]]:
        """The suites accepted with ``protocol``, in the order the server picked them."""
        offer = candidates(protocol)
        found: list[dict[str, Any]] = []
        while offer and len(found) < MAX_SUITES_PER_VERSION:
            hello = self.ask(protocol, offer)
            if not hello.accepted or hello.cipher not in offer:
                break  # refused; or a suite never offered, which ends the conversation too
            offer.remove(hello.cipher)
            found.append(describe_suite(hello.cipher, protocol))
        return found


def describe_suite(code: int, protocol: str) -> dict[str, Any]:
    known = suites().get(code)
    reason = known.reason(protocol) if known else ""
    return {"name": suite_name(code), "code": f"0x{code:04X}", "protocol": protocol,
            "weak": bool(reason), "reason": reason}


__all__ = ["PROTOCOLS", "WEAK_PROTOCOLS", "Probe", "Suite", "WireError", "candidates", "suites",
           "suite_name", "describe_suite"]
