"""The sending jobs of ``syn_scanner``: each writes one try's packets into a sender
process's ``BatchSender`` slots (``kit.net.rawsend``), the hot loop of the scan."""

from __future__ import annotations

import struct
import time
from typing import Any

from pentora_plugins.kit.net.rawsend import BatchSender, Job, SendResult
from pentora_plugins.kit.net.rawtcp import CSUM, PORTS_SEQ, SeqHasher, Syn6Template, SynTemplate
from pentora_plugins.portscan._synchunk import _Chunk, _Chunk6, _ItemChunk

_IP_TAIL = struct.Struct("!H4sI")   # IP checksum, source, destination (bytes 10-20)
_ADDR = struct.Struct("!I")         # a destination in its sockaddr_in
# per source address: (address, as 4 bytes, packet to nobody, IP sum, TCP sum)
Template4 = tuple[str, bytes, bytes, int, int]
_HALVES = struct.Struct("!QQ")      # an IPv6 address as two 64-bit numbers
# per IPv6 source address: (address, as 16 bytes, packet to nobody, TCP sum)
Template6 = tuple[str, bytes, bytes, int]


def job4(chunk: _Chunk, sport: int, hasher: SeqHasher, templates: list[Template4], hosts: range,
         ports: list[tuple[int, int]]) -> Job:
    """The probes of one try to ``hosts`` (indexes in ``chunk``) on ``ports`` ((index,
    port) pairs) not answered yet, from source port ``sport``, as a sender process's job."""
    states, nports, port_mask = chunk.states, chunk.nports, hasher.port_mask
    dsts, secrets, sources = chunk.dst, chunk.secret, chunk.source
    deadline, monotonic = chunk.deadline, time.monotonic
    size = SynTemplate.LENGTH
    pack_ip, pack_ports_seq = _IP_TAIL.pack_into, PORTS_SEQ.pack_into
    pack_csum, pack_addr = CSUM.pack_into, _ADDR.pack_into

    def job(out: BatchSender, pace: Any, result: SendResult) -> None:
        # runs in a sender process: the hot loop of the scan, SynTemplate.for_destination
        # and fill inlined, both checksums patched incrementally
        packets, addresses = out.packets, out.addresses
        n, limit = 0, pace()
        for pi, port in ports:
            mask, head = port_mask(port, sport), sport + port
            for hi in hosts:
                if states[hi * nports + pi]:
                    continue
                off, d = n * size, dsts[hi]
                _, src4, packet, ip_base, tcp_base = templates[sources[hi]]
                packets[off:off + size] = packet
                dsum = (d >> 16) + (d & 0xFFFF)
                total = ip_base + dsum
                total = (total & 0xFFFF) + (total >> 16)
                pack_ip(packets, off + 10, ~(total + (total >> 16)) & 0xFFFF, src4, d)
                seq = secrets[hi] ^ mask
                pack_ports_seq(packets, off + 20, sport, port, seq)
                total = tcp_base + dsum + head + (seq >> 16) + (seq & 0xFFFF)
                total = (total & 0xFFFF) + (total >> 16)
                total = (total & 0xFFFF) + (total >> 16)
                pack_csum(packets, off + 36, ~total & 0xFFFF)
                pack_addr(addresses, n * 16 + 4, d)
                n += 1
                if n == limit:
                    out.flush(n, result)
                    if deadline is not None and monotonic() > deadline:
                        return  # --host-timeout: the chunk's hosts are out of time
                    n, limit = 0, pace()
        out.flush(n, result)
    return job


