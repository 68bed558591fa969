"""``icmp_discovery``: ICMP (and ICMPv6) echo requests, matched by id, sequence and address.

One socket per address family serves every host: a raw socket when privileged (the
reply's TTL read from its IP header), else an unprivileged ICMP datagram socket, which
Linux allows to the groups in ``net.ipv4.ping_group_range`` (the TTL then comes as
``IP_RECVTTL`` / ``IPV6_RECVHOPLIMIT`` ancillary data, and the kernel picks the echo id).
A privileged sweep is stateless (``_raw.RawEcho``, run by ``_stateless``): echo ids and
sequence numbers are a keyed hash of the destination, so replies need no table.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import random
import socket
import struct
from time import monotonic
from typing import Any

import voluptuous as vol
from gevent import socket as gsocket
from pentora_plugins.discovery._common import DiscoveryModule, discovery_schema, family_of, latency_ms
from pentora_plugins.discovery._sweep import Answer, Probe, Sweep
from pentora_plugins.kit.inputs import publish
from pentora_plugins.kit.net.fds import with_descriptor
from pentora_plugins.kit.net.rawtcp import checksum

from pentora import ModuleError, NodeContext

ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}
PROTO = {4: socket.IPPROTO_ICMP, 6: socket.IPPROTO_ICMPV6}
SOL_RAW = 255  # linux/socket.h: ICMP_FILTER lives at this level
ICMP_FILTER = 1  # linux/icmp.h
ICMP6_FILTER = 1  # linux/icmpv6.h
IP_RECVTTL = 12  # linux/in.h; the socket module does not export it
PAYLOAD = b"pentora-discovery\0"
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, id, sequence
_INT = struct.Struct("i")

RAW_HELP = ("a raw ICMP socket needs root or CAP_NET_RAW (run as root, or grant it with "
            "`setcap cap_net_raw+ep` on the Python interpreter)")


def ping_group_range() -> tuple[int, int] | None:
    """This network namespace's ``net.ipv4.ping_group_range``, or None if unreadable."""
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            low, high = f.read().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def _groups_and_range() -> tuple[str, str]:
    """This process's groups and the ping_group_range they are held to, as shown in messages."""
    groups = sorted({os.getegid(), *os.getgroups()})
    current = ping_group_range()
    shown = f"'{current[0]} {current[1]}'" if current else "unreadable"
    return ", ".join(map(str, groups)), shown


def dgram_help() -> str:
    groups, shown = _groups_and_range()
    return ("an unprivileged ICMP datagram socket needs one of this process's groups "
            f"({groups}) inside net.ipv4.ping_group_range, which is {shown} "
            "(allow every group with `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`)")


