"""kit.net.rawping: the templates build the packets scapy builds, checksums included, and
the matchers take only replies that carry this scan's keyed hash."""

from __future__ import annotations

import random
import socket

import pytest
from pentora_plugins.kit.net.rawping import (
    EchoCookie,
    EchoTemplate,
    TcpPing6Matcher,
    TcpPing6Template,
    TcpPingMatcher,
    TcpPingTemplate,
    echo_cookie_of,
    tcp_ping_filter,
    tcp_ping_filter6,
)
from pentora_plugins.kit.net.rawtcp import TH_ACK, TH_SYN, SeqHasher
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import IPv6


@pytest.mark.parametrize("cookie", [0, 1, 0xFFFFFFFF, 0x12345678, 0xFFFF0000])
def test_echo_template_equals_the_request_scapy_builds(cookie: int) -> None:
    template = EchoTemplate(4)
    buf = bytearray(3 * template.size)  # a slot in the middle of a batch
    template.fill(buf, template.size, cookie)
    expected = bytes(ICMP(type=8, id=cookie >> 16, seq=cookie & 0xFFFF) / b"pentora-discovery\0")
    assert bytes(buf[template.size:2 * template.size]) == expected
    assert buf[:template.size] == buf[2 * template.size:] == bytes(template.size)


def test_echo_cookie_is_keyed_and_read_back_from_a_reply() -> None:
    a, b = EchoCookie(b"k" * 16), EchoCookie(b"j" * 16)
    dst = socket.inet_aton("198.18.0.7")
    assert a(dst) == EchoCookie(b"k" * 16)(dst) != b(dst)
    assert a(dst) != a(socket.inet_aton("198.18.0.8"))
    cookie = a(dst)
    echo_reply = bytes(ICMP(type=0, id=cookie >> 16, seq=cookie & 0xFFFF) / b"x")
    assert echo_cookie_of(echo_reply, 4) == cookie
    assert echo_cookie_of(bytes(ICMP(type=8, id=1, seq=2)), 4) is None  # a request
    assert echo_cookie_of(bytes(ICMP(type=3, code=1)), 4) is None  # an error
    assert echo_cookie_of(b"\0\0\0", 4) is None  # too short


@pytest.mark.parametrize(("flags", "scapy_flags", "options"), [
    (TH_SYN, "S", [("MSS", 1460)]),
    (TH_ACK, "A", []),
])
def test_tcp_ping_template_equals_the_packet_scapy_builds(flags: int, scapy_flags: str,
                                                          options: list) -> None:
    rng = random.Random(flags)
    src, dst = "198.19.255.1", "198.18.3.4"
    template = TcpPingTemplate(socket.inet_aton(src), flags, ip_id=99)
    packet, tcp_sum = template.for_destination(socket.inet_aton(dst))
    for _ in range(100):
        sport, dport = rng.randrange(61000, 65000), rng.randrange(1, 65536)
        seq, ack = rng.getrandbits(32), rng.getrandbits(32) if flags == TH_ACK else 0
        buf = bytearray(template.size + 8)
        TcpPingTemplate.fill(buf, 4, packet, tcp_sum, sport, dport, seq, ack)
        expected = bytes(IP(src=src, dst=dst, id=99, ttl=64)
                         / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=scapy_flags,
                               window=1024, options=options))
        assert bytes(buf[4:4 + template.size]) == expected


def segment(src: str, dst: str, sport: int, dport: int, flags: str, seq: int = 0, ack: int = 0) -> bytes:
    return bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack))


def test_syn_ping_matcher_takes_syn_ack_and_rst_ack_with_the_hash_plus_one() -> None:
    hasher = SeqHasher(b"s" * 16)
    matcher = TcpPingMatcher(hasher, TH_SYN, 61000, 61001)
    ours, theirs = "198.19.255.1", "198.18.0.9"
    h = hasher.seq(socket.inet_aton(ours), socket.inet_aton(theirs), 80, 61001)
    their4 = socket.inet_aton(theirs)
    assert matcher.match(segment(theirs, ours, 80, 61001, "SA", ack=h + 1)) == (their4, "syn-ack")
    assert matcher.match(segment(theirs, ours, 80, 61001, "RA", ack=h + 1)) == (their4, "rst")
    assert matcher.match(segment(theirs, ours, 80, 61001, "SA", ack=h)) is None  # wrong ack
    assert matcher.match(segment(theirs, ours, 81, 61001, "SA", ack=h + 1)) is None  # other port
    assert matcher.match(segment(theirs, ours, 80, 61002, "SA", ack=h + 1)) is None  # not our sport
    assert matcher.match(segment(theirs, ours, 80, 61001, "R", seq=h)) is None  # an ACK ping's answer


