"""Raw IPv4/TCP and IPv6/TCP pieces of the SYN scanner: packet templates, checksums,
keyed sequence numbers and the in-kernel filters that keep everything but candidate
replies away.

Nothing here allocates a scapy object: a ``SynTemplate`` is 44 bytes (IPv4 header, TCP
header with an MSS option), a ``Syn6Template`` 64 (IPv6 header, the same TCP header),
whose constant 16-bit words are summed once, so each packet costs two
``struct.pack_into`` calls and a few integer additions for its checksums.
"""

from __future__ import annotations

import array
import ctypes
import hashlib
import ipaddress
import os
import struct
import sys
from typing import Any

from gevent import socket
from pentora_plugins.kit.net._mmsg import LIBC
from pentora_plugins.kit.net.fds import with_descriptor

IPPROTO_TCP = 6
TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
SO_ATTACH_FILTER = 26  # linux/asm-generic/socket.h; the socket module does not export it

_IP6_HEAD = struct.Struct("!IHBB16s16s")  # version/class/flow, payload length, next header, hops, addresses
_IP_TAIL = struct.Struct("!H4s4s")   # IP checksum, source, destination (bytes 10-20)
PORTS_SEQ = struct.Struct("!HHI")   # TCP source port, destination port, seq (bytes 20-28)
CSUM = struct.Struct("!H")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``, summed 16 bits at a time in C."""
    if len(data) % 2:
        data += b"\0"
    words = array.array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def word_sum(data: bytes) -> int:
    """Sum of the big-endian 16-bit words of ``data`` (even length), unfolded."""
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _fold(total: int) -> int:
    total = (total & 0xFFFF) + (total >> 16)
    return ~(total + (total >> 16)) & 0xFFFF


class SeqHasher:
    """Sequence numbers as a keyed hash, so replies are matched without a table.

    ``seq(src, dst, dport, sport)`` = BLAKE2b-32(key, src || dst) XOR Td[dport] XOR
    Ts[sport], where the per-scan random ``key`` also seeds the two 65,536-entry tables
    (SHAKE-256 output): keyed hashing of the address pair once per host, simple
    tabulation hashing of the ports per probe. A reply belongs to this scan when its ack
    is that value plus one; an off-path sender, or a reply to an earlier scan, would
    have to guess the key.
    """

    def __init__(self, key: bytes | None = None) -> None:
        key = key or os.urandom(16)
        self._keyed = hashlib.blake2b(digest_size=4, key=key, person=b"pentora-syn")
        tables = array.array("I", hashlib.shake_256(b"pentora-syn-ports" + key).digest(8 << 16))
        self.dport_table = tables[: 1 << 16].tolist()
        self.sport_table = tables[1 << 16:].tolist()
        self._replies: dict[bytes, int] = {}  # reply_secret's cache

    def host_secret(self, src4: bytes, dst4: bytes) -> int:
        h = self._keyed.copy()
        h.update(src4 + dst4)
        return int.from_bytes(h.digest(), "big")

    def port_mask(self, dport: int, sport: int) -> int:
        return self.dport_table[dport] ^ self.sport_table[sport]

    def seq(self, src4: bytes, dst4: bytes, dport: int, sport: int) -> int:
        return self.host_secret(src4, dst4) ^ self.port_mask(dport, sport)

    def pair_secret(self, ours: bytes, theirs: bytes) -> int:
        """``host_secret`` of a reply's (our address, theirs), cached per address pair, at
        most 65,536 of them: a sweep's replies come host after host."""
        pair = ours + theirs
        cache = self._replies
        secret = cache.get(pair)
        if secret is None:
            if len(cache) >= 65536:
                cache.clear()
            secret = cache[pair] = self.host_secret(ours, theirs)
        return secret

    def reply_secret(self, packet: bytes) -> int:
        """``pair_secret`` of the addresses an IPv4 reply (``packet``, from its IP header)
        names: its destination is ours, its source theirs."""
        return self.pair_secret(packet[16:20], packet[12:16])


