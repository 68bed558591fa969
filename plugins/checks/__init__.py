"""Misconfiguration checks: ``http_checks``, ``service_checks``, ``ssh_checks``, ``tls_checks``.

Each finding is what the check saw the target do (a login accepted, an algorithm or a
TLS version offered, a header missing from the answer), not a flaw inferred from a
version string: method ``active``, quality 95 (``kit.quality``). ``ssh_checks``'
``PENTORA-SSH-PROTOCOL-1`` reads the protocol version of the SSH identification line, which
is the protocol the server will speak (RFC 4253, 5), not the version of its software.
"""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"checks_http": "checks", "checks_services": "checks", "checks_ssh": "checks",
                        "checks_tls": "checks"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    from pentora_plugins.checks.http_checks import HttpChecks
    from pentora_plugins.checks.service_checks import ServiceChecks
    from pentora_plugins.checks.ssh_checks import SshChecks
    from pentora_plugins.checks.tls_checks import TlsChecks
    for cls in (HttpChecks, ServiceChecks, SshChecks, TlsChecks):
        registry.register(cls)
