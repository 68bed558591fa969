"""Host discovery: ``icmp_discovery``, ``tcp_probe_discovery``, ``arp_discovery`` and
``discovery_merger``; ``-Pn`` and ``-sn`` on ``pentora scan``.

Each discovery module reads ``targets`` lazily (config ``input``), emits every live host
as it answers and writes a sorted list of ``Host`` records under config ``output``
(default ``discovered_hosts``), so that several methods can run side by side::

    - {instance_id: icmp, module_type: icmp_discovery, config: {output: icmp_hosts}}
    - {instance_id: arp, module_type: arp_discovery, config: {output: arp_hosts}}
    - {instance_id: hosts, module_type: discovery_merger, depends_on: [icmp, arp],
       config: {inputs: [icmp_hosts, arp_hosts]}}
"""

from __future__ import annotations

from typing import Any

from pentora import hookimpl
from pentora.cli import EXIT_USAGE, CliError


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Named, not imported: a module type's code is imported when a scan first uses it.
    registry.register("pentora_plugins.discovery.arp_discovery:ArpDiscovery", name="arp_discovery")
    registry.register("pentora_plugins.discovery.discovery_merger:DiscoveryMerger", name="discovery_merger")
    registry.register("pentora_plugins.discovery.icmp_discovery:IcmpDiscovery", name="icmp_discovery")
    registry.register("pentora_plugins.discovery.tcp_probe_discovery:TcpProbeDiscovery",
                      name="tcp_probe_discovery")


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    scan = subparsers.choices.get("scan")
    if scan is None:
        return
    g = scan.add_argument_group("host discovery (nmap-compatible)")
    g.add_argument("-Pn", dest="assume_up", action="store_true",
                   help="no host discovery: take every target as up and scan it")
    g.add_argument("-sn", dest="discovery_only", action="store_true",
                   help="host discovery only, no port scan (the discovery-only profile)")


@hookimpl
def pentora_cli_scan_profile(args: Any) -> tuple[str, list[str]] | None:
    if not getattr(args, "discovery_only", False):
        return None
    return "-sn", ["discovery-only"]


@hookimpl
def pentora_cli_scan_vars(args: Any, dag: Any, resuming: bool) -> dict[str, Any] | None:
    if not getattr(args, "assume_up", False):
        return None
    if not resuming and "assume_up" not in dag.vars:
        raise CliError(f"DAG '{dag.name}' declares no 'assume_up' var, so -Pn cannot reach it; "
                       "include the discovery fragment (fragments/discovery.yaml) or run a "
                       "profile that does (port-scan, service-scan, standard, vuln-scan)", EXIT_USAGE)
    return {"assume_up": True}