class SynTemplate:
    """A SYN packet (IPv4 + TCP with MSS) from one source address, patched per probe.

    The constant parts of both checksums (for TCP, including the pseudo-header) are
    summed once. ``for_destination`` makes a host's copy, IP checksum included, and the
    unfolded TCP sum so far; ``fill`` adds ports and sequence number and folds.
    """

    LENGTH = 44
    TCP_OFFSET = 20  # where the TCP header starts: ports and seq here, the checksum 16 further

    def __init__(self, src: str, *, ip_id: int = 0, ttl: int = 64, window: int = 1024,
                 mss: int = 1460) -> None:
        self.src4 = socket.inet_aton(src)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, self.LENGTH, ip_id, 0, ttl, IPPROTO_TCP, 0,
                         self.src4, b"\0\0\0\0")
        tcp = struct.pack("!HHIIBBHHHBBH", 0, 0, 0, 0, 6 << 4, TH_SYN, window, 0, 0, 2, 4, mss)
        self._ip_sum = word_sum(ip)
        self._tcp_sum = word_sum(tcp) + word_sum(self.src4) + IPPROTO_TCP + len(tcp)
        self.packet = ip + tcp

    def for_destination(self, dst4: bytes) -> tuple[bytearray, int]:
        """(this host's packet buffer, its TCP checksum sum before ports and seq)."""
        dst_sum = word_sum(dst4)
        buf = bytearray(self.packet)
        _IP_TAIL.pack_into(buf, 10, _fold(self._ip_sum + dst_sum), self.src4, dst4)
        return buf, self._tcp_sum + dst_sum

    @staticmethod
    def fill(buf: bytearray, tcp_sum: int, sport: int, dport: int, seq: int) -> None:
        """Patch a host's buffer for one probe."""
        PORTS_SEQ.pack_into(buf, 20, sport, dport, seq)
        total = tcp_sum + sport + dport + (seq >> 16) + (seq & 0xFFFF)
        total = (total & 0xFFFF) + (total >> 16)
        CSUM.pack_into(buf, 36, ~(total + (total >> 16)) & 0xFFFF)

    def build(self, dst: str, sport: int, dport: int, seq: int) -> bytes:
        buf, tcp_sum = self.for_destination(socket.inet_aton(dst))
        self.fill(buf, tcp_sum, sport, dport, seq)
        return bytes(buf)


class Syn6Template:
    """A SYN packet (IPv6 + TCP with MSS) from one source address, patched per probe,
    for an ``AF_INET6`` ``IPPROTO_RAW`` socket (which takes the IPv6 header as given).

    IPv6 has no header checksum; the TCP one covers the IPv6 pseudo-header (both
    addresses, the segment length, the next header), summed once per source and once per
    destination. The TCP header starts at byte 40 (ports and seq), its checksum is at 56:
    ``SynTemplate``'s offsets plus 20.
    """

    LENGTH = 64
    TCP_OFFSET = 40

    def __init__(self, src: str, *, hop_limit: int = 64, window: int = 1024, mss: int = 1440) -> None:
        self.src16 = socket.inet_pton(socket.AF_INET6, src)
        tcp = struct.pack("!HHIIBBHHHBBH", 0, 0, 0, 0, 6 << 4, TH_SYN, window, 0, 0, 2, 4, mss)
        self._tcp_sum = word_sum(tcp) + word_sum(self.src16) + IPPROTO_TCP + len(tcp)
        self.packet = _IP6_HEAD.pack(6 << 28, len(tcp), IPPROTO_TCP, hop_limit, self.src16,
                                     bytes(16)) + tcp

    def for_destination(self, dst16: bytes) -> tuple[bytearray, int]:
        """(this host's packet buffer, its TCP checksum sum before ports and seq)."""
        buf = bytearray(self.packet)
        buf[24:40] = dst16
        return buf, self._tcp_sum + word_sum(dst16)

    @staticmethod
    def fill(buf: bytearray, tcp_sum: int, sport: int, dport: int, seq: int) -> None:
        """Patch a host's buffer for one probe."""
        PORTS_SEQ.pack_into(buf, 40, sport, dport, seq)
        total = tcp_sum + sport + dport + (seq >> 16) + (seq & 0xFFFF)
        total = (total & 0xFFFF) + (total >> 16)
        CSUM.pack_into(buf, 56, ~(total + (total >> 16)) & 0xFFFF)

    def build(self, dst: str, sport: int, dport: int, seq: int) -> bytes:
        buf, tcp_sum = self.for_destination(socket.inet_pton(socket.AF_INET6, dst))
        self.fill(buf, tcp_sum, sport, dport, seq)
        return bytes(buf)