def job4_items(chunk: _ItemChunk, sport: int, hasher: SeqHasher, templates: list[Template4],
               rows: range, ports: list[int]) -> Job:
    """``job4`` for a chunk of single probes (``_ItemChunk``): each row names its port,
    so the rows are walked once, in their order, instead of ports × hosts. A loop of its
    own: it is the hot loop of a sharded sweep."""
    states, port_of, port_mask = chunk.states, chunk.port, hasher.port_mask
    dsts, secrets, sources = chunk.dst, chunk.secret, chunk.source
    deadline, monotonic = chunk.deadline, time.monotonic
    size = SynTemplate.LENGTH
    pack_ip, pack_ports_seq = _IP_TAIL.pack_into, PORTS_SEQ.pack_into
    pack_csum, pack_addr = CSUM.pack_into, _ADDR.pack_into

    def job(out: BatchSender, pace: Any, result: SendResult) -> None:
        masks = [port_mask(port, sport) for port in ports]  # per port index, once a try
        packets, addresses = out.packets, out.addresses
        n, limit = 0, pace()
        for r in rows:
            if states[r]:
                continue
            pi = port_of[r]
            port, mask = ports[pi], masks[pi]
            off, d = n * size, dsts[r]
            _, src4, packet, ip_base, tcp_base = templates[sources[r]]
            packets[off:off + size] = packet
            dsum = (d >> 16) + (d & 0xFFFF)
            total = ip_base + dsum
            total = (total & 0xFFFF) + (total >> 16)
            pack_ip(packets, off + 10, ~(total + (total >> 16)) & 0xFFFF, src4, d)
            seq = secrets[r] ^ mask
            pack_ports_seq(packets, off + 20, sport, port, seq)
            total = tcp_base + dsum + sport + port + (seq >> 16) + (seq & 0xFFFF)
            total = (total & 0xFFFF) + (total >> 16)
            total = (total & 0xFFFF) + (total >> 16)
            pack_csum(packets, off + 36, ~total & 0xFFFF)
            pack_addr(addresses, n * 16 + 4, d)
            n += 1
            if n == limit:
                out.flush(n, result)
                if deadline is not None and monotonic() > deadline:
                    return  # --host-timeout: the chunk's hosts are out of time
                n, limit = 0, pace()
        out.flush(n, result)
    return job


def job6(chunk: _Chunk6, sport: int, hasher: SeqHasher, templates: list[Template6], hosts: range,
         ports: list[tuple[int, int]]) -> Job:
    """``job4`` for a chunk of IPv6 hosts: ``Syn6Template``'s packets (no IP checksum; the
    TCP one over the IPv6 pseudo-header) into ``sockaddr_in6`` slots. A loop of its own,
    not a shared one with a per-family branch: this is the scan's hot loop."""
    states, nports, port_mask = chunk.states, chunk.nports, hasher.port_mask
    his, los, secrets, dsums, sources = chunk.hi, chunk.lo, chunk.secret, chunk.dsum, chunk.source
    deadline, monotonic = chunk.deadline, time.monotonic
    size, tcp = Syn6Template.LENGTH, Syn6Template.TCP_OFFSET
    pack_dst, pack_ports_seq, pack_csum = _HALVES.pack_into, PORTS_SEQ.pack_into, CSUM.pack_into

    def job(out: BatchSender, pace: Any, result: SendResult) -> None:
        packets, addresses = out.packets, out.addresses
        stride, at = out.name_size, out.addr_offset
        n, limit = 0, pace()
        for pi, port in ports:
            mask, head = port_mask(port, sport), sport + port
            for hi in hosts:
                if states[hi * nports + pi]:
                    continue
                off, high, low = n * size, his[hi], los[hi]
                packets[off:off + size] = templates[sources[hi]][2]
                pack_dst(packets, off + 24, high, low)  # the destination address
                seq = secrets[hi] ^ mask
                pack_ports_seq(packets, off + tcp, sport, port, seq)
                total = templates[sources[hi]][3] + dsums[hi] + head + (seq >> 16) + (seq & 0xFFFF)
                total = (total & 0xFFFF) + (total >> 16)
                total = (total & 0xFFFF) + (total >> 16)
                pack_csum(packets, off + tcp + 16, ~total & 0xFFFF)
                pack_dst(addresses, n * stride + at, high, low)
                n += 1
                if n == limit:
                    out.flush(n, result)
                    if deadline is not None and monotonic() > deadline:
                        return  # --host-timeout: the chunk's hosts are out of time
                    n, limit = 0, pace()
        out.flush(n, result)
    return job
