"""``syn_scanner``: half-open TCP SYN scan on raw sockets.

Stateless sending: every probe's sequence number is a keyed hash of (our address, its
address, its port, our port) (``SeqHasher``), so a receiver greenlet matches a reply by
its ack number alone, with no table of probes sent: SYN-ACK means open, RST closed.
The only per-probe state is one byte per (host, port) of the current chunk of hosts,
needed to retry the silent ones and to call them filtered in the end.

Packets come from ``SynTemplate`` (IPv4 + TCP, checksums patched incrementally) and go
out on an ``IPPROTO_RAW`` socket from forked sender processes (``kit.net.rawsend``), 256 to a
``sendmmsg`` call, while this process's receiver greenlet reads the replies. They come
in on an ``IPPROTO_TCP`` raw socket with a BPF filter that keeps only segments with ACK
set addressed to our source ports, up to 256 a ``recvmmsg`` call (``kit.net.rawrecv``).
On loopback that socket also sees our own SYNs (no ACK: filtered in the kernel).

Rate: a receive buffer filling up (the receiver falls behind), replies it had no room
for (the kernel counts them) and probes a retry gets answers to (they were lost, not
filtered) halve the rate, during a pass as soon as they show (``_steer``); a calm
half second or a try that lost nothing raises it by a quarter, up to ``rate``
(``kit.net.ratelimit.AdaptiveRate``). A retry that finds as much lost after a cut as
before it is not cut again: that loss is the path's, not the rate's. Silent probes are resent after the
timeout, on a new source port; a reply to any try counts. Beyond ``retries``, tries go on
(up to EXTRA_TRIES) while the answers of the tries so far say some are likely still lost
(``_Chunk.lost_left``).

Memory: a chunk of at most CHUNK_PROBES probes is held at once, its hosts in arrays
(``_Chunk``), so a sweep's state does not grow with its range; findings do.

Half-open: our kernel has no socket for the connection, so it answers each SYN-ACK with
an RST, which tears down the half-open connection at the target. Source ports are taken
above Linux's ephemeral range (61000-65000), one per try, so no local socket owns them.

Without root or CAP_NET_RAW the raw sockets cannot be opened: the scan logs a warning
and runs the connect scan instead. IPv6 hosts are always connect-scanned (with a warning).

Outputs: ``open_ports`` (``Port(state="open", method="syn")``, each also emitted as
found) and ``port_states``: the ports that stayed silent after every try
(``state="filtered"``). Closed ports are only counted, in the log.
"""

from __future__ import annotations

import ipaddress
import os
import random
import struct
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import gevent
import voluptuous as vol
from gevent import socket
from pentora_plugins.kit.inputs import INPUT_OPTION, input_contract, iter_hosts, publish_ports
from pentora_plugins.kit.net.fds import with_descriptor
from pentora_plugins.kit.net.hosttime import HOST_TIMEOUT_OPTION, HostClock
from pentora_plugins.kit.net.ratelimit import AdaptiveRate
from pentora_plugins.kit.net.rawrecv import BatchReceiver
from pentora_plugins.kit.net.rawsend import BatchSender, Job, SendPass, SendResult, open_send_socket
from pentora_plugins.kit.net.rawtcp import (
    CSUM,
    PORTS_SEQ,
    TH_ACK,
    TH_RST,
    TH_SYN,
    SeqHasher,
    SourceAddresses,
    SynTemplate,
    attach_filter,
    reply_filter,
)
from pentora_plugins.kit.portspec import port_spec_validator
from pentora_plugins.kit.records import Port
from pentora_plugins.kit.shard import mark_foreign, port_selector, share
from voluptuous import Optional

from pentora import Module, NodeContext
from pentora.schema import Bool, Duration, Int

SPORT_LOW, SPORT_HIGH = 61000, 65000
CHUNK_PROBES = 1 << 20          # probes (hosts x ports) whose state is held at once
RECV_BUFFER = 32 << 20
PROGRESS_EVERY = 0.25           # seconds between progress reports
POLL = 0.002                    # seconds between looks at the sender processes
BACKOFF_EVERY = 0.05            # seconds between two rate cuts for receive drops: the first
                                # cut needs that long to show in the drop counter
