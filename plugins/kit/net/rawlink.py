"""Link-layer discovery frames: ARP requests and IPv6 Neighbor Solicitations as prebuilt
templates, the replies read by offset, and the in-kernel filters that keep every other
frame of the link away from the receive sockets.

Hand-written bytes, on purpose: a sweep sends one frame a host, and building each with a
packet library (scapy) costs about a millisecond, which caps neighbour discovery near a
thousand probes a second. Here a frame is its template with the target's address patched
in; a solicitation's ICMPv6 checksum is the precomputed sum of its constant words plus
those of the target and of its solicited-node group (RFC 4861 section 4.3, RFC 4291
section 2.7.1), so the per-host work is a few slices and one fold.

Layouts (offsets from the start of the Ethernet frame):

* ARP request (RFC 826), padded to the 60-byte Ethernet minimum: target protocol address
  at 38-42. A reply's sender MAC is at 22-28, its sender address at 28-32.
* Neighbor Solicitation, 86 bytes: Ethernet 0-14 (to 33:33:ff:XX:XX:XX), IPv6 14-54 (hop
  limit 255, to ff02::1:ffXX:XXXX), ICMPv6 54-86: type 135, checksum at 56, target at
  62-78, the source link-layer address option at 78-86. An advertisement's target is at
  62-78, its options from 78 (the target link-layer address, type 2, among them).
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from pentora_plugins.kit.net.rawtcp import _fold, word_sum

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARP_FRAME = 60         # the Ethernet minimum (without FCS): requests are padded to it
NS_FRAME = 86
ICMPV6_NS, ICMPV6_NA = 135, 136
_IPPROTO_ICMPV6 = 58
_ICMP_LEN = 32         # NS header (8), target (16), source link-layer address option (8)
_OPT_SLLA, _OPT_TLLA = 1, 2
_TPA = slice(38, 42)
_CSUM = struct.Struct("!H")
_TAIL = struct.Struct("!H")


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def solicited_node(address16: bytes) -> bytes:
    """The solicited-node multicast group of a packed IPv6 address: ff02::1:ff and its last
    three bytes (RFC 4291 section 2.7.1)."""
    return b"\xff\x02" + bytes(9) + b"\x01\xff" + address16[13:]


class ArpTemplate:
    """A broadcast ARP who-has from ``mac`` / ``src4``; ``frame(dst4)`` is the request for
    one target."""

    size = ARP_FRAME

    def __init__(self, mac: bytes, src4: bytes) -> None:
        frame = (b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
                 + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)  # Ethernet/IPv4, request
                 + mac + src4 + bytes(6) + bytes(4))
        self.head = frame[:_TPA.start]
        self.tail = frame[_TPA.stop:].ljust(ARP_FRAME - _TPA.stop, b"\0")

    def frame(self, dst4: bytes) -> bytes:
        return self.head + dst4 + self.tail


class NsTemplate:
    """A Neighbor Solicitation from ``mac`` / ``src16`` with a source link-layer address
    option (so the target can answer without soliciting us first); ``frame(target16)`` is
    the one for a target, to its solicited-node group, checksum patched."""

    size = NS_FRAME

    def __init__(self, mac: bytes, src16: bytes) -> None:
        self.mac, self.src16 = mac, src16
        group = solicited_node(bytes(16))  # its last three bytes are each target's
        # hop limit 255: a receiver drops neighbour discovery that crossed a router (RFC 4861)
        self.ip = struct.pack("!IHBB16s", 6 << 28, _ICMP_LEN, _IPPROTO_ICMPV6, 255, src16)
        self.option = bytes((_OPT_SLLA, 1)) + mac
        # The checksum's constant part: the pseudo-header's source, the group's fixed
        # words, the length and next header, the message without its target.
        self._sum = (word_sum(src16) + word_sum(group[:13] + b"\0\0\0") + _ICMP_LEN
                     + _IPPROTO_ICMPV6 + (ICMPV6_NS << 8) + word_sum(self.option))

    def frame(self, target16: bytes) -> bytes:
        low = target16[13:]
        total = self._sum + word_sum(target16) + low[0] + _TAIL.unpack(low[1:])[0]
        return (b"\x33\x33\xff" + low + self.mac + b"\x86\xdd" + self.ip
                + b"\xff\x02" + bytes(9) + b"\x01\xff" + low
                + bytes((ICMPV6_NS, 0)) + _CSUM.pack(_fold(total)) + bytes(4) + target16
                + self.option)


def arp_reply_of(frame: bytes) -> tuple[bytes, str] | None:
    """(sender address, 4 bytes; sender MAC) of an ARP reply (is-at), else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06" or frame[20:22] != b"\x00\x02":
        return None
    return frame[28:32], frame[22:28].hex(":")


def advertisement_of(frame: bytes) -> tuple[bytes, str] | None:
    """(target address, 16 bytes; its MAC) of a Neighbor Advertisement without extension
    headers (as RFC 4861 senders send it), with hop limit 255 and code 0, else None. The
    MAC is the target link-layer address option's, else the frame's source."""
    if (len(frame) < 78 or frame[12:14] != b"\x86\xdd" or frame[20] != _IPPROTO_ICMPV6
            or frame[21] != 255 or frame[54] != ICMPV6_NA or frame[55] != 0):
        return None
    mac = frame[6:12]
    at = 78
    while at + 8 <= len(frame):
        kind, units = frame[at], frame[at + 1]
        if not units:
            break  # a malformed option: length 0 would loop forever (RFC 4861 says drop)
        if kind == _OPT_TLLA:
            mac = frame[at + 2:at + 8]
            break
        at += units * 8
    return frame[62:78], mac.hex(":")


def arp_reply_filter() -> bytes:
    """Classic BPF for an ``ETH_P_ARP`` packet socket: ARP replies only (op 2); the
    requests of every host of the link stay in the kernel."""
    program = [
        (0x28, 0, 0, 20),            # ldh [20]            ARP op
        (0x15, 0, 1, 2),             # jeq 2 (reply), else drop
        (0x06, 0, 0, 0xFFFF),        # ret 65535 (accept)
        (0x06, 0, 0, 0),             # ret 0 (drop)
    ]
    return b"".join(struct.pack("HBBI", *insn) for insn in program)


def advertisement_filter() -> bytes:
    """Classic BPF for an ``ETH_P_IPV6`` packet socket: ICMPv6 Neighbor Advertisements
    without extension headers; the link's other IPv6 traffic stays in the kernel."""
    program = [
        (0x30, 0, 0, 20),            # ldb [20]            IPv6 next header
        (0x15, 0, 3, _IPPROTO_ICMPV6),  # jeq ICMPv6, else drop
        (0x30, 0, 0, 54),            # ldb [54]            ICMPv6 type
        (0x15, 0, 1, ICMPV6_NA),     # jeq advertisement, else drop
        (0x06, 0, 0, 0xFFFF),        # ret 65535 (accept)
        (0x06, 0, 0, 0),             # ret 0 (drop)
    ]
    return b"".join(struct.pack("HBBI", *insn) for insn in program)


def interface_mac(iface: str) -> bytes:
    """The hardware address of ``iface`` as the kernel reports it (sysfs)."""
    with open(f"/sys/class/net/{iface}/address") as f:
        return mac_bytes(f.read().strip())


def packed(address: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)


def fill(buf: Any, offset: int, frame: bytes) -> None:
    """Copy a prepared frame into a ``BatchSender`` slot."""
    buf[offset:offset + len(frame)] = frame
