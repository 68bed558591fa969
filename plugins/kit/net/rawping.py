"""Raw host-discovery probes: ICMP / ICMPv6 echo requests and TCP SYN / ACK pings
(nmap's -PE, -PS, -PA), with keyed-hash cookies so that replies are matched without a
table of probes sent, and the in-kernel filters that keep everything else away.

An echo request's identifier and sequence number are together a keyed hash of the
destination address (``EchoCookie``): a reply counts when its id and sequence are the
hash of its source, so a reply to another scan, or one forged by a sender who does not
know the per-scan key, is dropped. TCP pings use ``SeqHasher`` as the SYN scanner does.

Echo requests go out on the raw ICMP / ICMPv6 socket itself, not ``IPPROTO_RAW``: the
kernel picks the source address and writes the IP header, and the ICMP checksum covers no
address, so one ``EchoTemplate`` serves every source. Only its identifier and sequence
change per host, and the checksum is patched by adding them to the precomputed sum.
ICMPv6 checksums cover a pseudo-header: Linux computes them on raw ICMPv6 sockets.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import Any

from pentora_plugins.kit.net.rawtcp import (
    IPPROTO_TCP,
    TH_ACK,
    TH_RST,
    TH_SYN,
    SeqHasher,
    _fold,
    reply_filter,
    reply_filter6,
    word_sum,
)

ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}
SOL_RAW = 255  # linux/socket.h: ICMP_FILTER lives at this level
ICMP_FILTER = 1  # linux/icmp.h
ICMP6_FILTER = 1  # linux/icmpv6.h
PAYLOAD = b"pentora-discovery\0"
ECHO_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, id, sequence
_ID_SEQ = struct.Struct("!HH")
_TCP_PING = struct.Struct("!HHII")  # source port, destination port, seq, ack (bytes 20-32)
_CSUM = struct.Struct("!H")


class EchoCookie:
    """The (id << 16 | sequence) of a destination's echo requests: BLAKE2b-32 keyed with a
    per-scan random key, over the destination's packed address (4 or 16 bytes)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._keyed = hashlib.blake2b(digest_size=4, key=key or os.urandom(16), person=b"pentora-echo")

    def __call__(self, address: bytes) -> int:
        h = self._keyed.copy()
        h.update(address)
        return int.from_bytes(h.digest(), "big")


class EchoTemplate:
    """An echo request (ICMP header and payload) for a raw ICMP or ICMPv6 socket."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.packet = ECHO_HEADER.pack(ECHO_REQUEST[version], 0, 0, 0, 0) + PAYLOAD
        self.size = len(self.packet)
        self._sum = word_sum(self.packet)

    def fill(self, buf: Any, offset: int, cookie: int) -> None:
        """Write this template with ``cookie`` as id and sequence into ``buf`` at ``offset``."""
        buf[offset:offset + self.size] = self.packet
        ident, seq = cookie >> 16, cookie & 0xFFFF
        _ID_SEQ.pack_into(buf, offset + 4, ident, seq)
        if self.version == 4:  # the kernel fills ICMPv6 checksums (pseudo-header)
            _CSUM.pack_into(buf, offset + 2, _fold(self._sum + ident + seq))


def echo_cookie_of(icmp: bytes, version: int) -> int | None:
    """The id/sequence cookie of an ICMP message if it is an echo reply, else None."""
    if len(icmp) < ECHO_HEADER.size:
        return None
    kind, code, _, ident, seq = ECHO_HEADER.unpack_from(icmp)
    if kind != ECHO_REPLY[version] or code:
        return None
    return ident << 16 | seq


def set_echo_reply_filter(sock: Any, version: int) -> None:
    """Let only echo replies reach a raw ICMP / ICMPv6 socket (ICMP_FILTER, ICMP6_FILTER):
    the kernel drops the rest (our own requests on loopback, errors, others' traffic)."""
    if version == 4:  # a set bit drops that type
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ECHO_REPLY[4]) & 0xFFFFFFFF))
        return
    words = [0xFFFFFFFF] * 8
    words[ECHO_REPLY[6] >> 5] &= ~(1 << (ECHO_REPLY[6] & 31)) & 0xFFFFFFFF
    sock.setsockopt(58, ICMP6_FILTER, struct.pack("8I", *words))  # 58: IPPROTO_ICMPV6


