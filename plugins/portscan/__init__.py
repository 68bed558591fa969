"""Port scanning: ``connect_scanner``, ``syn_scanner`` (also as ``port_scanner``),
``udp_scanner``; ``-p``/``--ports`` on ``pentora scan``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl
from pentora.cli import CliError

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"connect_scan": "portscan", "syn_scan": "portscan", "udp_scan": "portscan"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    from pentora_plugins.portscan.connect_scanner import ConnectScanner
    from pentora_plugins.portscan.port_scanner import PortScanner
    from pentora_plugins.portscan.syn_scanner import SynScanner
    from pentora_plugins.portscan.udp_scanner import UdpScanner
    for cls in (ConnectScanner, PortScanner, SynScanner, UdpScanner):
        registry.register(cls)


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    scan = subparsers.choices.get("scan")
    if scan is not None:
        scan.add_argument("--ports", dest="ports", metavar="PORTS",
                          help="ports to scan: 1-1000, 22,80, -, top-100 (-p PORTS is the same)")


@hookimpl
def pentora_cli_scan_vars(args: Any, dag: Any, resuming: bool) -> dict[str, Any] | None:
    ports = getattr(args, "ports", None)
    if args.p_values:  # -p PORTS, nmap's spelling: the last one given wins
        ports = args.p_values[-1]
        args.p_values.clear()
    if ports is None:
        return None
    if not resuming and "ports" not in dag.vars:
        raise CliError(f"DAG '{dag.name}' declares no 'ports' var, so -p/--ports cannot reach it")
    return {"ports": ports}
