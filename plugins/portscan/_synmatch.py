"""Reply matching of ``syn_scanner``: which received segments answer our probes."""

from __future__ import annotations

import struct

from pentora_plugins.kit.net.rawtcp import TH_ACK, TH_RST, TH_SYN, SeqHasher

OPEN, CLOSED = 1, 2
_TCP_HEAD = struct.Struct("!HHII")  # source port, destination port, seq, ack
# What a reply's TCP flags say of the probed port, by flags byte: SYN-ACK open, RST-ACK
# closed, anything without ACK (our own SYNs on loopback, the kernel's RSTs) none (0).
_STATE = bytes(0 if not f & TH_ACK else OPEN if f & TH_SYN else CLOSED if f & TH_RST else 0
               for f in range(256))


class ReplyMatcher:
    """Classifies one received IPv4 TCP segment as a reply to one of our probes.

    ``match`` returns (their address as 4 bytes, their port, OPEN or CLOSED) or None
    for anything else: our own SYNs seen on loopback, the kernel's RSTs, other
    connections, and replies whose ack is not our keyed hash + 1.
    """

    def __init__(self, hasher: SeqHasher, first_sport: int, last_sport: int) -> None:
        self.hasher = hasher
        self.first, self.last = first_sport, last_sport

    def match(self, packet: bytes) -> tuple[bytes, int, int] | None:
        if len(packet) < 20:
            return None
        ihl = (packet[0] & 0x0F) << 2
        if len(packet) < ihl + 14:
            return None
        state = _STATE[packet[ihl + 13]]
        their_port, our_port, _seq, ack = _TCP_HEAD.unpack_from(packet, ihl)
        if not state or not self.first <= our_port <= self.last:
            return None
        secret = self.hasher.reply_secret(packet)
        if ack != ((secret ^ self.hasher.port_mask(their_port, our_port)) + 1) & 0xFFFFFFFF:
            return None
        return packet[12:16], their_port, state


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
