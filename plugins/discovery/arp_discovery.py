"""``arp_discovery``: ARP who-has (IPv4) and neighbour solicitation (IPv6) on the local
link, recording each answering host's MAC.

Privileged (a raw ``AF_PACKET`` socket per interface and family). scapy finds the
interface and source address from the routing table. For ARP it builds one request frame
per interface; each request is that template with the target address patched in, and
replies are parsed by offset, so a large subnet costs no scapy object per host. For IPv6
scapy builds each Neighbor Solicitation (to the target's solicited-node multicast
address) and parses each Neighbor Advertisement: an on-link IPv6 prefix holds few hosts
worth probing, and the checksum covers the target address. Only targets on a directly
connected Ethernet link are probed; the rest are skipped with a warning.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from time import monotonic
from typing import Any

import voluptuous as vol
from gevent import socket as gsocket
from pentora_plugins.discovery._common import DiscoveryModule, discovery_schema, latency_ms
from pentora_plugins.discovery._sweep import Answer, Probe, Sweep
from pentora_plugins.kit.inputs import publish

from pentora import ModuleError, NodeContext
from pentora.schema import Nullable, PositiveInt

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARPHRD_ETHER = 1
PACKET_OUTGOING = 4
FRAME_LEN = 60  # the Ethernet minimum; requests are padded to it
_TPA = slice(38, 42)  # target protocol address inside an Ethernet + ARP frame
ICMPV6_NA = 136
LINK_WINDOW = 4096  # hosts in flight by default: a /20; more than the default rate fills
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
PRIVILEGE_HELP = ("arp_discovery needs root or CAP_NET_RAW to open a raw packet socket "
                  "(run as root, or use icmp_discovery / tcp_probe_discovery)")


def _scapy() -> Any:
    """scapy's routing table, imported on first use (it is slow to import and chatty)."""
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    import scapy.route  # noqa: F401 - fills conf.route
    import scapy.route6  # noqa: F401 - fills conf.route6
    from scapy.config import conf

    conf.route.resync()  # the tables of this network namespace, now
    conf.route6.resync()
    return conf


def link_type(iface: str) -> int | None:
    try:
        with open(f"/sys/class/net/{iface}/type") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class PacketLink:
    """A raw packet socket on one interface for one EtherType, and the interface's MAC."""

    def __init__(self, iface: str, ethertype: int) -> None:
        from scapy.arch import get_if_hwaddr

        self.iface = iface
        self.mac = get_if_hwaddr(iface)
        self.sock = gsocket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
        self.sock.bind((iface, ethertype))

    def send(self, address: str) -> None:
        raise NotImplementedError

    def receive(self) -> tuple[str, str] | None:
        """(address, MAC) of the next answer; None for any other frame."""
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


class ArpLink(PacketLink):
    """ARP who-has out, is-at in: each request is one template frame with the target
    address patched in."""

    def __init__(self, iface: str, source: str) -> None:
        from scapy.layers.l2 import ARP, Ether

        super().__init__(iface, ETH_P_ARP)
        frame = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=self.mac)
                      / ARP(op=1, hwsrc=self.mac, psrc=source, pdst="0.0.0.0"))
        self.template = bytearray(frame.ljust(FRAME_LEN, b"\0"))

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