BACKLOG_HIGH, BACKLOG_LOW = 0.25, 0.05  # receive buffer fill that lowers / allows raising the rate
STEADY = 0.5                    # seconds of a near-empty buffer before the rate goes up
EXTRA_TRIES = 8                 # tries beyond `retries` while replies are likely still lost
LOST_LEFT = 0.001               # ... that is, while more than this many are expected lost
MIN_EVIDENCE = 100              # answers to a retry that are enough to judge the rate by
LOSS_EVIDENCE = 0.01            # share of a retry's probes answered that means loss, not filtering
# one core is left to the receiver greenlet (the parent process)
SEND_PROCESSES = max(1, min(4, (os.cpu_count() or 2) - 1))
OPEN, CLOSED = 1, 2
FOREIGN = 255  # state of an item another shard probes
_TCP_HEAD = struct.Struct("!HHII")  # source port, destination port, seq, ack
_IP_TAIL = struct.Struct("!H4sI")   # IP checksum, source, destination (bytes 10-20)
_ADDR = struct.Struct("!I")         # a destination in its sockaddr_in


def _source_port(value: object) -> int:
    port = Int(0, SPORT_HIGH)(value)
    if port and port < 1024:
        raise vol.Invalid(f"source_port must be 0 (random) or at least 1024, got {port}")
    return port


_source_port.__name__ = "port"


class ReplyMatcher:
    """Classifies one received IPv4 TCP segment as a reply to one of our probes.

    ``match`` returns (their address as 4 bytes, their port, OPEN or CLOSED) or None
    for anything else: our own SYNs seen on loopback, the kernel's RSTs, other
    connections, and replies whose ack is not our keyed hash + 1.
    """

    def __init__(self, hasher: SeqHasher, first_sport: int, last_sport: int) -> None:
        self.hasher = hasher
        self.first, self.last = first_sport, last_sport
        self._secrets: dict[bytes, int] = {}  # per address pair; bounded

    def match(self, packet: bytes) -> tuple[bytes, int, int] | None:
        if len(packet) < 20:
            return None
        ihl = (packet[0] & 0x0F) << 2
        if len(packet) < ihl + 14:
            return None
        flags = packet[ihl + 13]
        their_port, our_port, _seq, ack = _TCP_HEAD.unpack_from(packet, ihl)
        if not flags & TH_ACK or not self.first <= our_port <= self.last:
            return None
        if flags & TH_SYN:
            state = OPEN
        elif flags & TH_RST:
            state = CLOSED
        else:
            return None
        their4 = packet[12:16]
        pair = packet[16:20] + their4
        secret = self._secrets.get(pair)
        if secret is None:
            if len(self._secrets) >= 65536:
                self._secrets.clear()
            secret = self._secrets[pair] = self.hasher.host_secret(pair[:4], their4)
        if ack != ((secret ^ self.hasher.port_mask(their_port, our_port)) + 1) & 0xFFFFFFFF:
            return None
        return their4, their_port, state


