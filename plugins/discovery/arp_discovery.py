"""``arp_discovery``: ARP who-has (IPv4) and neighbour solicitation (IPv6) on the local
link, recording each answering host's MAC.

Privileged (a raw ``AF_PACKET`` socket per interface and family). scapy finds the
interface and source address from the routing table, once a host, before the sending.
The sweep is stateless raw discovery's (``_stateless``), as icmp_discovery's and
tcp_probe_discovery's privileged ones: hosts in chunks, a pass over the silent ones a
try, frames leaving a batch per ``sendmmsg`` at the configured ``rate`` (lowered while
replies are lost), replies read a batch per ``recvmmsg`` behind an in-kernel filter.
Each host's frame, ARP request or Neighbor Solicitation to its solicited-node group, is
built from a template (``kit.net.rawlink``), not by scapy, and replies are parsed by
offset, so a sweep costs no scapy object per host. Only targets on a directly connected
Ethernet link are probed; the rest are skipped with a warning.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from time import monotonic
from typing import Any

import voluptuous as vol
from pentora_plugins.discovery._common import DiscoveryModule, discovery_schema
from pentora_plugins.discovery._raw import read_packets
from pentora_plugins.discovery._stateless import Slot, StatelessSweep
from pentora_plugins.discovery._sweep import Probe
from pentora_plugins.kit.inputs import publish
from pentora_plugins.kit.net.rawlink import (
    ETH_P_ARP,
    ETH_P_IPV6,
    ArpTemplate,
    NsTemplate,
    advertisement_filter,
    advertisement_of,
    arp_reply_filter,
    arp_reply_of,
    fill,
    interface_mac,
    packed,
)
from pentora_plugins.kit.net.rawrecv import BatchReceiver, open_raw_socket
from pentora_plugins.kit.net.rawsend import BatchSender
from pentora_plugins.kit.net.rawtcp import attach_filter

from pentora import ModuleError, NodeContext
from pentora.schema import Nullable, PositiveInt

ARPHRD_ETHER = 1
RECV_BUFFER = 8 << 20  # as raw discovery's: a sweep's replies come in bursts
SNAP = 128  # bytes of a reply read: an advertisement with its options is 86 and up
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


def _source_for(address: str, sources: list[str]) -> str:
    """Of a route's source addresses, one of the destination's scope: a link-local one
    for a link-local destination, else the first that is not (RFC 6724's first rules)."""
    local = address.lower().startswith("fe80:")
    return next((s for s in sources if s.lower().startswith("fe80:") == local), sources[0])


class Link:
    """One interface and address family: a packet socket bound to it (sending and, behind
    a filter, receiving), the frame template, a ``BatchSender`` and a ``BatchReceiver``."""

    def __init__(self, iface: str, source: str, family: int) -> None:
        ethertype = ETH_P_ARP if family == 4 else ETH_P_IPV6
        self.iface, self.family = iface, family
        mac = interface_mac(iface)
        self.template: ArpTemplate | NsTemplate = (ArpTemplate if family == 4 else NsTemplate)(
            mac, packed(source))
        # Protocol 0 until bound: frames of other interfaces never reach the socket.
        self.sock = open_raw_socket(socket.AF_PACKET, 0, RECV_BUFFER)
        try:
            attach_filter(self.sock, arp_reply_filter() if family == 4 else advertisement_filter())
            self.sock.bind((iface, ethertype))
        except BaseException:
            self.sock.close()
            raise
        self.sender = BatchSender(self.sock, self.template.size, socket.AF_PACKET,
                                  addr_size=4 if family == 4 else 16)
        self.receiver = BatchReceiver(self.sock, SNAP)
        self.parse = arp_reply_of if family == 4 else advertisement_of
        self.reason = "arp-response" if family == 4 else "nd-response"

    def close(self) -> None:
        self.sock.close()


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


class LinkProber:
    """ARP requests and neighbour solicitations for ``_stateless``: a ``Link`` per interface
    and address family in use, opened as the first host behind it is prepared. A host's
    frame is built once (``kit.net.rawlink``) and copied into a sender slot per try; a
    reply counts when it names a host of the chunk and came in on that host's link."""

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
        self.links: dict[tuple[str, int], Link] = {}
        self.receivers: list[BatchReceiver] = []  # their drops and backlog steer the rate
        self._table: dict[int, list[tuple[int, int, str, list[str], bool]]] = {}
        self._ethernet: dict[str, bool] = {}
        self._last: tuple[str, tuple[str, str, bool] | None] = ("", None)
        self.sweep: StatelessSweep | None = None

    def skip_reason(self, address: str, family: int) -> str | None:
        key = packed(address)
        if (key[0] == 0xFF) if family == 6 else (0xE0 <= key[0] <= 0xEF):
            return "multicast address"
        route = self._route(address, key)
        # kept for prepare(), which the sweep calls next for this very host
        self._last = (address, route)
        if route is not None and address == route[1]:
            return "an address of this host"
        if route is None or route[2] or not self._is_ethernet(route[0]):
            return "not on a directly connected Ethernet link" + (
                f" of interface {self.interface}" if self.interface else "")
        return None

    def _route(self, address: str, key: bytes) -> tuple[str, str, bool] | None:
        """(interface, source address, through a gateway) of the route to ``address``:
        the longest prefix of the routing table that holds it (of ``interface``'s
        connected routes only, when one is named)."""
        n = int.from_bytes(key, "big")
        for mask, net, iface, sources, via in self._routes(4 if len(key) == 4 else 6):
            if n & mask == net:
                return iface, _source_for(address, sources), via
        return None

    def _routes(self, family: int) -> list[tuple[int, int, str, list[str], bool]]:
        """(mask, network, interface, source addresses, through a gateway) of each route
        as integers, most specific first, read from scapy's copy of the routing table once
        a family: scapy's own lookup costs a third of a millisecond a host of an IPv6
        sweep, this one microseconds."""
        if family not in self._table:
            width = 32 if family == 4 else 128
            rows: list[tuple[int, int, int, str, list[str], str]] = []
            if family == 4:
                for net, mask, gw, name, src, metric in self.conf.route.routes:
                    rows.append((bin(mask).count("1"), metric, net & mask, name, [src], gw))
            else:
                for net6, plen, gw, name, srcs, metric in self.conf.route6.routes:
                    mask = ((1 << plen) - 1) << (width - plen)
                    rows.append((plen, metric, int.from_bytes(packed(net6), "big") & mask, name,
                                 list(srcs), gw))
            table = []
            for plen, _, net, name, sources, gw in sorted(rows, key=lambda r: (-r[0], r[1])):
                sources = [s for s in sources if s not in ("0.0.0.0", "::")]
                via = gw not in ("0.0.0.0", "::")
                if not sources or (self.interface is not None and (name != self.interface or via)):
                    continue
                table.append((((1 << plen) - 1) << (width - plen), net, name, sources, via))
            self._table[family] = table
        return self._table[family]

    def _is_ethernet(self, iface: str) -> bool:
        if iface not in self._ethernet:  # read once an interface, not once a host
            self._ethernet[iface] = link_type(iface) == ARPHRD_ETHER
        return self._ethernet[iface]

    def start(self, sweep: StatelessSweep) -> None:
        self.sweep = sweep

    def prepare(self, probe: Probe) -> Slot:
        address, route = self._last
        if address != probe.address:
            route = self._route(probe.address, packed(probe.address))
        if route is None or route[2]:  # the routing table changed under the sweep
            raise OSError(errno.ENETUNREACH, "no longer on a local link")
        link = self.links.get((route[0], probe.family)) or self._open(route[0], route[1], probe.family)
        key = packed(probe.address)
        return Slot(probe, key, (link, link.template.frame(key)))

    def _open(self, iface: str, source: str, family: int) -> Link:
        assert self.sweep is not None
        self.links[(iface, family)] = link = Link(iface, source, family)
        self.receivers.append(link.receiver)
        self.log.debug("{} on {} from {}", "ARP" if family == 4 else "neighbour discovery",
                       iface, source)
        self.sweep.spawn(self._receive, link)
        return link

    def variants(self) -> list[Any]:
        return [None]

    def write(self, slot: Slot, variant: Any, attempt: int) -> None:
        assert self.sweep is not None
        link, frame = slot.state
        box = self.sweep.outbox(link.sender)
        fill(box.sender.packets, box.next(slot.key) * box.sender.size, frame)

    def _receive(self, link: Link) -> None:
        sweep, parse, reason = self.sweep, link.parse, link.reason
        assert sweep is not None
        for frames in read_packets(link.receiver):
            received_at = monotonic()
            for frame in frames:
                reply = parse(frame)
                if reply is None:
                    continue
                slot = sweep.index.get(reply[0])
                # the host's own link only: the same address may sit behind two interfaces
                if slot is not None and slot.state[0] is link:
                    sweep.answered(reply[0], reason, None, received_at, reply[1])

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
        **{k: v for k, v in discovery_schema(rate=50000, raw=True).items() if k != "concurrency"},
        vol.Optional("concurrency", default=None,
                     description="hosts probed as one chunk, whose state is held at once "
                                 "(default: 65536)"): Nullable(PositiveInt()),
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

    def raw_prober(self, ctx: NodeContext, config: dict[str, Any]) -> LinkProber:
        # Always the raw method: without privilege run() has stopped already.
        return LinkProber(config["interface"], ctx.node_id, ctx.log)