class TcpPingTemplate:
    """A TCP SYN (with an MSS option, as a connecting host sends) or a bare ACK, IPv4,
    from one source address; ``fill`` patches ports, seq and ack and both checksums'
    variable parts, as ``SynTemplate`` does."""

    def __init__(self, src4: bytes, flags: int, *, ip_id: int = 0, ttl: int = 64,
                 window: int = 1024) -> None:
        self.src4 = src4
        options = struct.pack("!BBH", 2, 4, 1460) if flags & TH_SYN else b""
        tcp = struct.pack("!HHIIBBHHH", 0, 0, 0, 0, (5 + len(options) // 4) << 4, flags, window,
                          0, 0) + options
        self.size = 20 + len(tcp)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, self.size, ip_id, 0, ttl, IPPROTO_TCP, 0,
                         src4, b"\0\0\0\0")
        self._ip_sum = word_sum(ip)
        self._tcp_sum = word_sum(tcp) + word_sum(src4) + IPPROTO_TCP + len(tcp)
        self.packet = ip + tcp

    def for_destination(self, dst4: bytes) -> tuple[bytes, int]:
        """(this host's packet, IP checksum done; its TCP sum before ports, seq and ack)."""
        dst_sum = word_sum(dst4)
        buf = bytearray(self.packet)
        struct.pack_into("!H4s4s", buf, 10, _fold(self._ip_sum + dst_sum), self.src4, dst4)
        return bytes(buf), self._tcp_sum + dst_sum

    @staticmethod
    def fill(buf: Any, offset: int, packet: bytes, tcp_sum: int, sport: int, dport: int,
             seq: int, ack: int) -> None:
        buf[offset:offset + len(packet)] = packet
        _TCP_PING.pack_into(buf, offset + 20, sport, dport, seq, ack)
        total = tcp_sum + sport + dport + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
        _CSUM.pack_into(buf, offset + 36, _fold(total))


def tcp_ping_filter(first_port: int, last_port: int) -> bytes:
    """Classic BPF for a raw IPPROTO_TCP socket: keep segments to ``first_port..last_port``
    (our source ports) with ACK or RST set: SYN-ACK and RST-ACK answer a SYN ping, a bare
    RST an ACK ping. Our own SYNs seen on loopback have neither; our own ACKs go to the
    target's port, outside the range."""
    return reply_filter(first_port, last_port, TH_ACK | TH_RST)


class TcpPingMatcher:
    """Classifies an IPv4 TCP segment as the answer to one of our pings: returns (their
    address as 4 bytes, ``syn-ack`` or ``rst``) or None.

    A SYN ping (seq = keyed hash h) is answered by SYN-ACK or RST-ACK with ack h + 1; an ACK
    ping (ack = h) by a bare RST with seq h (RFC 9293: a reset takes its sequence number
    from the ACK field of the segment that caused it)."""

    def __init__(self, hasher: SeqHasher, flags: int, first_sport: int, last_sport: int) -> None:
        self.hasher = hasher
        self.syn = bool(flags & TH_SYN)
        self.first, self.last = first_sport, last_sport

    def match(self, packet: bytes) -> tuple[bytes, str] | None:
        if len(packet) < 20:
            return None
        ihl = (packet[0] & 0x0F) << 2
        if len(packet) < ihl + 14:
            return None
        flags = packet[ihl + 13]
        their_port, our_port, seq, ack = _TCP_PING.unpack_from(packet, ihl)
        if not self.first <= our_port <= self.last:
            return None
        their4 = packet[12:16]
        h = self.hasher.reply_secret(packet) ^ self.hasher.port_mask(their_port, our_port)
        if self.syn:
            if not flags & TH_ACK or ack != (h + 1) & 0xFFFFFFFF:
                return None
            if flags & TH_SYN:
                return their4, "syn-ack"
            return (their4, "rst") if flags & TH_RST else None
        if flags & TH_RST and not flags & TH_SYN and seq == h:
            return their4, "rst"
        return None


