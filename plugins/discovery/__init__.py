"""Host discovery: ``icmp_discovery``, ``tcp_probe_discovery``, ``arp_discovery`` and
``discovery_merger``.

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


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Imported when registering, not when the plugin loads (``pentora --version``).
    from pentora_plugins.discovery.arp_discovery import ArpDiscovery
    from pentora_plugins.discovery.discovery_merger import DiscoveryMerger
    from pentora_plugins.discovery.icmp_discovery import IcmpDiscovery
    from pentora_plugins.discovery.tcp_probe_discovery import TcpProbeDiscovery

    for cls in (IcmpDiscovery, TcpProbeDiscovery, ArpDiscovery, DiscoveryMerger):
        registry.register(cls)
