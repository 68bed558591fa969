"""Port scanning: ``connect_scanner``, ``syn_scanner`` (also as ``port_scanner``),
``udp_scanner``; ``-p``/``--ports``, ``-sS``, ``-sT``, ``-sU``, ``--top-ports`` and ``-F`` on
``pentora scan``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"connect_scan": "portscan", "syn_scan": "portscan", "udp_scan": "portscan"}
# -p no:portscan would leave no scanner at all: what turning one scanner off meant.
pentora_former_hints = {
    "syn_scan": "-p no:portscan turns off every port scanner; for a connect scan instead of "
                "a SYN scan use -sT, for no port scan -sn",
    "connect_scan": "-p no:portscan turns off every port scanner; for a SYN scan use -sS, "
                    "for no port scan -sn",
    "udp_scan": "-p no:portscan turns off every port scanner; UDP is scanned only with -sU",
}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Named, not imported: a module type's code is imported when a scan first uses it.
    registry.register("pentora_plugins.portscan.connect_scanner:ConnectScanner", name="connect_scanner")
    registry.register("pentora_plugins.portscan.port_scanner:PortScanner", name="port_scanner")
    registry.register("pentora_plugins.portscan.syn_scanner:SynScanner", name="syn_scanner")
    registry.register("pentora_plugins.portscan.udp_scanner:UdpScanner", name="udp_scanner")


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    scan = subparsers.choices.get("scan")
    if scan is not None:
        from pentora_plugins.portscan._cli import add_options
        add_options(scan)


@hookimpl
def pentora_cli_scan_profile(args: Any) -> tuple[str, list[str]] | None:
    from pentora_plugins.portscan._cli import scan_profile
    return scan_profile(args)


@hookimpl
def pentora_cli_scan_vars(args: Any, dag: Any, resuming: bool) -> dict[str, Any] | None:
    from pentora_plugins.portscan._cli import scan_vars
    return scan_vars(args, dag, resuming)