def reply_filter(first_port: int, last_port: int, flags: int = TH_ACK) -> bytes:
    """A classic BPF program for a raw IPPROTO_TCP socket: keep segments with any of
    ``flags`` set (ACK: a SYN probe's replies) whose destination port is in
    ``first_port..last_port`` (our source ports).

    On loopback the receive socket also sees our own SYNs and the kernel's RSTs to the
    SYN-ACKs (neither has ACK set), and every other TCP segment of the host: dropping
    them in the kernel keeps the receive queue for replies."""
    program = [
        (0xB1, 0, 0, 0),             # ldxb 4*([0]&0xf)    X = IP header length
        (0x48, 0, 0, 2),             # ldh [x+2]           TCP destination port
        (0x35, 0, 3, first_port),    # jge first, else drop
        (0x25, 2, 0, last_port),     # jgt last → drop
        (0x50, 0, 0, 13),            # ldb [x+13]          TCP flags
        (0x45, 1, 0, flags),         # jset flags → accept
        (0x06, 0, 0, 0),             # ret 0 (drop)
        (0x06, 0, 0, 0xFFFF),        # ret 65535 (accept)
    ]
    return b"".join(struct.pack("HBBI", *insn) for insn in program)


def reply_filter6(first_port: int, last_port: int, flags: int = TH_ACK) -> bytes:
    """``reply_filter`` for an ``AF_INET6`` raw IPPROTO_TCP socket, which is handed the TCP
    segment without the IPv6 header (the sender's address comes with ``recvfrom``): the
    same tests at offsets from 0."""
    program = [
        (0x28, 0, 0, 2),             # ldh [2]             TCP destination port
        (0x35, 0, 3, first_port),    # jge first, else drop
        (0x25, 2, 0, last_port),     # jgt last → drop
        (0x30, 0, 0, 13),            # ldb [13]            TCP flags
        (0x45, 1, 0, flags),         # jset flags → accept
        (0x06, 0, 0, 0),             # ret 0 (drop)
        (0x06, 0, 0, 0xFFFF),        # ret 65535 (accept)
    ]
    return b"".join(struct.pack("HBBI", *insn) for insn in program)


def attach_filter(sock: Any, program: bytes) -> None:
    """SO_ATTACH_FILTER; the kernel copies the program, so the buffer may go away."""
    code = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


_UNSPEC = ctypes.create_string_buffer(16)  # a sockaddr of family AF_UNSPEC (0)


def _disconnect(sock: Any) -> None:
    """Dissolve a UDP socket's association, which also forgets the local address its
    connect picked, so that the next connect picks afresh (connect(2) to AF_UNSPEC; the
    socket module cannot name that address, hence libc)."""
    if LIBC.connect(sock.fileno(), _UNSPEC, 16) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class SourceAddresses:
    """The source address the routing table picks for a destination, learnt by
    connecting a UDP socket (which sends nothing) once per destination /24, or /64 for
    IPv6 (where the /64 is the usual unit of routing, and every address is one host).

    One socket per family serves every lookup (a UDP socket may be connected again), the
    IPv4 one opened at once: a scanner makes this before its raw sockets, so that a
    process short of descriptors has the one it needs for routes already, rather than
    waiting for one its own raw sockets will never free. ``close()`` when done."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], str] = {}
        self._socks: dict[int, Any] = {}
        self._lookup_socket(socket.AF_INET)

    def _lookup_socket(self, family: int) -> Any:
        sock = self._socks.get(family)
        if sock is None:
            # out of descriptors is no missing route: wait for one
            sock = self._socks[family] = with_descriptor(lambda: socket.socket(family, socket.SOCK_DGRAM))
        return sock

    def for_destination(self, dst: str) -> str:
        ip = ipaddress.ip_address(dst)
        key = (ip.version, int(ip) >> (8 if ip.version == 4 else 64))
        src = self._cache.get(key)
        if src is None:
            s = self._lookup_socket(socket.AF_INET if ip.version == 4 else socket.AF_INET6)
            s.connect((dst, 9))
            try:
                src = self._cache[key] = s.getsockname()[0]
            finally:
                _disconnect(s)
        return src

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()
