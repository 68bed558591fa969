"""kit.net.rawlink against scapy as the independent oracle: the templates' frames are
byte for byte the ones scapy builds, and replies scapy builds are read by offset."""

from __future__ import annotations

import random
import socket

from pentora_plugins.kit.net.rawlink import (
    ArpTemplate,
    NsTemplate,
    advertisement_of,
    arp_reply_of,
    mac_bytes,
)
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils6 import in6_getnsma, in6_getnsmac

MAC, OTHER = "02:aa:bb:cc:dd:ee", "02:11:22:33:44:55"
SRC4, SRC6 = "198.18.5.1", "2001:2:0:5::1"


def test_solicitations_are_the_frames_scapy_builds_for_any_target() -> None:
    template = NsTemplate(mac_bytes(MAC), socket.inet_pton(socket.AF_INET6, SRC6))
    rng = random.Random(7)  # fixed: a failure names a target that can be rebuilt
    for _ in range(500):
        target = rng.randbytes(16)
        group = in6_getnsma(target)
        want = (Ether(dst=in6_getnsmac(group), src=MAC)
                / IPv6(src=SRC6, dst=socket.inet_ntop(socket.AF_INET6, group), hlim=255)
                / ICMPv6ND_NS(tgt=socket.inet_ntop(socket.AF_INET6, target))
                / ICMPv6NDOptSrcLLAddr(lladdr=MAC))
        assert template.frame(target) == bytes(want), target.hex()


def test_arp_requests_are_the_frames_scapy_builds_padded_to_60_bytes() -> None:
    template = ArpTemplate(mac_bytes(MAC), socket.inet_aton(SRC4))
    for target in ("198.18.5.9", "198.18.5.255", "0.0.0.0"):
        want = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC)
                     / ARP(op=1, hwsrc=MAC, psrc=SRC4, pdst=target)).ljust(60, b"\0")
        assert template.frame(socket.inet_aton(target)) == want


def test_replies_are_read_by_offset() -> None:
    reply = bytes(Ether(src=OTHER, dst=MAC) / ARP(op=2, hwsrc=OTHER, psrc="198.18.5.9", pdst=SRC4))
    assert arp_reply_of(reply) == (socket.inet_aton("198.18.5.9"), OTHER)
    request = bytes(Ether(src=OTHER, dst=MAC) / ARP(op=1, hwsrc=OTHER, psrc="198.18.5.9"))
    assert arp_reply_of(request) is None

    na = Ether(src=MAC, dst=MAC) / IPv6(src="2001:2:0:5::9", dst=SRC6, hlim=255) / ICMPv6ND_NA(
        tgt="2001:2:0:5::9")
    target = socket.inet_pton(socket.AF_INET6, "2001:2:0:5::9")
    # the target link-layer address option names the MAC; without it, the frame's source
    assert advertisement_of(bytes(na / ICMPv6NDOptDstLLAddr(lladdr=OTHER))) == (target, OTHER)
    assert advertisement_of(bytes(na)) == (target, MAC)
    # an advertisement that crossed a router (hop limit below 255) is not valid (RFC 4861)
    forwarded = na.copy()
    forwarded[IPv6].hlim = 64
    assert advertisement_of(bytes(forwarded)) is None
    # an option of length 0 ends the reading instead of looping
    malformed = bytes(na) + bytes((2, 0)) + mac_bytes(OTHER)
    assert advertisement_of(malformed) == (target, MAC)
