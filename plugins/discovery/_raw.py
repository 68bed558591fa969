"""The raw probers of ``_stateless``: ICMP / ICMPv6 echo (``RawEcho``) and TCP SYN / ACK
pings over IPv4 and IPv6 (``RawTcpPing``). Each prepares a host's packet once, writes it per try into a
``BatchSender`` slot, and matches replies by their keyed-hash cookie alone."""

from __future__ import annotations

import errno
import random
import socket as _socket
import struct
from collections.abc import Iterator
from time import monotonic
from typing import Any

import gevent
from gevent.socket import wait_read
from pentora_plugins.discovery._stateless import Slot, StatelessSweep
from pentora_plugins.discovery._sweep import Probe
from pentora_plugins.kit.net.fds import FD_PATIENCE
from pentora_plugins.kit.net.rawping import (
    EchoCookie,
    EchoTemplate,
    TcpPing6Matcher,
    TcpPing6Template,
    TcpPingMatcher,
    TcpPingTemplate,
    echo_cookie_of,
    set_echo_reply_filter,
    tcp_ping_filter,
    tcp_ping_filter6,
)
from pentora_plugins.kit.net.rawrecv import BatchReceiver, open_raw_socket
from pentora_plugins.kit.net.rawsend import BatchSender, open_send_socket
from pentora_plugins.kit.net.rawtcp import TH_ACK, TH_SYN, SeqHasher, SourceAddresses, attach_filter

from pentora import ModuleError

RECV_BUFFER = 8 << 20
SNAP = 128  # bytes of a reply read: its IP header (60 at most) and the ICMP or TCP header
SPORT_LOW, SPORT_HIGH = 61000, 65000  # above Linux's ephemeral range: no local socket owns them
_FAMILY = {4: _socket.AF_INET, 6: _socket.AF_INET6}
_PROTO = {4: _socket.IPPROTO_ICMP, 6: _socket.IPPROTO_ICMPV6}
_INT = struct.Struct("i")
# in6_pktinfo (our address, interface index) and the hop limit of an IPv6 TCP reply
_ANCILLARY6 = _socket.CMSG_SPACE(20) + _socket.CMSG_SPACE(_INT.size)


def _raw_socket(family: int, proto: int, patience: float = FD_PATIENCE) -> Any:
    """A raw gevent socket with a large receive buffer; PermissionError without privilege;
    waits up to ``patience`` seconds for a free descriptor."""
    return open_raw_socket(family, proto, RECV_BUFFER, patience)


def read_packets(receiver: BatchReceiver) -> Iterator[list[bytes]]:
    """The packets of a raw socket, a batch per ``recvmmsg`` call, for as long as the
    caller iterates (waiting cooperatively while there are none).

    The one place IPv4 replies are read. An error queued on the socket (an ICMP error an
    earlier probe drew) fails one read only: the next goes on."""
    fd = receiver.sock.fileno()
    while True:
        try:
            packets = receiver.receive()
        except OSError:
            continue
        if packets:
            yield packets
            # a receiver that always finds replies waiting would never yield: let the
            # sender go on and see the backlog, the other nodes run
            gevent.sleep(0)
        else:
            wait_read(fd)