class TcpPing6Template:
    """``TcpPingTemplate`` for IPv6: the same SYN or bare ACK behind a 40-byte IPv6 header,
    for an ``AF_INET6`` ``IPPROTO_RAW`` socket (which sends the header as given, so the
    source is the one the keyed hash was computed for). No IP checksum; the TCP one covers
    the IPv6 pseudo-header, its constant part summed once."""

    def __init__(self, src16: bytes, flags: int, *, hop_limit: int = 64, window: int = 1024) -> None:
        self.src16 = src16
        options = struct.pack("!BBH", 2, 4, 1440) if flags & TH_SYN else b""
        tcp = struct.pack("!HHIIBBHHH", 0, 0, 0, 0, (5 + len(options) // 4) << 4, flags, window,
                          0, 0) + options
        self.size = 40 + len(tcp)
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp), IPPROTO_TCP, hop_limit, src16, bytes(16))
        self._tcp_sum = word_sum(tcp) + word_sum(src16) + IPPROTO_TCP + len(tcp)
        self.packet = ip + tcp

    def for_destination(self, dst16: bytes) -> tuple[bytes, int]:
        """(this host's packet; its TCP sum before ports, seq and ack)."""
        buf = bytearray(self.packet)
        buf[24:40] = dst16
        return bytes(buf), self._tcp_sum + word_sum(dst16)

    @staticmethod
    def fill(buf: Any, offset: int, packet: bytes, tcp_sum: int, sport: int, dport: int,
             seq: int, ack: int) -> None:
        buf[offset:offset + len(packet)] = packet
        _TCP_PING.pack_into(buf, offset + 40, sport, dport, seq, ack)
        total = tcp_sum + sport + dport + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
        _CSUM.pack_into(buf, offset + 56, _fold(total))


def tcp_ping_filter6(first_port: int, last_port: int) -> bytes:
    """``tcp_ping_filter`` for an ``AF_INET6`` raw IPPROTO_TCP socket, which is handed the
    TCP segment without the IPv6 header: the same tests at offsets from 0."""
    return reply_filter6(first_port, last_port, TH_ACK | TH_RST)


class TcpPing6Matcher:
    """``TcpPingMatcher`` for a TCP segment of an ``AF_INET6`` raw socket: ``match(segment,
    ours, theirs)`` with both packed addresses (the sender's from ``recvmsg``, ours from
    ``IPV6_PKTINFO``: the segment carries neither) returns ``syn-ack``, ``rst`` or None."""

    def __init__(self, hasher: SeqHasher, flags: int, first_sport: int, last_sport: int) -> None:
        self.hasher = hasher
        self.syn = bool(flags & TH_SYN)
        self.first, self.last = first_sport, last_sport

    def match(self, segment: bytes, ours: bytes, theirs: bytes) -> str | None:
        if len(segment) < 14:
            return None
        flags = segment[13]
        their_port, our_port, seq, ack = _TCP_PING.unpack_from(segment)
        if not self.first <= our_port <= self.last:
            return None
        h = self.hasher.pair_secret(ours, theirs) ^ self.hasher.port_mask(their_port, our_port)
        if self.syn:
            if not flags & TH_ACK or ack != (h + 1) & 0xFFFFFFFF:
                return None
            if flags & TH_SYN:
                return "syn-ack"
            return "rst" if flags & TH_RST else None
        if flags & TH_RST and not flags & TH_SYN and seq == h:
            return "rst"
        return None
