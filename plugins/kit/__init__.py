"""The toolkit for module authors: records, inputs, findings, port specs, catalogs, targets,
sharding, distribution builds (``distro``) and their version orders (``distver``), and ``net``
(bounded conversations, TLS, HTTP, raw TCP, rate limits). No hooks.

The records a module reads and emits, and the one helper every check uses to report a
finding, are the kit's public API at its top level::

    from pentora_plugins.kit import Host, Port, Vulnerability, add_vulnerabilities

Everything else is imported from its submodule (``pentora_plugins.kit.inputs``, ``.net``…).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Imported on first use (PEP 562): every ``pentora_plugins.kit.X`` import runs this file
# first, and the areas' command-line code (which ``pentora --help`` imports) uses the kit's
# port and target specs, not its records.
_FROM = {"SEVERITIES": "findings", "add_vulnerabilities": "findings"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_FROM.get(name, 'records')}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