class RawEcho:
    """ICMP echo requests from the raw ICMP socket of each family, which also receives
    the replies (ICMP_FILTER lets only echo replies in)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.cookie = EchoCookie()
        self.templates = {v: EchoTemplate(v) for v in (4, 6)}
        self.socks: dict[int, Any] = {}
        self.senders: dict[int, BatchSender] = {}
        self.receivers: list[BatchReceiver] = []  # the IPv4 one: its drops steer the rate
        self.sweep: StatelessSweep | None = None
        self._open(4)  # PermissionError here: the caller falls back to a datagram socket

    def _open(self, version: int) -> None:
        try:
            sock = _raw_socket(_FAMILY[version], _PROTO[version])
        except OSError as e:
            if e.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
                raise ModuleError(f"cannot open an ICMPv{version} socket: IPv{version} is not "
                                  "available on this system", node=self.node) from e
            raise
        set_echo_reply_filter(sock, version)
        if version == 6:
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_RECVHOPLIMIT, 1)
        else:
            self.receivers.append(BatchReceiver(sock, SNAP))
        self.socks[version] = sock
        self.senders[version] = BatchSender(sock, self.templates[version].size, _FAMILY[version])
        if self.sweep is not None:
            self.sweep.spawn(self._receive, version)

    def start(self, sweep: StatelessSweep) -> None:
        self.sweep = sweep
        for version in self.socks:
            sweep.spawn(self._receive, version)

    def prepare(self, probe: Probe) -> Slot:
        if probe.family not in self.socks:
            self._open(probe.family)
        key = _socket.inet_pton(_FAMILY[probe.family], probe.address)
        return Slot(probe, key, self.cookie(key))

    def variants(self) -> list[Any]:
        return [None]

    def write(self, slot: Slot, variant: Any, attempt: int) -> None:
        assert self.sweep is not None
        version = slot.probe.family
        box = self.sweep.outbox(self.senders[version])
        i = box.next(slot.key)
        self.templates[version].fill(box.sender.packets, i * box.sender.size, slot.state)

    def _receive(self, version: int) -> None:
        if version == 4:
            self._receive4()
        else:
            self._receive6()

    def _receive4(self) -> None:
        sweep, cookie = self.sweep, self.cookie
        assert sweep is not None
        for packets in read_packets(self.receivers[0]):
            received_at = monotonic()
            for data in packets:
                if len(data) < 20:
                    continue
                key = data[12:16]
                got = echo_cookie_of(data[(data[0] & 0x0F) * 4:], 4)
                if got is not None and got == cookie(key):
                    sweep.answered(key, "echo-reply", data[8], received_at)

    def _receive6(self) -> None:
        """ICMPv6 replies one ``recvmsg`` each: the socket gives no IPv6 header, so the
        sender and hop limit come from the message's address and ancillary data."""
        sock, sweep, cookie = self.socks[6], self.sweep, self.cookie
        assert sweep is not None
        while True:
            try:
                data, ancdata, _, peer = sock.recvmsg(2048, _socket.CMSG_SPACE(_INT.size))
            except OSError:
                continue  # an ICMP error queued on the socket; the next read goes on
            received_at = monotonic()
            key = _socket.inet_pton(_socket.AF_INET6, peer[0].split("%")[0])
            ttl = next((_INT.unpack(v[:_INT.size])[0] for lvl, kind, v in ancdata
                        if (lvl, kind) == (_socket.IPPROTO_IPV6, _socket.IPV6_HOPLIMIT)), None)
            got = echo_cookie_of(data, 6)
            if got is not None and got == cookie(key):
                sweep.answered(key, "echo-reply", ttl, received_at)

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()
        self.socks.clear()