class NdLink(PacketLink):
    """Neighbor Solicitations out, Neighbor Advertisements in, on one interface."""

    def __init__(self, iface: str, source: str) -> None:
        super().__init__(iface, ETH_P_IPV6)
        self.source = source

    def send(self, address: str) -> None:
        from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
        from scapy.layers.l2 import Ether
        from scapy.utils6 import in6_getnsma, in6_getnsmac

        group = in6_getnsma(socket.inet_pton(socket.AF_INET6, address))
        # hop limit 255: a receiver drops neighbour discovery that crossed a router (RFC 4861)
        frame = (Ether(dst=in6_getnsmac(group), src=self.mac)
                 / IPv6(src=self.source, dst=socket.inet_ntop(socket.AF_INET6, group), hlim=255)
                 / ICMPv6ND_NS(tgt=address) / ICMPv6NDOptSrcLLAddr(lladdr=self.mac))
        self.sock.send(bytes(frame))

    def receive(self) -> tuple[str, str] | None:
        """(target address, its MAC) of the next Neighbor Advertisement; None for anything
        else. The MAC is the advertisement's target link-layer address option, else the
        frame's source."""
        frame, peer = self.sock.recvfrom(2048)
        # Every IPv6 frame of the link arrives here: look at the ICMPv6 type before scapy
        # (an advertisement without extension headers, as RFC 4861 senders send it).
        if peer[2] == PACKET_OUTGOING or len(frame) < 78 or frame[20] != 58 or frame[54] != ICMPV6_NA:
            return None
        from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr
        from scapy.layers.l2 import Ether

        packet = Ether(frame)
        if ICMPv6ND_NA not in packet or packet[ICMPv6ND_NA].code != 0:
            return None
        option = packet.getlayer(ICMPv6NDOptDstLLAddr)
        mac = option.lladdr if option is not None else packet[Ether].src
        return str(ipaddress.IPv6Address(packet[ICMPv6ND_NA].tgt)), mac.lower()


