"""Services: ``banner_grabber``, ``fingerprint_parser``, ``asset_profiler``; ``-sV`` on
``pentora scan``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl
from pentora.cli import EXIT_USAGE, CliError

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"banners": "services", "fingerprint": "services", "assets": "services"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Named, not imported: a module type's code is imported when a scan first uses it.
    registry.register("pentora_plugins.services.asset_profiler:AssetProfiler", name="asset_profiler")
    registry.register("pentora_plugins.services.banner_grabber:BannerGrabber", name="banner_grabber")
    registry.register("pentora_plugins.services.fingerprint_parser:FingerprintParser",
                      name="fingerprint_parser")


# The profiles that grab banners and name services, most specific first.
SERVICE_PROFILES = ["service-scan", "standard", "vuln-scan", "web-scan"]


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    scan = subparsers.choices.get("scan")
    if scan is not None:
        scan.add_argument("-sV", dest="service_version", action="store_true",
                          help="service and version detection: banners and fingerprints (the "
                               "service-scan profile unless --profile names another that has them)")


@hookimpl
def pentora_cli_scan_profile(args: Any) -> tuple[str, list[str]] | None:
    return ("-sV", SERVICE_PROFILES) if getattr(args, "service_version", False) else None


@hookimpl
def pentora_cli_scan_vars(args: Any, dag: Any, resuming: bool) -> dict[str, Any] | None:
    if getattr(args, "service_version", False) and not resuming and getattr(args, "dag", None):
        # A custom DAG: -sV can only say whether it detects services, not add the nodes.
        if not any(node.module_type == "fingerprint_parser" for node in dag.nodes):
            raise CliError(f"-sV: DAG '{dag.name}' has no fingerprint_parser node, so it detects "
                           f"no services; add one, or drop --dag for a profile "
                           f"({', '.join(SERVICE_PROFILES)})", EXIT_USAGE)
    return None