class RawTcpPing:
    """TCP SYN or ACK pings on an ``IPPROTO_RAW`` socket, one per port and try, a source
    port per try; replies on a raw TCP socket behind ``tcp_ping_filter``. IPv6 hosts the
    same way on ``AF_INET6`` sockets where the kernel has them (``v6``; else the caller
    connect-pings them): their replies come without an IPv6 header, so the receiver asks
    for both addresses (the sender's, ours by ``IPV6_PKTINFO``) to check the hash."""

    def __init__(self, ports: list[int], flag: str, tries: int) -> None:
        self.ports = ports
        self.flags = TH_SYN if flag == "syn" else TH_ACK
        self.ack = flag == "ack"
        # before the raw sockets: its descriptor is then never waited for behind them
        self.sources = SourceAddresses()
        try:
            self.recv = _raw_socket(_socket.AF_INET, _socket.IPPROTO_TCP)
            try:
                self.send = open_send_socket()
            except BaseException:
                self.recv.close()
                raise
        except BaseException:
            self.sources.close()
            raise
        base = random.randrange(SPORT_LOW, SPORT_HIGH - tries)
        self.sports = range(base, base + tries)
        self.hasher = SeqHasher()
        self.matcher = TcpPingMatcher(self.hasher, self.flags, base, base + tries - 1)
        attach_filter(self.recv, tcp_ping_filter(base, base + tries - 1))
        self.receivers = [BatchReceiver(self.recv, SNAP)]  # its drops steer the rate
        self.ip_id = random.randrange(1, 0xFFFF)
        self.templates: dict[str, TcpPingTemplate] = {}
        size = TcpPingTemplate(b"\0\0\0\0", self.flags).size
        self.sender = BatchSender(self.send, size)
        self.sweep: StatelessSweep | None = None
        self.matcher6 = TcpPing6Matcher(self.hasher, self.flags, base, base + tries - 1)
        self.templates6: dict[str, TcpPing6Template] = {}
        self.recv6, self.send6, self.sender6 = self._open6(base, base + tries - 1)
        self.v6 = self.recv6 is not None

    def _open6(self, first: int, last: int) -> tuple[Any, Any, BatchSender | None]:
        """The IPv6 sockets and sender, or Nones on a kernel without IPv6 (privilege was
        already proven by the IPv4 ones) or with no descriptor free now: the sweep may have
        no IPv6 host at all, so none is waited for (its IPv6 hosts are connect-pinged)."""
        try:
            recv = _raw_socket(_socket.AF_INET6, _socket.IPPROTO_TCP, patience=0)
        except OSError:
            return None, None, None
        try:
            send = open_send_socket(_socket.AF_INET6, patience=0)
        except OSError:
            recv.close()
            return None, None, None
        attach_filter(recv, tcp_ping_filter6(first, last))
        recv.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_RECVPKTINFO, 1)
        recv.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_RECVHOPLIMIT, 1)
        size = TcpPing6Template(bytes(16), self.flags).size
        return recv, send, BatchSender(send, size, _socket.AF_INET6)

    def start(self, sweep: StatelessSweep) -> None:
        self.sweep = sweep
        sweep.spawn(self._receive)
        if self.v6:
            sweep.spawn(self._receive6)

    def prepare(self, probe: Probe) -> Slot:
        src = self.sources.for_destination(probe.address)  # OSError: no route
        if probe.family == 6:
            template6 = self.templates6.get(src)
            if template6 is None:
                template6 = self.templates6[src] = TcpPing6Template(
                    _socket.inet_pton(_socket.AF_INET6, src), self.flags)
            dst16 = _socket.inet_pton(_socket.AF_INET6, probe.address)
            packet, tcp_sum = template6.for_destination(dst16)
            return Slot(probe, dst16, (packet, tcp_sum, self.hasher.host_secret(template6.src16, dst16)))
        template = self.templates.get(src)
        if template is None:
            template = self.templates[src] = TcpPingTemplate(_socket.inet_aton(src), self.flags,
                                                             ip_id=self.ip_id)
        dst4 = _socket.inet_aton(probe.address)
        packet, tcp_sum = template.for_destination(dst4)
        return Slot(probe, dst4, (packet, tcp_sum, self.hasher.host_secret(template.src4, dst4)))

    def variants(self) -> list[Any]:
        return self.ports

    def write(self, slot: Slot, port: int, attempt: int) -> None:
        assert self.sweep is not None
        packet, tcp_sum, secret = slot.state
        sport = self.sports[attempt]
        h = secret ^ self.hasher.port_mask(port, sport)
        v6 = len(slot.key) == 16
        sender = self.sender6 if v6 and self.sender6 is not None else self.sender
        box = self.sweep.outbox(sender)
        i = box.next(slot.key)
        fill = TcpPing6Template.fill if v6 else TcpPingTemplate.fill
        fill(box.sender.packets, i * box.sender.size, packet, tcp_sum, sport, port, h, h if self.ack else 0)

    def _receive(self) -> None:
        sweep, match = self.sweep, self.matcher.match
        assert sweep is not None
        for packets in read_packets(self.receivers[0]):
            received_at = monotonic()
            for data in packets:
                hit = match(data)
                if hit is not None:
                    sweep.answered(hit[0], hit[1], data[8], received_at)

    def _receive6(self) -> None:
        sweep, match, pton, v6 = self.sweep, self.matcher6.match, _socket.inet_pton, _socket.AF_INET6
        assert sweep is not None
        while True:
            data, ancdata, _, peer = self.recv6.recvmsg(2048, _ANCILLARY6)
            ours, hops = None, None
            for level, kind, value in ancdata:
                if level == _socket.IPPROTO_IPV6 and kind == _socket.IPV6_PKTINFO:
                    ours = value[:16]
                elif level == _socket.IPPROTO_IPV6 and kind == _socket.IPV6_HOPLIMIT:
                    hops = _INT.unpack(value[:_INT.size])[0]
            if ours is None:
                continue
            theirs = pton(v6, peer[0].partition("%")[0])
            reason = match(data, ours, theirs)
            if reason is not None:
                sweep.answered(theirs, reason, hops, monotonic())

    def close(self) -> None:
        for sock in (self.recv, self.send, self.recv6, self.send6):
            if sock is not None:
                sock.close()
        self.sources.close()