class _Chunk:
    """The destinations probed together, held compactly: per host its address (a 32-bit
    number), the keyed hash of (source, address) and its source's template — 10 bytes in
    arrays, not a Python object each — and per probe one state byte. A chunk holds at most
    CHUNK_PROBES probes, so a scan's memory does not grow with its range.

    ``find`` maps a reply's address to its host: by subtraction when the chunk is one
    range of consecutive addresses (a sweep), by binary search of the addresses when they
    came in ascending order, else of a sorted copy and its permutation."""

    def __init__(self, nports: int) -> None:
        self.nports = nports
        self.dst = array("I")
        self.secret = array("I")
        self.source = array("H")
        self.states = bytearray()
        self.pending = 0
        self._sorted: array[int] | None = None
        self._order: array[int] | None = None
        self._ascending = True
        self._first: int | None = None  # the first address, when the chunk is one range
        self.answers: list[int] = []  # replies that came in during each try
        self.loss = 0.0       # the share of probes a try loses, as the answers suggest
        self.lost = 0.0       # open or closed probes expected still unanswered, lost
        # --host-timeout: the chunk's hosts are probed together, port by port, so their
        # clocks start together, when the chunk's first pass does.
        self.deadline: float | None = None

    def __len__(self) -> int:
        return len(self.dst)

    def add(self, dst: int, secret: int, source: int) -> None:
        if self.dst and dst <= self.dst[-1]:
            self._ascending = False
        self.dst.append(dst)
        self.secret.append(secret)
        self.source.append(source)

    def seal(self) -> None:
        """Done adding: the probe states and the lookup."""
        self.states = bytearray(len(self.dst) * self.nports)
        self.pending = len(self.states)
        n = len(self.dst)
        if n and self._ascending and self.dst[-1] - self.dst[0] == n - 1:
            self._first = self.dst[0]
        if not self._ascending:
            order = sorted(range(len(self.dst)), key=self.dst.__getitem__)
            self._order = array("I", order)
            self._sorted = array("I", (self.dst[i] for i in order))

    def find(self, dst: int) -> int | None:
        if self._first is not None:
            i = dst - self._first
            return i if 0 <= i < len(self.dst) else None
        keys = self.dst if self._sorted is None else self._sorted
        j = bisect_left(keys, dst)
        if j == len(keys) or keys[j] != dst:
            return None
        return j if self._order is None else self._order[j]

    def address(self, i: int) -> str:
        return socket.inet_ntoa(self.dst[i].to_bytes(4, "big"))

    def addresses(self) -> Iterator[str]:
        return (self.address(i) for i in range(len(self.dst)))

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def lost_left(self, answered: int) -> float:
        """After a try that got ``answered`` replies: how many of the silent probes are
        likely answering ports whose probe or reply was lost, rather than filtered.

        On a path that loses a share p of the tries, each retry gets about p times the
        answers of the one before (p is estimated from all the tries so far, so that a
        few replies do not swing it); the answers still to come add up to a·p/(1-p). A
        try with no answers keeps the estimate, times p: after a quiet retry some may
        still be lost, after several hardly any. A first retry with no answer: no loss."""
        self.answers.append(answered)
        if len(self.answers) == 1:
            return 0.0
        earlier = sum(self.answers[:-1])
        self.loss = min(0.9, sum(self.answers[1:]) / earlier) if earlier else 0.5
        if answered:
            self.lost = answered * self.loss / (1 - self.loss)
        else:
            self.lost *= self.loss
        return self.lost


@dataclass
class _Steering:
    """What ``SynScan._steer`` compares with during one pass."""

    drops: int            # the receive socket's drop counter at the last look
    since: float          # the time of the last look
    sent: int = 0         # probes sent by then
    backlog: float = 0.0  # how full the receive buffer was
    calm: float = 0.0     # when the rate last changed
    cuts: int = 0


