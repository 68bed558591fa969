"""``arp_discovery``: ARP who-has on the local link, recording each answering host's MAC.

Privileged (a raw ``AF_PACKET`` socket per interface). scapy finds the interface and
source address from the routing table and builds one request frame per interface; each
request is that template with the target address patched in, and replies are parsed with
``struct``, so a large subnet costs no scapy object per host. Only IPv4 targets on a
directly connected Ethernet link are probed; the rest are skipped with a warning.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from time import monotonic
from typing import Any

import voluptuous as vol
from gevent import socket as gsocket
from pentora_plugins.discovery._common import DiscoveryModule, discovery_schema, latency_ms
from pentora_plugins.discovery._sweep import Answer, Probe, Sweep

from pentora import ModuleError, NodeContext

ETH_P_ARP = 0x0806
ARPHRD_ETHER = 1
PACKET_OUTGOING = 4
FRAME_LEN = 60  # the Ethernet minimum; requests are padded to it
_TPA = slice(38, 42)  # target protocol address inside an Ethernet + ARP frame
PRIVILEGE_HELP = ("arp_discovery needs root or CAP_NET_RAW to open a raw packet socket "
                  "(run as root, or use icmp_discovery / tcp_probe_discovery)")


def _scapy() -> Any:
    """scapy's routing table, imported on first use (it is slow to import and chatty)."""
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    import scapy.route  # noqa: F401 - fills conf.route
    from scapy.config import conf

    conf.route.resync()  # the table of this network namespace, now
    return conf


def link_type(iface: str) -> int | None:
    try:
        with open(f"/sys/class/net/{iface}/type") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class ArpLink:
    """A raw socket on one interface and the request frame it sends."""

    def __init__(self, iface: str, source: str) -> None:
        from scapy.arch import get_if_hwaddr
        from scapy.layers.l2 import ARP, Ether

        self.iface = iface
        mac = get_if_hwaddr(iface)
        frame = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=mac)
                      / ARP(op=1, hwsrc=mac, psrc=source, pdst="0.0.0.0"))
        self.template = bytearray(frame.ljust(FRAME_LEN, b"\0"))
        self.sock = gsocket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        self.sock.bind((iface, ETH_P_ARP))

    def send(self, address: str) -> None:
        self.template[_TPA] = socket.inet_aton(address)
        self.sock.send(bytes(self.template))

    def receive(self) -> tuple[str, str] | None:
        """(sender address, sender MAC) of the next ARP reply; None for anything else."""
        frame, peer = self.sock.recvfrom(2048)
        if peer[2] == PACKET_OUTGOING or len(frame) < 42 or frame[12:14] != b"\x08\x06":
            return None
        if frame[20:22] != b"\x00\x02":  # op: is-at
            return None
        return socket.inet_ntoa(frame[28:32]), frame[22:28].hex(":")

    def close(self) -> None:
        self.sock.close()


def check_privilege(node: str) -> None:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except PermissionError as e:
        raise ModuleError(PRIVILEGE_HELP, node=node) from e


class ArpTransport:
    """ARP requests over one packet socket per interface in use."""

    method = "arp"

    def __init__(self, interface: str | None, node: str, log: Any) -> None:
        check_privilege(node)
        self.interface = interface
        self.log = log
        self.conf = _scapy()
        if interface is not None:
            names = [name for _, name in socket.if_nameindex()]
            if interface not in names:
                raise ModuleError(f"no interface '{interface}' here (interfaces: "
                                  f"{', '.join(names)})", node=node)
            if link_type(interface) != ARPHRD_ETHER:
                raise ModuleError(f"interface '{interface}' is not an Ethernet link: ARP "
                                  "cannot run on it", node=node)
        self.links: dict[str, ArpLink] = {}
        self._sweep: Sweep | None = None

    def skip_reason(self, address: str, family: int) -> str | None:
        if family != 4:
            return "ARP is IPv4 only (use icmp_discovery for IPv6)"
        if ipaddress.IPv4Address(address).is_multicast:
            return "multicast address"
        route = self._route(address)
        if route is None:
            return "not on a directly connected Ethernet link" + (
                f" of interface {self.interface}" if self.interface else "")
        if address == route[1]:
            return "an address of this host"
        return None

    def _route(self, address: str) -> tuple[str, str] | None:
        """(interface, source address) when ``address`` is on a local Ethernet link."""
        if self.interface is None:
            iface, source, gateway = self.conf.route.route(address)
        else:
            key, best = int(ipaddress.IPv4Address(address)), None
            for net, mask, gw, name, src, _ in self.conf.route.routes:
                if name == self.interface and gw == "0.0.0.0" and key & mask == net:
                    if best is None or mask > best[0]:
                        best = (mask, src)
            if best is None:
                return None
            iface, source, gateway = self.interface, best[1], "0.0.0.0"
        if gateway != "0.0.0.0" or source == "0.0.0.0" or link_type(iface) != ARPHRD_ETHER:
            return None
        return iface, source

    def send(self, probe: Probe, sweep: Sweep) -> None:
        if probe.state is None:
            route = self._route(probe.address)
            if route is None:  # the routing table changed under the sweep
                raise OSError(errno.ENETUNREACH, "no longer on a local link")
            probe.state = route[0]
            if route[0] not in self.links:
                self.links[route[0]] = link = ArpLink(*route)
                self.log.debug("ARP on {} from {}", route[0], route[1])
                sweep.spawn(self._receive, link, sweep)
        self.links[probe.state].send(probe.address)

    def _receive(self, link: ArpLink, sweep: Sweep) -> None:
        while True:
            reply = link.receive()
            received_at = monotonic()
            if reply is None:
                continue
            probe = sweep.pending.get(reply[0])
            if probe is not None and probe.state == link.iface:
                sweep.answer(probe, Answer("arp-response", latency_ms(probe.sent_at, received_at),
                                           mac=reply[1]))

    def discard(self, probe: Probe) -> None:
        probe.state = None

    def close(self) -> None:
        for link in self.links.values():
            link.close()
        self.links.clear()


class ArpDiscovery(DiscoveryModule):
    """Hosts on the local link that answer ARP who-has, with their MAC addresses."""

    module_type = "arp_discovery"
    description = "ARP sweep of the local link (needs root or CAP_NET_RAW); records MACs"
    method = "arp"
    config_schema = {
        **discovery_schema(),
        vol.Optional("interface", default=None,
                     description="interface to send on (default: each target's route)"):
            vol.Any(None, vol.All(str, vol.Length(min=1))),
    }

    def transport(self, ctx: NodeContext, config: dict[str, Any]) -> ArpTransport:
        return ArpTransport(config["interface"], ctx.node_id, ctx.log)