def test_ack_ping_matcher_takes_a_bare_rst_whose_seq_is_the_hash() -> None:
    hasher = SeqHasher(b"a" * 16)
    matcher = TcpPingMatcher(hasher, TH_ACK, 62000, 62000)
    ours, theirs = "198.19.255.1", "198.18.0.10"
    h = hasher.seq(socket.inet_aton(ours), socket.inet_aton(theirs), 443, 62000)
    assert matcher.match(segment(theirs, ours, 443, 62000, "R", seq=h)) == (socket.inet_aton(theirs), "rst")
    assert matcher.match(segment(theirs, ours, 443, 62000, "R", seq=h + 1)) is None
    assert matcher.match(segment(theirs, ours, 443, 62000, "SA", ack=h + 1)) is None


def test_tcp_ping_filter_is_eight_instructions() -> None:
    assert len(tcp_ping_filter(61000, 61001)) == 8 * 8


@pytest.mark.parametrize(("flags", "scapy_flags", "options"), [
    (TH_SYN, "S", [("MSS", 1440)]),
    (TH_ACK, "A", []),
])
def test_tcp_ping6_template_equals_the_packet_scapy_builds(flags: int, scapy_flags: str,
                                                           options: list) -> None:
    rng = random.Random(flags)
    src, dst = "2001:2:0:ffff::1", "2001:2::3:4"
    template = TcpPing6Template(socket.inet_pton(socket.AF_INET6, src), flags)
    packet, tcp_sum = template.for_destination(socket.inet_pton(socket.AF_INET6, dst))
    for _ in range(100):
        sport, dport = rng.randrange(61000, 65000), rng.randrange(1, 65536)
        seq, ack = rng.getrandbits(32), rng.getrandbits(32) if flags == TH_ACK else 0
        buf = bytearray(template.size + 8)
        TcpPing6Template.fill(buf, 4, packet, tcp_sum, sport, dport, seq, ack)
        expected = bytes(IPv6(src=src, dst=dst, hlim=64)
                         / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=scapy_flags,
                               window=1024, options=options))
        assert bytes(buf[4:4 + template.size]) == expected


def test_tcp_ping6_matcher_checks_the_hash_of_both_addresses() -> None:
    hasher = SeqHasher(b"6" * 16)
    syn, ack = TcpPing6Matcher(hasher, TH_SYN, 61000, 61001), TcpPing6Matcher(hasher, TH_ACK, 61000, 61001)
    ours, theirs = (socket.inet_pton(socket.AF_INET6, a) for a in ("2001:2:0:ffff::1", "2001:2::9"))
    h = hasher.seq(ours, theirs, 80, 61001)

    def seg(flags: str, sport: int = 80, dport: int = 61001, seq: int = 0, ack: int = 0) -> bytes:
        return bytes(TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack))  # no IPv6 header

    assert syn.match(seg("SA", ack=h + 1), ours, theirs) == "syn-ack"
    assert syn.match(seg("RA", ack=h + 1), ours, theirs) == "rst"
    assert syn.match(seg("SA", ack=h), ours, theirs) is None                       # wrong ack
    assert syn.match(seg("SA", ack=h + 1), theirs, ours) is None                   # other pair
    assert syn.match(seg("SA", dport=61002, ack=h + 1), ours, theirs) is None      # not our sport
    assert ack.match(seg("R", seq=h), ours, theirs) == "rst"
    assert ack.match(seg("R", seq=h + 1), ours, theirs) is None
    assert ack.match(seg("SA", ack=h + 1), ours, theirs) is None
    assert syn.match(bytes(13), ours, theirs) is None                              # truncated
    assert len(tcp_ping_filter6(61000, 61001)) == 7 * 8