class SynScan:
    """One scan's sockets, key and state. ``scan_chunk`` probes a chunk of destinations
    (every try, then the wait); findings accumulate in ``open``, ``filtered``, ``closed``."""

    def __init__(self, ctx: NodeContext, config: dict[str, Any], recv_sock: Any, send_sock: Any,
                 total: int | None = None) -> None:
        self.ctx = ctx
        self.total = total  # probes of the first try, when the number of hosts is known
        self.ports: list[int] = list(config["ports"])
        self.port_index = {p: i for i, p in enumerate(self.ports)}
        self.select = port_selector(ctx, self.ports)  # a sharded scan probes its own share only
        self.rate: int = config["rate"]
        self.timeout: float = config["timeout"]
        self.tries = config["retries"] + 1
        # a retry that finds lost replies earns another, up to EXTRA_TRIES more; retries: 0
        # means one try, unless the receiver itself dropped replies
        most = self.tries + EXTRA_TRIES
        self.record_filtered: bool = config["record_filtered"]
        self.late = HostClock(config["host_timeout"])
        base = config["source_port"] or random.randrange(SPORT_LOW, SPORT_HIGH - most)
        # a given source_port is at most 65000: its tries' ports stay below 65536
        self.sports = range(base, base + most)
        self.hasher = SeqHasher()
        self.matcher = ReplyMatcher(self.hasher, base, base + most - 1)
        self.recv_sock, self.send_sock = recv_sock, send_sock
        attach_filter(recv_sock, reply_filter(base, base + most - 1))
        self.receiver = BatchReceiver(recv_sock)
        self.pace = AdaptiveRate(self.rate)
        self.dropped = 0  # replies the kernel dropped at our receive socket
        self._dropped_before = 0  # ... during the chunk's previous try
        self._cut_in_pass = False  # the rate was lowered during the last pass
        self._loss_at_cut: float | None = None  # the path's loss when a retry last cut the rate
        self._told_steady_loss = False
        self.backoffs = 0
        self.ip_id = random.randrange(1, 0xFFFF)
        self.sources = SourceAddresses()
        # per source address: (address, as 4 bytes, packet to nobody, IP sum, TCP sum)
        self.templates: list[tuple[str, bytes, bytes, int, int]] = []
        self._sources: dict[bytes, int] = {}  # destination /24 → template index
        self.chunk: _Chunk | None = None
        self.open: list[Port] = []
        self.reported: set[tuple[str, int]] = set()  # (address, port) of every open port listed
        self.filtered: list[Port] = []
        self.closed = 0
        self.silent = 0  # probes never answered: the filtered ports, listed or not
        self.silent_hosts = 0  # hosts that answered no probe: their ports are not listed
        self.sent = 0
        self.send_time = 0.0  # seconds spent in send passes: sent / send_time is the rate
        self.first_tries = 0  # probes sent on first tries: the progress
        self.next_progress = 0.0
        self.send_errors = 0

    # -- receiving ---------------------------------------------------------------------

    def receive(self) -> None:
        match, record = self.matcher.match, self._record
        for packets in self.receiver.batches():
            for packet in packets:
                hit = match(packet)
                if hit is not None:
                    record(*hit)
            # a receiver that always finds replies waiting would never yield: let the
            # pass see the backlog and steer the rate, the outputs write
            gevent.sleep(0)

    def _record(self, their4: bytes, port: int, state: int) -> None:
        chunk = self.chunk
        hi = chunk.find(int.from_bytes(their4, "big")) if chunk else None
        pi = self.port_index.get(port)
        if chunk is None or hi is None or pi is None:
            return  # a late reply to an earlier chunk, already settled
        i = hi * len(self.ports) + pi
        if chunk.states[i]:
            return  # the answer to a retry
        chunk.states[i] = state
        chunk.pending -= 1
        if state == OPEN:
            self.report_open(Port(host=chunk.address(hi), port=port, protocol="tcp",
                                  state="open", method="syn", reason="syn-ack"))
        else:
            self.closed += 1

    def report_open(self, record: Port, emit: bool = True) -> None:
        """List (and emit) an open port once, however many times it answers: a host
        listed twice among the targets, or in two chunks, is still one host."""
        key = (record.host, record.port)
        if key in self.reported:
            return
        self.reported.add(key)
        self.open.append(record)
        if emit:
            self.ctx.emit(record)

    # -- sending -----------------------------------------------------------------------

    def fill(self, addresses: Iterator[str], hosts: int) -> _Chunk:
        """The next chunk: up to ``hosts`` IPv4 addresses from ``addresses`` (valid ones:
        see ``_ipv4``). Yields to the event loop now and then, a chunk of a million
        hosts taking a second or two."""
        chunk = _Chunk(len(self.ports))
        pton, secret, add = socket.inet_pton, self.hasher.host_secret, chunk.add
        for address in islice(addresses, hosts):
            dst4 = pton(socket.AF_INET, address)
            try:
                source = self._source(address, dst4)
            except OSError as e:
                self.ctx.log.warning(f"syn_scanner: skipping {address}: no route ({e})")
                continue
            add(int.from_bytes(dst4, "big"), secret(self.templates[source][1], dst4), source)
            if not len(chunk) % 4096:
                gevent.sleep(0)
        chunk.seal()
        return chunk

    def _source(self, address: str, dst4: bytes) -> int:
        """The index of the template for the source address the route to ``address``
        takes; looked up once per /24."""
        net = dst4[:3]
        index = self._sources.get(net)
        if index is None:
            src = self.sources.for_destination(address)
            index = next((i for i, t in enumerate(self.templates) if t[0] == src), None)
            if index is None:
                buf, tcp_base = SynTemplate(src, ip_id=self.ip_id).for_destination(b"\0\0\0\0")
                # the IP checksum's sum so far, unfolded by complementing it (RFC 1624)
                ip_base = ~CSUM.unpack_from(buf, 10)[0] & 0xFFFF
                self.templates.append((src, bytes(buf[12:16]), bytes(buf), ip_base, tcp_base))
                index = len(self.templates) - 1
            self._sources[net] = index
        return index

    def scan_chunk(self, chunk: _Chunk) -> None:
        self.chunk = chunk
        if self.late:
            chunk.deadline = time.monotonic() + self.late.limit
        if self.select is not None:  # another shard's items: never sent, never listed
            chunk.pending -= mark_foreign(chunk.states, list(chunk.addresses()), self.ports,
                                          self.select, FOREIGN)
        for k, sport in enumerate(self.sports):
            if not chunk.pending or chunk.out_of_time():
                break
            before, drops = chunk.pending, self.receiver.drops()
            began = time.monotonic()
            sent = self._send_pass(chunk, sport, first=k == 0)
            took = time.monotonic() - began
            self.send_time += took
            self._wait(chunk)
            if not self._after_try(chunk, k, sent, before - chunk.pending, drops,
                                   sent / took if took else 0.0):
                break
        nports = len(self.ports)
        if chunk.pending and chunk.out_of_time():
            # Not every try was sent, or its replies not all awaited: the unanswered ports
            # are unknown, not filtered.
            for i, state in enumerate(chunk.states):
                if not state:
                    self.late.skip(chunk.address(i // nports))
            self.chunk = None
            return
        self.silent += chunk.pending
        if self.record_filtered and chunk.pending:
            self._list_filtered(chunk)
        self.chunk = None

    def _list_filtered(self, chunk: _Chunk) -> None:
        """nmap's way: a host that answered on some port has its silent ports listed as
        filtered; a host silent on every port is counted (``silent_hosts``: down, or all
        filtered), not listed port by port, so a sweep of dead space lists nothing."""
        states, nports = chunk.states, len(self.ports)
        for hi in range(len(chunk)):
            row = states[hi * nports:(hi + 1) * nports]
            if 0 not in row:
                continue
            if OPEN not in row and CLOSED not in row:
                self.silent_hosts += 1
                continue
            host = chunk.address(hi)
            self.filtered.extend(Port(host=host, port=self.ports[pi], protocol="tcp", state="filtered",
                                      method="syn", reason="no-response")
                                 for pi, state in enumerate(row) if not state)

    def _after_try(self, chunk: _Chunk, k: int, sent: int, answered: int, drops_before: int,
                   achieved: float) -> bool:
        """Adjust the rate to what a try lost; whether another try is worth sending.

        Lost replies show two ways: the receive socket's drop counter, and a retry that
        gets answers (a probe a host answers now was not filtered then: its probe or
        reply was lost). Both halve the rate; a try that lost nothing raises it again.
        Configured retries are always sent to silent probes; a further try only while
        replies are likely still lost (``_Chunk.lost_left``) or the receiver dropped some."""
        dropped = self.receiver.drops() - drops_before
        self.dropped += dropped
        # answers to a retry that the previous try's drops do not explain: lost on the way
        unexplained = answered - self._dropped_before if k else 0
        self._dropped_before = dropped
        retried = sent and unexplained >= max(MIN_EVIDENCE, LOSS_EVIDENCE * sent)
        # the share of the previous try's replies this retry found lost: the path's loss
        loss = unexplained / chunk.answers[-1] if retried and chunk.answers[-1] else 0.0
        cut, self._cut_in_pass = self._cut_in_pass, False
        if retried and self._loss_at_cut is not None and loss >= 0.5 * self._loss_at_cut:
            # about as much lost as before the last cut (halving the rate of an overflowing
            # queue would have cut its loss by more): the path loses it whatever the rate
            # (a lossy link, not a queue overflowing), and slower would only take longer
            if not self._told_steady_loss:
                self._told_steady_loss = True
                self.ctx.log.info(f"syn_scanner: replies lost (a retry got {answered} answers to "
                                  f"{sent} probes): {loss:.0%} lost, as at a higher rate: the "
                                  f"loss is not the rate's, keeping {self.pace.rate:,.0f}/s")
        elif retried or (dropped and not cut):  # drops seen during the pass were acted on then
            rate = self.pace.lost(achieved)
            self.backoffs += 1
            if retried:
                self._loss_at_cut = loss
            why = (f"a retry got {answered} answers to {sent} probes" if retried else
                   f"{dropped} replies dropped by the receive buffer")
            self.ctx.log.info(f"syn_scanner: replies lost ({why}): rate lowered to {rate:,.0f}/s")
        elif not dropped and not unexplained:
            self.pace.clean()
        # the receiver's own drops say nothing of the path: their answers do not count
        lost = chunk.lost_left(max(0, unexplained) if k else answered)
        if k + 1 < self.tries:
            return True
        return bool(dropped) or lost >= LOST_LEFT

    def _send_pass(self, chunk: _Chunk, sport: int, first: bool) -> int:
        """One try over the chunk from sender processes, while the receiver greenlet
        records the replies; returns the probes sent. The rate is steered during the
        pass (``_steer``)."""
        send = SendPass(self._jobs(chunk, sport), self.pace.rate, SynTemplate.LENGTH, self.send_sock)
        steer = _Steering(self.receiver.drops(), time.monotonic())
        send.start()
        try:
            while send.alive():
                gevent.sleep(POLL)
                if first:
                    self._progress(send.sent())
                self._steer(send, steer)
        finally:
            send.close()
        self.sent += send.sent()
        for address, error in send.errors():
            self.send_errors += 1
            if self.send_errors == 1:
                self.ctx.log.warning(f"syn_scanner: sending to {address} failed: {error}")
        if first:
            self._progress(send.sent(), force=True)
            self.first_tries += send.sent()
        return send.sent()

    def _steer(self, send: SendPass, s: _Steering) -> None:
        """Every BACKOFF_EVERY of a pass: halve the rate when replies were dropped or the
        receive buffer is filling (over BACKLOG_HIGH and growing: the receiver falls
        behind and would drop them soon); raise it by a quarter after STEADY seconds
        with the buffer nearly empty."""
        now = time.monotonic()
        if now - s.since < BACKOFF_EVERY:
            return
        sent, drops, backlog = send.sent(), self.receiver.drops(), self.receiver.backlog()
        achieved = (sent - s.sent) / (now - s.since)
        if drops > s.drops or (backlog > BACKLOG_HIGH and backlog >= s.backlog):
            rate = self.pace.lost(achieved)
            why = (f"{drops - s.drops} replies dropped by the receive buffer" if drops > s.drops
                   else f"the receive buffer is {backlog:.0%} full")
            # the first cut of a pass is news; the steps after it, detail
            (self.ctx.log.debug if s.cuts else self.ctx.log.info)(
                f"syn_scanner: {why}: rate lowered to {rate:,.0f}/s")
            s.cuts += 1
            self.backoffs += 1
            self._cut_in_pass = self._cut_in_pass or drops > s.drops
            send.set_rate(rate)
            s.calm = now
        elif backlog < BACKLOG_LOW and self.pace.rate and now - s.calm >= STEADY:
            send.set_rate(self.pace.clean())
            s.calm = now
        s.drops, s.since, s.sent, s.backlog = drops, now, sent, backlog

    def _jobs(self, chunk: _Chunk, sport: int) -> list[Job]:
        """Split a pass between sender processes: by host when there are enough hosts,
        else by port."""
        n = len(chunk)
        ports = list(enumerate(self.ports))
        k = SEND_PROCESSES
        if n >= k:
            return [self._job(chunk, sport, range(i, n, k), ports) for i in range(k)]
        k = max(1, min(k, len(ports)))
        return [self._job(chunk, sport, range(n), ports[i::k]) for i in range(k)]

    def _job(self, chunk: _Chunk, sport: int, hosts: range, ports: list[tuple[int, int]]) -> Job:
        states, nports, port_mask = chunk.states, len(self.ports), self.hasher.port_mask
        dsts, secrets, sources, templates = chunk.dst, chunk.secret, chunk.source, self.templates
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

    def _progress(self, sent: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now >= self.next_progress:
            self.next_progress = now + PROGRESS_EVERY
            self.ctx.progress(self.first_tries + sent, self.total)

    def _wait(self, chunk: _Chunk) -> None:
        """Until every probe of the chunk is answered, at most ``timeout`` after the last send."""
        deadline = time.monotonic() + self.timeout
        if chunk.deadline is not None:
            deadline = min(deadline, chunk.deadline)
        gevent.sleep(0)
        while chunk.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            gevent.sleep(min(left, POLL))


def open_receive_socket() -> Any:
    """The raw socket replies come in on; PermissionError without root or CAP_NET_RAW.
    Waits for a free descriptor: a busy process scans late, not with the connect scan."""
    recv = with_descriptor(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP))
    for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
        try:
            recv.setsockopt(socket.SOL_SOCKET, option, RECV_BUFFER)
            break
        except OSError:
            continue
    return recv


class SynScanner(Module):
    """Half-open TCP SYN scan on raw sockets; connect scan without privilege."""

    module_type = "syn_scanner"
    description = "half-open TCP SYN scan (raw sockets: root or CAP_NET_RAW, else a connect scan)"
    produces = ("open_ports", "port_states")
    config_schema = {
        Optional("ports", default="top-1000",
                 description="TCP ports to probe (1-1000, 22,80,443, - for all, top-100)"):
            port_spec_validator("tcp"),
        Optional("rate", default=50000,
                 description="most packets per second (lowered while replies are lost), "
                             "0 = as fast as replies are received"): Int(min=0),
        Optional("timeout", default="1s", description="wait for replies after the last probe of a try"):
            Duration(min=0),
        Optional("retries", default=1,
                 description="extra tries for ports that stayed silent; up to 8 more while "
                             "replies are likely still lost"): Int(0, 10),
        Optional("source_port", default=0,
                 description="first source port (one per try); 0 = random in 61000-65000"): _source_port,
        Optional("record_filtered", default=True,
                 description="list silent ports as filtered in port_states (off for huge scans)"): Bool(),
        **HOST_TIMEOUT_OPTION,
        **INPUT_OPTION,
    }

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return input_contract(config, cls.produces)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        hosts = iter_hosts(ctx, config)
        try:
            recv_sock = open_receive_socket()
            try:
                send_sock = open_send_socket()
            except BaseException:
                recv_sock.close()
                raise
        except PermissionError as e:
            # One line, not an error: the connect scan finds the same open ports.
            ctx.log.warning(f"syn_scanner: raw sockets need root or CAP_NET_RAW (euid {os.geteuid()}: "
                            f"{e.strerror}): falling back to a TCP connect scan, which finds the "
                            "same open ports")
            filtered: list[Port] = []
            opened = connect_fallback(ctx, config, (a for a, _ in hosts), filtered)
            publish_ports(ctx, "open_ports", opened, "tcp")
            publish_ports(ctx, "port_states", filtered if config["record_filtered"] else [], "tcp")
            return
        scan = SynScan(ctx, config, recv_sock, send_sock, _probe_count(ctx, config))
        ctx.progress(0, scan.total)  # the planned probes, before the first is sent (--progress)
        for record in ctx.restored_records():  # hosts a killed run of this scan finished (resume)
            scan.report_open(record, emit=False)
        done = ctx.done_items()
        receiver = gevent.spawn(scan.receive)
        v6: list[str] = []
        try:
            per_chunk = max(1, CHUNK_PROBES // max(1, len(scan.ports)))
            todo = self._ipv4(ctx, (a for a, _ in hosts if a not in done), v6)
            while len(chunk := scan.fill(todo, per_chunk)):
                found = len(scan.open)
                scan.scan_chunk(chunk)
                _checkpoint(ctx, chunk, scan.open[found:])
        finally:
            receiver.kill()
            recv_sock.close()
            send_sock.close()
        if v6:
            ctx.log.warning(f"syn_scanner: no raw IPv6 SYN scan; connect-scanning {len(v6)} IPv6 host(s)")
            scan.open += connect_fallback(ctx, config, v6,
                                          scan.filtered if config["record_filtered"] else [])
        pps = scan.sent / scan.send_time if scan.send_time else 0.0
        ctx.log.info(f"syn_scanner: {scan.sent} probes ({pps:,.0f}/s while sending), {len(scan.open)} "
                     f"open, {scan.closed} closed, {scan.silent} filtered")
        if scan.silent_hosts:
            ctx.log.info(f"syn_scanner: {scan.silent_hosts} host(s) answered no probe (down, or "
                         "every port filtered): their ports are not listed in port_states")
        if scan.dropped or scan.backoffs:
            ctx.log.info(f"syn_scanner: {scan.dropped} replies dropped by the receive buffer, "
                         f"rate lowered {scan.backoffs} time(s), to {scan.pace.rate:,.0f}/s at the end")
        late = scan.late.summary("syn_scanner")
        if late:
            ctx.log.warning(late)
        publish_ports(ctx, "open_ports", scan.open, "tcp")
        publish_ports(ctx, "port_states", scan.filtered, "tcp")

    @staticmethod
    def _ipv4(ctx: NodeContext, addresses: Iterable[str], v6: list[str]) -> Iterator[str]:
        """The IPv4 addresses among ``addresses``; IPv6 ones go to ``v6``, others are
        skipped with a warning (as are those with no route)."""
        pton, af = socket.inet_pton, socket.AF_INET
        for address in addresses:
            try:
                pton(af, address)  # strict dotted quad, in C: the common case, quickly
            except OSError:
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    ctx.log.warning(f"syn_scanner: skipping '{address}': not an IP address")
                    continue
                if ip.version == 6:
                    v6.append(address)
                    continue
            yield address


def _checkpoint(ctx: NodeContext, chunk: _Chunk, opened: list[Port]) -> None:
    """Each host of a finished chunk, with its open ports: a resumed scan skips it."""
    per_host: dict[str, list[Port]] = {}
    for port in opened:
        per_host.setdefault(port.host, []).append(port)
    for address in chunk.addresses():
        ctx.checkpoint(address, per_host.get(address, []))


def _probe_count(ctx: NodeContext, config: dict[str, Any]) -> int | None:
    try:
        return share(ctx, len(ctx.get(config["input"])) * len(config["ports"]))
    except TypeError:
        return None


def connect_fallback(ctx: NodeContext, config: dict[str, Any], hosts: Iterable[str],
                     filtered: list[Port]) -> list[Port]:
    """Connect-scan ``hosts`` on ``config['ports']`` with the same timeout, retries and
    rate; returns the open ports (emitted as found), appends filtered ones."""
    from pentora_plugins.portscan.connect_scanner import (
        scan_hosts,  # only needed without privilege, or for IPv6
    )

    return scan_hosts(ctx, config, hosts, filtered=filtered)
