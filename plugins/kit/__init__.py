"""The toolkit for module authors: records, inputs, findings, port specs, catalogs, targets,
sharding, distribution builds (``distro``) and their version orders (``distver``), and ``net``
(bounded conversations, TLS, HTTP, raw TCP, rate limits). No hooks.

The records a module reads and emits, and the one helper every check uses to report a
finding, are the kit's public API at its top level::

    from pentora_plugins.kit import Host, Port, Vulnerability, add_vulnerabilities

Everything else is imported from its submodule (``pentora_plugins.kit.inputs``, ``.net``…).
"""

from __future__ import annotations

from pentora_plugins.kit.findings import SEVERITIES, add_vulnerabilities
from pentora_plugins.kit.records import (
    AssetProfile,
    Banner,
    Host,
    HttpResponse,
    InstalledPackages,
    Port,
    Record,
    ServiceFingerprint,
    Target,
    TlsReport,
    Vulnerability,
    WebTechnology,
)

__all__ = [
    "SEVERITIES",
    "AssetProfile",
    "Banner",
    "Host",
    "HttpResponse",
    "InstalledPackages",
    "Port",
    "Record",
    "ServiceFingerprint",
    "Target",
    "TlsReport",
    "Vulnerability",
    "WebTechnology",
    "add_vulnerabilities",
]
