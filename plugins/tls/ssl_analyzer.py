"""``ssl_analyzer``: the certificate chain, protocol versions and cipher suites of TLS ports.

Input: ``service_fingerprints``; the ports that speak TLS (``tls`` true, a TLS service name
such as https or imaps, or a TLS banner in ``banners`` when that key is there), or with
``ports: all`` every fingerprinted port (those that do not answer TLS are left out).
Without fingerprints upstream, the open TCP ports of ``open_ports`` are analysed (443 and
8443 must speak TLS; 80 and 8080 are left out, but with ``ports: all``; any other port
is tried), or, without a port scan either, ports 443 and 8443 of each live host of
``discovered_hosts`` (those that do not answer TLS are left out).
Host names (for SNI and the hostname check) come from ``server_name``, else from
``discovered_hosts``; without one the certificate is checked against the IP address, as
a client that was given the address would.

``check_cert`` reads the chain from the server's Certificate message (TLS <= 1.2, so the
whole chain as sent; a TLS 1.3-only server gives its leaf through OpenSSL) and reports
subject, issuer, SANs, validity, key, signature algorithm, self-signed, expired and
hostname mismatch. ``check_ciphers`` asks each protocol version, SSLv3 to TLS 1.3, with
a ClientHello of its own (``_tlswire``: the local OpenSSL refuses SSLv3 and the weak
suites) and enumerates the suites accepted, each weak one with its reason.

Output: ``tls_results``, a ``TlsReport`` per port, each emitted as soon as it is done.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import voluptuous as vol
from gevent import socket
from pentora_plugins.kit.inputs import UNFINGERPRINTED, hostnames, per_item, publish, unfingerprinted_ports
from pentora_plugins.kit.net.talk import talk
from pentora_plugins.kit.net.tls import client_context
from pentora_plugins.kit.records import ServiceFingerprint, TlsReport
from pentora_plugins.tls._cert import analyze_chain
from pentora_plugins.tls._ciphers import PROTOCOLS, Probe, candidates
from pentora_plugins.tls._wire import TLS12, WireError
from voluptuous import Optional

from pentora import Module, NodeContext
from pentora.schema import Bool, Duration, Nullable, Str

TLS_SERVICES = {"https", "https-alt", "imaps", "pop3s", "smtps", "submissions", "ldaps", "ftps",
                "ircs", "nntps", "ssl", "tls", "domain-s", "xmpps", "mqtts", "amqps", "rdp-tls"}


class SslAnalyzer(Module):
    """Certificate chain, protocol versions and cipher suites of each TLS port."""

    module_type = "ssl_analyzer"
    description = "TLS certificate chain, protocol versions (SSLv3-TLS 1.3) and accepted cipher suites"
    requires = ("|".join(("service_fingerprints", *UNFINGERPRINTED)),)
    produces = ("tls_results",)
    config_schema = {
        Optional("check_cert", default=True,
                 description="read and judge the certificate chain (expiry, self-signed, hostname)"):
            Bool(),
        Optional("check_ciphers", default=False,
                 description="ask each protocol version and enumerate the accepted cipher suites"):
            Bool(),
        Optional("timeout", default="5s", description="connect and answer timeout of each handshake"):
            Duration(min=0.001),
        Optional("server_name", default=None,
                 description="name sent as SNI and checked against the certificate (default: host's)"):
            Nullable(Str()),
        Optional("ports", default="tls",
                 description="tls: ports fingerprinted as TLS; all: every fingerprinted port"):
            vol.In(("tls", "all")),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        names = hostnames(ctx)
        every = config["ports"] == "all"
        if ctx.has("service_fingerprints"):
            items = list(_select(ctx.get("service_fingerprints"), every,
                                 _tls_banner_ports(ctx.get("banners", None) or [])))
        else:
            source, unfingerprinted = unfingerprinted_ports(ctx)
            # a port only guessed from a live host must prove it speaks TLS to be reported
            sure = source == "open_ports"
            items = [(h, p, bool(tls) and sure) for h, p, tls in unfingerprinted
                     if tls is not False or every]

        def analyze(item: tuple[str, int, bool]) -> TlsReport | None:
            host, port, known_tls = item
            name = config["server_name"] or names.get(host)
            report = analyze_port(host, port, name, config, must_be_tls=known_tls)
            if report is not None:
                ctx.emit(report)
            return report

        found = [r for r in per_item(ctx, analyze, items, None) if r is not None]
        ctx.log.info(f"ssl_analyzer: {len(found)} TLS ports of {len(items)} analysed")
        publish(ctx, "tls_results", found)


def _tls_banner_ports(banners: Iterable[Any]) -> set[tuple[str, int]]:
    """(host, port) of each port a banner was read through TLS from.

    A fingerprint may have matched the port's plain answer (nginx's "plain HTTP request
    was sent to HTTPS port") and say ``tls: false``; the banners know better.
    """
    out: set[tuple[str, int]] = set()
    for b in banners:
        fields = b if isinstance(b, dict) else vars(b)
        if fields.get("tls") or fields.get("probe") == "tls_handshake":
            out.add((str(fields["host"]), int(fields["port"])))
    return out


def _select(fingerprints: Iterable[Any], every: bool,
            tls_ports: set[tuple[str, int]]) -> Iterator[tuple[str, int, bool]]:
    """(host, port, known to be TLS) of each port to analyse, once each, in input order."""
    seen: set[tuple[str, int]] = set()
    for fp in fingerprints:
        if isinstance(fp, ServiceFingerprint):
            host, port, service, tls, proto = fp.host, fp.port, fp.service, fp.tls, fp.protocol
        else:
            host, port = fp["host"], int(fp["port"])
            service, tls, proto = fp.get("service", ""), fp.get("tls", False), fp.get("protocol", "tcp")
        service = (service or "").lower()
        is_tls = (bool(tls) or (host, port) in tls_ports or service in TLS_SERVICES
                  or service.startswith(("ssl/", "tls/")))
        if proto != "tcp" or (host, port) in seen or not (is_tls or every):
            continue
        seen.add((host, port))
        yield host, port, is_tls


def analyze_port(host: str, port: int, server_name: str | None, config: dict[str, Any],
                 must_be_tls: bool = True) -> TlsReport | None:
    """The report of one port; None when it does not speak TLS and was not expected to."""
    probe = Probe(host, port, server_name, config["timeout"])
    report = TlsReport(host=host, port=port, server_name=server_name)
    try:
        # Suites with a certificate only: a server that prefers an anonymous one would send none.
        first = probe.ask(TLS12, candidates(TLS12, authenticated=True),
                          want_certificates=config["check_cert"])
        ders = first.certificates
        if first.version is None:  # no TLS <= 1.2 here: TLS 1.3 only, or no TLS at all
            leaf = _openssl_leaf(probe)
            if leaf is None:
                if not must_be_tls:
                    return None
                report.error = f"no TLS handshake ({first.alert})"
                return report
            ders = [leaf]
        if config["check_ciphers"]:
            report.protocols = probe.protocols()
            report.ciphers = [c for p in PROTOCOLS if report.protocols[p] for c in probe.ciphers(p)]
        if config["check_cert"]:
            _certificate(report, probe, ders, server_name or host)
    except (OSError, WireError) as e:
        if not must_be_tls:
            return None
        report.error = _describe(e)
    return report


def _certificate(report: TlsReport, probe: Probe, ders: list[bytes], name: str) -> None:
    if not ders:
        ders = [d for d in [_openssl_leaf(probe)] if d]  # e.g. TLS 1.3 only: the leaf, via OpenSSL
    if not ders:
        report.error = "the server sent no certificate (anonymous suites only?)"
        return
    try:
        facts = analyze_chain(ders, name)
    except ValueError as e:
        report.error = f"unreadable certificate: {e}"
        return
    for key, value in facts.items():
        setattr(report, key, value)


def _openssl_leaf(probe: Probe) -> bytes | None:
    """The leaf certificate through the local OpenSSL (it speaks TLS 1.3, the wire code does
    not get past the encrypted part of that handshake); None when there is no handshake."""
    try:
        with talk(probe.host, probe.port, probe.timeout, "no handshake") as sock, \
                client_context().wrap_socket(sock, server_hostname=probe.server_name or None) as tls:
            return tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None


def _describe(error: Exception) -> str:
    if isinstance(error, WireError):
        return f"not TLS: {error}"
    if isinstance(error, socket.timeout):
        return "timed out"
    return f"connection failed: {error.strerror or error}" if isinstance(error, OSError) else str(error)



__all__ = ["SslAnalyzer", "analyze_port"]