ENABLE_HELP = ("to enable it: `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"` (every group), "
               "or `setcap cap_net_raw+ep` on the Python interpreter, or run as root")


def icmp_unavailable() -> str | None:
    """Why this process may open no ICMP socket at all, neither raw nor datagram (None: it can).

    Only a refusal counts: another error (no IPv4 on this system, say) is left to the sweep,
    which reports it as a failure of the node.
    """
    for kind in ("raw", "dgram"):
        try:
            EchoSocket(4, kind).close()
            return None
        except PermissionError:
            continue
        except OSError:
            return None
    groups, shown = _groups_and_range()
    return ("no raw ICMP socket (not root, no CAP_NET_RAW) and no datagram one (groups "
            f"{groups} outside net.ipv4.ping_group_range {shown})")


class EchoSocket:
    """One ICMP socket of a family; ``kind`` is ``raw`` or ``dgram``."""

    def __init__(self, version: int, kind: str) -> None:
        self.version = version
        self.kind = kind
        sock_type = socket.SOCK_RAW if kind == "raw" else socket.SOCK_DGRAM
        # waits out EMFILE: a busy process must not call every host down
        self.sock = with_descriptor(lambda: gsocket.socket(family_of(version), sock_type, PROTO[version]))
        try:
            self._configure()
        except OSError:
            self.sock.close()
            raise

    def _configure(self) -> None:
        s = self.sock
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except OSError:
            pass  # capped by net.core.rmem_max; the default still works
        if self.version == 6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        elif self.kind == "dgram":
            s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        if self.kind == "raw":
            self.ident = random.randrange(1, 0x10000)
            if self.version == 4:  # let only echo replies through (set bits are dropped)
                s.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ECHO_REPLY[4]) & 0xFFFFFFFF))
            else:
                words = [0xFFFFFFFF] * 8
                words[ECHO_REPLY[6] >> 5] &= ~(1 << (ECHO_REPLY[6] & 31)) & 0xFFFFFFFF
                s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))
        else:  # the kernel puts the socket's port in the echo id and demuxes on it
            s.bind(("0.0.0.0", 0) if self.version == 4 else ("::", 0))
            self.ident = s.getsockname()[1]

    def send(self, address: str, seq: int) -> None:
        header = _HEADER.pack(ECHO_REQUEST[self.version], 0, 0, self.ident, seq)
        if self.version == 4:  # ICMPv6 checksums cover a pseudo-header: the kernel fills them
            header = _HEADER.pack(ECHO_REQUEST[4], 0, checksum(header + PAYLOAD), self.ident, seq)
        self.sock.sendto(header + PAYLOAD, (address, 0))

    def receive(self) -> tuple[str, int, int, int | None] | None:
        """(source, id, sequence, ttl) of the next echo reply; None for anything else."""
        data, ancdata, _, peer = self.sock.recvmsg(2048, socket.CMSG_SPACE(_INT.size))
        ttl = None
        if self.version == 4 and self.kind == "raw":
            if len(data) < 20:
                return None
            ttl = data[8]
            data = data[(data[0] & 0x0F) * 4:]
        for level, kind, value in ancdata:
            if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL),
                                 (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)):
                ttl = _INT.unpack(value[:_INT.size])[0]
        if len(data) < _HEADER.size:
            return None
        icmp_type, _, _, ident, seq = _HEADER.unpack_from(data)
        if icmp_type != ECHO_REPLY[self.version]:
            return None
        source = peer[0] if self.version == 4 else str(ipaddress.ip_address(peer[0]))
        return source, ident, seq, ttl

    def close(self) -> None:
        self.sock.close()


def open_echo_socket(version: int, mode: str, node: str) -> EchoSocket:
    """A raw socket if allowed (mode ``auto``/``raw``), else a datagram one (``auto``/``dgram``)."""
    problems = []
    for kind, help_text in (("raw", lambda: RAW_HELP), ("dgram", dgram_help)):
        if mode not in ("auto", kind):
            continue
        try:
            return EchoSocket(version, kind)
        except PermissionError:
            problems.append(help_text())
        except OSError as e:
            if e.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
                raise ModuleError(f"cannot open an ICMPv{version} socket: IPv{version} is not "
                                  "available on this system", node=node) from e
            raise
    raise ModuleError("cannot send ICMP echo requests: " + "; and ".join(problems)
                      + ". Or use tcp_probe_discovery, which needs no privilege", node=node)


class IcmpTransport:
    """Echo requests over one socket per family; a receiver greenlet per socket."""

    method = "icmp"

    def __init__(self, mode: str, node: str, log: Any) -> None:
        self.mode = mode
        self.node = node
        self.log = log
        self.sockets: dict[int, EchoSocket] = {}
        self.by_seq: dict[int, tuple[Probe, float]] = {}
        self._seq = random.randrange(0x10000)

    def skip_reason(self, address: str, family: int) -> str | None:
        return None

    def send(self, probe: Probe, sweep: Sweep) -> None:
        sock = self.sockets.get(probe.family) or self._open(probe.family, sweep)
        seq = self._next_seq()
        self.by_seq[seq] = (probe, probe.sent_at)
        if probe.state is None:
            probe.state = []
        probe.state.append(seq)
        sock.send(probe.address, seq)

    def _open(self, version: int, sweep: Sweep) -> EchoSocket:
        sock = open_echo_socket(version, self.mode, self.node)
        self.log.debug("ICMPv{} echo over a {} socket", 4 if version == 4 else 6, sock.kind)
        self.sockets[version] = sock
        sweep.spawn(self._receive, sock, sweep)
        return sock

    def _next_seq(self) -> int:
        # The sweep's window keeps fewer sequence numbers in flight than exist.
        while True:
            self._seq = (self._seq + 1) & 0xFFFF
            if self._seq not in self.by_seq:
                return self._seq

    def _receive(self, sock: EchoSocket, sweep: Sweep) -> None:
        while True:
            try:
                reply = sock.receive()
            except OSError as e:  # an ICMP error queued on the socket; the next read goes on
                self.log.debug("ICMP receive: {}", e)
                continue
            received_at = monotonic()
            if reply is None:
                continue
            source, ident, seq, ttl = reply
            entry = self.by_seq.get(seq)
            if entry is None or ident != sock.ident or entry[0].address != source:
                continue
            probe, sent_at = entry
            sweep.answer(probe, Answer("echo-reply", latency_ms(sent_at, received_at), ttl))

    def discard(self, probe: Probe) -> None:
        for seq in probe.state or ():
            self.by_seq.pop(seq, None)
        probe.state = None

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()


class IcmpDiscovery(DiscoveryModule):
    """Hosts that answer ICMP / ICMPv6 echo requests, with round-trip time and TTL."""

    module_type = "icmp_discovery"
    description = "ICMP echo sweep (raw socket if privileged, else an unprivileged ICMP socket)"
    method = "icmp"
    config_schema = {
        **discovery_schema(rate=50000, raw=True),
        vol.Optional("mode", default="auto",
                     description="raw (needs CAP_NET_RAW), dgram (ping_group_range) or auto: "
                                 "raw, else dgram, else skipped with a warning"):
            vol.In(("auto", "raw", "dgram")),
    }

    def raw_prober(self, ctx: NodeContext, config: dict[str, Any]) -> Any:
        if config["mode"] == "dgram":
            return None
        from pentora_plugins.discovery._raw import RawEcho  # only a privileged sweep needs it

        try:
            return RawEcho(ctx.node_id)
        except PermissionError as e:
            if config["mode"] == "raw":
                raise ModuleError(f"cannot send ICMP echo requests: {RAW_HELP}. Or use "
                                  "tcp_probe_discovery, which needs no privilege",
                                  node=ctx.node_id) from e
            return None  # auto: the datagram socket

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        if config["mode"] == "auto":
            # Without privilege ICMP is an extra, not a failure: the TCP probes beside it in
            # the profiles find the hosts, so the scan goes on and says how to get ICMP back.
            reason = icmp_unavailable()
            if reason is not None:
                ctx.log.warning("icmp_discovery: ICMP echo skipped: {}; {}", reason, ENABLE_HELP)
                publish(ctx, config["output"], [])
                return
        super().run(ctx, config)

    def transport(self, ctx: NodeContext, config: dict[str, Any]) -> IcmpTransport:
        return IcmpTransport(config["mode"], ctx.node_id, ctx.log)

    def window(self, ctx: NodeContext, config: dict[str, Any]) -> int:
        # every attempt of an in-flight host holds one of the 65536 sequence numbers
        return min(super().window(ctx, config), 0xFFFF // (config["retry"] + 1))
