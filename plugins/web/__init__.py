"""The web: ``http_scanner``, ``webapp_fingerprinter``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"http_scan": "web", "webapp": "web"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Named, not imported: a module type's code is imported when a scan first uses it.
    registry.register("pentora_plugins.web.http_scanner:HttpScanner", name="http_scanner")
    registry.register("pentora_plugins.web.webapp_fingerprinter:WebappFingerprinter",
                      name="webapp_fingerprinter")
