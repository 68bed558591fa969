"""Services: ``banner_grabber``, ``fingerprint_parser``, ``asset_profiler``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"banners": "services", "fingerprint": "services", "assets": "services"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    from pentora_plugins.services.asset_profiler import AssetProfiler
    from pentora_plugins.services.banner_grabber import BannerGrabber
    from pentora_plugins.services.fingerprint_parser import FingerprintParser
    for cls in (BannerGrabber, FingerprintParser, AssetProfiler):
        registry.register(cls)
