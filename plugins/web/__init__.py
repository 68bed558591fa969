"""The web: ``http_scanner``, ``webapp_fingerprinter``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"http_scan": "web", "webapp": "web"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    from pentora_plugins.web.http_scanner import HttpScanner
    from pentora_plugins.web.webapp_fingerprinter import WebappFingerprinter
    for cls in (HttpScanner, WebappFingerprinter):
        registry.register(cls)
