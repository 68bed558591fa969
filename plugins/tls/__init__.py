"""TLS: ``ssl_analyzer``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"ssl_analyzer": "tls"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    from pentora_plugins.tls.ssl_analyzer import SslAnalyzer
    for cls in (SslAnalyzer,):
        registry.register(cls)