def raw_packet_unavailable() -> str | None:
    """Why a raw packet socket cannot be opened here (None: it can)."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except PermissionError as e:
        return f"{e.strerror or e} (euid {os.geteuid()})"
    return None


def check_privilege(node: str) -> None:
    if raw_packet_unavailable() is not None:
        raise ModuleError(PRIVILEGE_HELP, node=node)


class ArpTransport:
    """ARP requests and neighbour solicitations over one packet socket per interface and
    address family in use."""

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
                raise ModuleError(f"interface '{interface}' is not an Ethernet link: ARP and "
                                  "neighbour discovery cannot run on it; name an Ethernet "
                                  "one, or leave interface unset", node=node)
        self.links: dict[tuple[str, int], PacketLink] = {}
        self._connected_cache: dict[int, list[tuple[IPNetwork, str]]] = {}
        self._sweep: Sweep | None = None

    def skip_reason(self, address: str, family: int) -> str | None:
        if ipaddress.ip_address(address).is_multicast:
            return "multicast address"
        route = self._route(address, family)
        if route is not None and address == route[1]:
            return "an address of this host"
        if route is None or route[2] or link_type(route[0]) != ARPHRD_ETHER:
            return "not on a directly connected Ethernet link" + (
                f" of interface {self.interface}" if self.interface else "")
        return None

    def _route(self, address: str, family: int) -> tuple[str, str, bool] | None:
        """(interface, source address, through a gateway) of the route to ``address``."""
        if self.interface is None:
            table = self.conf.route if family == 4 else self.conf.route6
            iface, source, gateway = table.route(address)
            if source in ("0.0.0.0", "::"):
                return None
            return iface, source, gateway not in ("0.0.0.0", "::")
        best = self._connected(address, family)
        return None if best is None else (self.interface, best, False)

    def _connected(self, address: str, family: int) -> str | None:
        """The source address of the most specific connected route of ``interface`` that
        holds ``address``, if any."""
        ip = ipaddress.ip_address(address)
        best: tuple[int, str | None] = (-1, None)
        for net, src in self._connected_routes(family):
            if ip in net and net.prefixlen > best[0]:
                best = (net.prefixlen, src)
        return best[1]

    def _connected_routes(self, family: int) -> list[tuple[IPNetwork, str]]:
        """(network, source address) of each route of ``interface`` without a gateway,
        read once per family (a sweep asks for every host)."""
        if family not in self._connected_cache:
            routes: list[tuple[IPNetwork, str, str, str | None]]
            if family == 4:
                routes = [(ipaddress.IPv4Network((net, bin(mask).count("1")), strict=False),
                           gw, name, src) for net, mask, gw, name, src, _ in self.conf.route.routes]
            else:
                routes = [(ipaddress.IPv6Network((net, plen), strict=False), gw, name,
                           (srcs or [None])[0])
                          for net, plen, gw, name, srcs, _ in self.conf.route6.routes]
            self._connected_cache[family] = [
                (net, src) for net, gw, name, src in routes
                if name == self.interface and gw in ("0.0.0.0", "::") and src]
        return self._connected_cache[family]

    def send(self, probe: Probe, sweep: Sweep) -> None:
        if probe.state is None:
            route = self._route(probe.address, probe.family)
            if route is None or route[2]:  # the routing table changed under the sweep
                raise OSError(errno.ENETUNREACH, "no longer on a local link")
            probe.state = (route[0], probe.family)
            if probe.state not in self.links:
                kind: type[ArpLink | NdLink] = ArpLink if probe.family == 4 else NdLink
                self.links[probe.state] = link = kind(route[0], route[1])
                self.log.debug("{} on {} from {}", "ARP" if probe.family == 4 else
                               "neighbour discovery", route[0], route[1])
                sweep.spawn(self._receive, link, probe.state, sweep)
        self.links[probe.state].send(probe.address)

    def _receive(self, link: PacketLink, key: tuple[str, int], sweep: Sweep) -> None:
        reason = "arp-response" if key[1] == 4 else "nd-response"
        while True:
            reply = link.receive()
            received_at = monotonic()
            if reply is None:
                continue
            probe = sweep.pending.get(reply[0])
            if probe is not None and probe.state == key:
                sweep.answer(probe, Answer(reason, latency_ms(probe.sent_at, received_at),
                                           mac=reply[1]))

    def discard(self, probe: Probe) -> None:
        probe.state = None

    def close(self) -> None:
        for link in self.links.values():
            link.close()
        self.links.clear()


class ArpDiscovery(DiscoveryModule):
    """Hosts on the local link that answer ARP (IPv4) or neighbour discovery (IPv6), with
    their MAC addresses."""

    module_type = "arp_discovery"
    description = ("ARP / IPv6 neighbour discovery sweep of the local link (needs root or "
                   "CAP_NET_RAW, else skipped with a warning); records MACs")
    method = "arp"
    config_schema = {
        **{k: v for k, v in discovery_schema().items() if k != "concurrency"},
        vol.Optional("concurrency", default=None,
                     description=f"hosts awaiting an answer at once (default: {LINK_WINDOW}, or "
                                 "max_parallel_targets when larger)"): Nullable(PositiveInt()),
        vol.Optional("interface", default=None,
                     description="interface to send on (default: each target's route)"):
            vol.Any(None, vol.All(str, vol.Length(min=1))),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        # Without privilege the link layer is an extra, as ICMP is: the scan goes on with
        # the other discovery methods, and says how to get ARP back.
        reason = raw_packet_unavailable()
        if reason is not None:
            ctx.log.warning("arp_discovery: ARP and neighbour discovery skipped: no raw packet "
                            "socket ({}); they need root or CAP_NET_RAW (`setcap cap_net_raw+ep` "
                            "on the Python interpreter, or run as root)", reason)
            publish(ctx, config["output"], [])
            return
        super().run(ctx, config)

    def window(self, ctx: NodeContext, config: dict[str, Any]) -> int:
        # A host awaiting an answer costs a few hundred bytes and no socket or kernel
        # state (the frames bypass the neighbour table): keep a whole subnet in flight, so
        # that its silent addresses are waited for once, not once per max_parallel_targets.
        if config["concurrency"]:
            return int(config["concurrency"])
        return max(ctx.max_parallel, LINK_WINDOW)

    def transport(self, ctx: NodeContext, config: dict[str, Any]) -> ArpTransport:
        return ArpTransport(config["interface"], ctx.node_id, ctx.log)
