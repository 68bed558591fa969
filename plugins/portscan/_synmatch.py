"""Reply matching of ``syn_scanner``: which received segments answer our probes."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from pentora_plugins.kit.net.rawtcp import TH_ACK, TH_RST, TH_SYN, SeqHasher

OPEN, CLOSED = 1, 2
_TCP_HEAD = struct.Struct("!HHII")  # source port, destination port, seq, ack
# What a reply's TCP flags say of the probed port, by flags byte: SYN-ACK open, RST-ACK
# closed, anything without ACK (our own SYNs on loopback, the kernel's RSTs) none (0).
_STATE = bytes(0 if not f & TH_ACK else OPEN if f & TH_SYN else CLOSED if f & TH_RST else 0
               for f in range(256))


class ReplyMatcher:
    """Classifies received IPv4 TCP segments as replies to our probes.

    ``matches`` keeps, of a batch of segments, those answering our probes; not our own
    SYNs seen on loopback, the kernel's RSTs, other connections, nor replies whose ack is
    not our keyed hash + 1.
    """

    def __init__(self, hasher: SeqHasher, first_sport: int, last_sport: int) -> None:
        self.hasher = hasher
        self.first, self.last = first_sport, last_sport

    def matches(self, packets: Iterable[bytes]) -> Iterator[tuple[int, int, int]]:
        """(their address as a number, their port, OPEN or CLOSED) of each reply among
        ``packets`` (a received batch). One loop over the batch, not a call per packet:
        this is the receiving side's hot path, where a loopback scan spends its time."""
        first, last = self.first, self.last
        dports, sports = self.hasher.dport_table, self.hasher.sport_table
        pair_secret, unpack, state_of = self.hasher.pair_secret, _TCP_HEAD.unpack_from, _STATE
        pair, secret = b"", 0
        for packet in packets:
            if len(packet) < 20:
                continue
            ihl = (packet[0] & 0x0F) << 2
            if len(packet) < ihl + 14:
                continue
            state = state_of[packet[ihl + 13]]
            if not state:
                continue
            their_port, our_port, _seq, ack = unpack(packet, ihl)
            if not first <= our_port <= last:
                continue
            if packet[12:20] != pair:  # a sweep's replies come host after host
                pair = packet[12:20]
                secret = pair_secret(packet[16:20], packet[12:16])
            if ack == ((secret ^ dports[their_port] ^ sports[our_port]) + 1) & 0xFFFFFFFF:
                yield int.from_bytes(packet[12:16], "big"), their_port, state


class ReplyMatcher6:
    """Classifies one TCP segment read from an ``AF_INET6`` raw socket, which hands it
    over without the IPv6 header, as a reply to one of our probes.

    ``match(segment, secret)``, where ``secret`` is the keyed hash of (our address, the
    sender's address) the chunk holds for the sender (found by the address ``recvmmsg``
    gives), returns (the sender's port, OPEN or CLOSED) or None for anything else: our
    own SYNs seen on loopback, the kernel's RSTs, other connections, and replies whose
    ack is not our keyed hash + 1 (a forged reply, or one to an earlier scan).
    """

    def __init__(self, hasher: SeqHasher, first_sport: int, last_sport: int) -> None:
        self.hasher = hasher
        self.first, self.last = first_sport, last_sport

    def match(self, segment: bytes, secret: int) -> tuple[int, int] | None:
        if len(segment) < 14:
            return None
        their_port, our_port, _seq, ack = _TCP_HEAD.unpack_from(segment)
        state = _STATE[segment[13]]
        if not state or not self.first <= our_port <= self.last:
            return None
        if ack != ((secret ^ self.hasher.port_mask(their_port, our_port)) + 1) & 0xFFFFFFFF:
            return None
        return their_port, state
