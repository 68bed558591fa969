"""Fuzz target: everything pentora does with the bytes a service sends.

One input is one answer from a port. It goes through the probe catalog (recognise,
greeting, follow-ups and the payloads they build from it, the telnet refusal), through
every fingerprint rule as the banner of a probe, through the certificate reader of the
TLS summary, through http_scanner's reply reader and the facts it draws from a reply, and
through ssl_analyzer's ServerHello and Certificate readers and chain analysis, and
through ssh_checks' identification, packet and KEXINIT readers and service_checks' FTP
reply reader. Allowed outcomes: a result, or each reader's documented error
(``ValueError``/``IndexError`` of the DER walker, ``HttpError``, ``WireError``,
``ValueError`` of ``analyze_chain``, ``SshError``), which its caller catches; anything else
is a crash.

    .venv/bin/python tests/fuzz/fuzz_banner.py -max_total_time=60 /tmp/banner-corpus tests/fuzz/corpus/banner

(see tests/fuzz/README.md).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests` importable when run as a script

from pentora_plugins.checks import service_checks as checks_services  # noqa: E402
from pentora_plugins.checks import ssh_checks as checks_ssh  # noqa: E402
from pentora_plugins.kit.catalog import load_catalog  # noqa: E402
from pentora_plugins.kit.net import http as _http  # noqa: E402
from pentora_plugins.kit.net import http_facts as _http_facts  # noqa: E402
from pentora_plugins.kit.net.tls import certificate_fields  # noqa: E402
from pentora_plugins.kit.probes import builtin_catalog, telnet_refuse  # noqa: E402
from pentora_plugins.kit.records import Banner  # noqa: E402
from pentora_plugins.services.fingerprint_parser import fingerprint_banners  # noqa: E402
from pentora_plugins.tls import _wire as _tlswire  # noqa: E402
from pentora_plugins.tls._cert import analyze_chain  # noqa: E402

PROBES = ("passive", "http_get", "tls_client_hello", "redis_info", "pg_sslrequest", "mongodb_buildinfo",
          "smb_negotiate", "rdp_negotiation", "vnc_security", "tls_handshake")
RULES = load_catalog()
CATALOG = builtin_catalog()


class Peer:
    """A socket whose peer sends ``data`` in pieces of ``step`` bytes, then hangs up."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def recv(self, size: int) -> bytes:
        chunk, self.data = self.data[:min(size, self.step)], self.data[min(size, self.step):]
        return chunk


def http_reply(data: bytes) -> None:
    step = 1 + (data[-1] if data else 0) * 64
    try:
        reply = _http.read_reply(_http._Reader(Peer(data, step)), "GET", 4096)
    except _http.HttpError:
        return
    assert len(reply.body) <= 4096
    text = _http_facts.body_text(reply.body, reply.header("content-type"))
    _http_facts.title_of(text)
    _http_facts.parse_cookies(reply.all("set-cookie"))
    _http_facts.allowed_methods(reply.header("allow"))
    _http_facts.security_headers(reply.header_dict(), tls=False)
    _http_facts.favicon_hash(reply.body)


def tls_records(data: bytes) -> None:
    try:
        _tlswire.parse_server_hello(data)
    except _tlswire.WireError:
        pass
    for chain in (_tlswire.parse_certificates(data), [data]):
        try:
            analyze_chain([der for der in chain if der] or [data], "127.0.0.1")
        except ValueError:
            pass


def ssh_and_ftp(data: bytes) -> None:
    stream = io.BytesIO(data)
    try:
        checks_ssh._identification(stream)
        checks_ssh.parse_kexinit(checks_ssh._packet(stream))
    except checks_ssh.SshError:
        pass
    try:
        checks_ssh.parse_kexinit(data)
    except checks_ssh.SshError:
        pass
    checks_services.ftp_reply(data)


def test_one_input(data: bytes) -> None:
    """The fuzz target: raises only on a bug."""
    http_reply(data)
    tls_records(data)
    ssh_and_ftp(data)
    CATALOG.recognise(data)
    CATALOG.greeting(data)
    for probe in CATALOG.followups(data):
        assert isinstance(probe.build(data), bytes)
    telnet_refuse(data)
    text = data.decode("latin-1")
    probe = PROBES[data[0] % len(PROBES)] if data else "passive"
    banners = [Banner(host="127.0.0.1", port=1, protocol="tcp", tls=bool(data[:1] == b"\x16"),
                      probe=probe, data=text)]
    for found in fingerprint_banners(RULES, banners):
        assert isinstance(found.service, str)
    try:
        certificate_fields(data)
    except (ValueError, IndexError):
        pass


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
