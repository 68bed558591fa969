"""The scan of ``syn_scanner`` (see its doc string): one scan's sockets, key, chunks,
tries and rate."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

import gevent
from gevent import socket
from pentora_plugins.kit.net.hosttime import HostClock
from pentora_plugins.kit.net.ratelimit import AdaptiveRate
from pentora_plugins.kit.net.rawrecv import BatchReceiver
from pentora_plugins.kit.net.rawsend import Job, SendPass
from pentora_plugins.kit.net.rawtcp import (
    CSUM,
    SeqHasher,
    SourceAddresses,
    Syn6Template,
    SynTemplate,
    attach_filter,
    reply_filter,
    reply_filter6,
    word_sum,
)
from pentora_plugins.kit.net.steer import EXTRA_TRIES, RateSteering
from pentora_plugins.kit.net.steer import LOST_LEFT as LOST_LEFT  # named by the tests
from pentora_plugins.kit.net.steer import STEADY as STEADY  # named by the tests
from pentora_plugins.kit.net.steer import PassState as _Steering
from pentora_plugins.kit.records import Port
from pentora_plugins.kit.shard import mark_foreign, port_selector
from pentora_plugins.portscan._synchunk import _HALVES, _Chunk, _Chunk6, _ItemChunk
from pentora_plugins.portscan._synmatch import CLOSED, OPEN, ReplyMatcher, ReplyMatcher6
from pentora_plugins.portscan._synsend import Template4, Template6, job4, job4_items, job6

from pentora import NodeContext

SPORT_LOW, SPORT_HIGH = 61000, 65000
PROGRESS_EVERY = 0.25           # seconds between progress reports
POLL = 0.002                    # seconds between looks at the sender processes
_SOCKADDR_IN6 = 28  # bytes of a sender's address a receive slot keeps
# one core is left to the receiver greenlet (the parent process)
SEND_PROCESSES = max(1, min(4, (os.cpu_count() or 2) - 1))
FOREIGN = 255  # state of an item another shard probes


class SynScan:
    """One scan's sockets, key and state. ``scan_chunk`` probes a chunk of destinations
    (every try, then the wait); findings accumulate in ``open``, ``filtered``, ``closed``."""

    def __init__(self, ctx: NodeContext, config: dict[str, Any], recv_sock: Any, send_sock: Any,
                 total: int | None = None, v6_socks: tuple[Any, Any] | None = None,
                 sources: SourceAddresses | None = None) -> None:
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
        # IPv6: (receive, send) raw sockets, None where they could not be opened; the
        # receive socket gives no IPv6 header, so the receiver keeps each sender's sockaddr
        self.v6_socks = v6_socks
        self.matcher6 = ReplyMatcher6(self.hasher, base, base + most - 1)
        self.receiver6: BatchReceiver | None = None
        if v6_socks is not None:
            attach_filter(v6_socks[0], reply_filter6(base, base + most - 1))
            self.receiver6 = BatchReceiver(v6_socks[0], name_size=_SOCKADDR_IN6)
        self.rx = self.receiver  # the receiver of the chunk being probed: its drops steer the rate
        self.pace = AdaptiveRate(self.rate)
        self.steering = RateSteering(self.pace, self.tries, "syn_scanner", ctx.log)
        self.ip_id = random.randrange(1, 0xFFFF)
        self.sources = sources or SourceAddresses()
        # per source address: (address, as 4 bytes, packet to nobody, IP sum, TCP sum)
        self.templates: list[Template4] = []
        self._sources: dict[bytes, int] = {}  # destination /24 → template index
        self.templates6: list[Template6] = []
        self._sources6: dict[bytes, int] = {}  # destination /64 → template index
        self.chunk: _Chunk | None = None
        self.open: list[Port] = []
        self.reported: set[tuple[str, int]] = set()  # (address, port) of every open port listed
        self.filtered: list[Port] = []
        self.listed: set[tuple[str, int]] = set()  # (address, port) of every filtered port listed
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
        matches, settle = self.matcher.matches, self._settle
        for packets in self.receiver.batches():
            chunk = self.chunk
            if chunk is not None and chunk.family == 4:  # else late replies, already settled
                find = chunk.find
                for their, port, state in matches(packets):
                    hi = find(their)
                    if hi is not None:
                        settle(chunk, hi, port, state)
            # a receiver that always finds replies waiting would never yield: let the
            # pass see the backlog and steer the rate, the outputs write
            gevent.sleep(0)

    def receive6(self) -> None:
        """The IPv6 replies: the sender's address comes from its sockaddr_in6, the secret
        its ack must match from the chunk's entry for that address."""
        assert self.receiver6 is not None
        match, settle, halves = self.matcher6.match, self._settle, _HALVES.unpack_from
        for packets in self.receiver6.batches_from():
            chunk = self.chunk
            if isinstance(chunk, _Chunk6):
                for segment, name in packets:
                    hi = chunk.find6(*halves(name, 8))
                    if hi is not None and (hit := match(segment, chunk.secret[hi])) is not None:
                        settle(chunk, hi, *hit)
            gevent.sleep(0)

    def _settle(self, chunk: _Chunk, hi: int, port: int, state: int) -> None:
        pi = self.port_index.get(port)
        if pi is None:
            return
        if isinstance(chunk, _ItemChunk):
            found = chunk.slot(hi, pi)
            if found is None:
                return  # a port of that host another shard probes, or another chunk
            i = found
        else:
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

    def chunks(self, addresses: Iterable[str], hosts: int) -> Iterator[_Chunk]:
        """Chunks of up to ``hosts`` addresses of one family each (a chunk's probes share
        one packet layout and socket), from ``addresses``: IPv4 ones, IPv6 ones in
        compressed form (see ``_destinations``). Yields to the event loop now and then, a
        chunk of a million hosts taking a second or two."""
        nports = len(self.ports)
        pending: list[_Chunk] = [_Chunk(nports), _Chunk6(nports)]
        pton, secret = socket.inet_pton, self.hasher.host_secret
        for n, address in enumerate(addresses, 1):
            v6 = ":" in address
            chunk = pending[v6]
            try:
                if v6:
                    dst16 = pton(socket.AF_INET6, address)
                    source = self._source6(address, dst16)
                    assert isinstance(chunk, _Chunk6)
                    high, low = _HALVES.unpack(dst16)
                    chunk.add6(high, low, secret(self.templates6[source][1], dst16), word_sum(dst16), source)
                else:
                    dst4 = pton(socket.AF_INET, address)
                    source = self._source(address, dst4)
                    chunk.add(int.from_bytes(dst4, "big"), secret(self.templates[source][1], dst4), source)
            except OSError as e:
                self.ctx.log.warning(f"syn_scanner: skipping {address}: no route ({e})")
                continue
            if len(chunk) == hosts:
                chunk.seal()
                yield chunk
                pending[v6] = _Chunk6(nports) if v6 else _Chunk(nports)
            if not n % 4096:
                gevent.sleep(0)
        for chunk in pending:
            if len(chunk):
                chunk.seal()
                yield chunk

    def item_chunk(self, probes: Iterable[tuple[str, int]]) -> _ItemChunk:
        """A chunk of single probes, from ``(IPv4 address, port index)`` pairs in
        ascending order of (address, port index): a shard's walk of a ``-Pn`` sweep.
        An address with no route is skipped with a warning, once."""
        chunk = _ItemChunk(len(self.ports))
        pton, af, secret = socket.inet_pton, socket.AF_INET, self.hasher.host_secret
        last, row = "", None
        for n, (address, pi) in enumerate(probes, 1):
            if address != last:
                last, dst4 = address, pton(af, address)
                try:
                    source = self._source(address, dst4)
                except OSError as e:
                    self.ctx.log.warning(f"syn_scanner: skipping {address}: no route ({e})")
                    row = None
                    continue
                row = (int.from_bytes(dst4, "big"), secret(self.templates[source][1], dst4), source)
            if row is not None:
                chunk.add_item(*row, pi)
            if not n % 4096:
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

    def _source6(self, address: str, dst16: bytes) -> int:
        """``_source`` for IPv6: looked up once per /64."""
        net = dst16[:8]
        index = self._sources6.get(net)
        if index is None:
            src = self.sources.for_destination(address)
            index = next((i for i, t in enumerate(self.templates6) if t[0] == src), None)
            if index is None:
                template = Syn6Template(src)
                buf, tcp_base = template.for_destination(bytes(16))
                self.templates6.append((src, template.src16, bytes(buf), tcp_base))
                index = len(self.templates6) - 1
            self._sources6[net] = index
        return index

    def scan_chunk(self, chunk: _Chunk) -> None:
        self.chunk = chunk
        self.rx = self.receiver6 if chunk.family == 6 and self.receiver6 else self.receiver
        if self.late:
            chunk.deadline = time.monotonic() + self.late.limit
        if self.select is not None:  # another shard's items: never sent, never listed
            chunk.pending -= mark_foreign(chunk.states, list(chunk.addresses()), self.ports,
                                          self.select, FOREIGN)
        for k, sport in enumerate(self.sports):
            if not chunk.pending or chunk.out_of_time():
                break
            before, drops = chunk.pending, self.rx.drops()
            began = time.monotonic()
            sent = self._send_pass(chunk, sport, first=k == 0)
            took = time.monotonic() - began
            self.send_time += took
            self._wait(chunk)
            if not self._after_try(chunk, k, sent, before - chunk.pending, drops,
                                   sent / took if took else 0.0):
                break
        if chunk.pending and chunk.out_of_time():
            # Not every try was sent, or its replies not all awaited: the unanswered ports
            # are unknown, not filtered.
            for i, state in enumerate(chunk.states):
                if not state:
                    self.late.skip(chunk.address(chunk.host_of(i)))
            self.chunk = None
            return
        self.silent += chunk.pending
        if self.record_filtered and chunk.pending:
            self._list_filtered(chunk)
        self.chunk = None

    def _list_filtered(self, chunk: _Chunk | _Chunk6) -> None:
        """nmap's way: a host that answered on some port has its silent ports listed as
        filtered; a host silent on every port is counted (``silent_hosts``: down, or all
        filtered), not listed port by port, so a sweep of dead space lists nothing."""
        if isinstance(chunk, _ItemChunk):
            self._list_filtered_items(chunk)
            return
        states, nports = chunk.states, len(self.ports)
        for hi in range(len(chunk)):
            row = states[hi * nports:(hi + 1) * nports]
            if 0 not in row:
                continue
            if OPEN not in row and CLOSED not in row:
                self.silent_hosts += 1
                continue
            host = chunk.address(hi)
            for pi, state in enumerate(row):
                if not state:
                    self._list_silent(host, self.ports[pi])

    def _list_filtered_items(self, chunk: _ItemChunk) -> None:
        """``_list_filtered`` for a chunk of single probes: a host's other ports are in
        other chunks or shards, so a silent probe is listed when its host answered
        another probe of the same chunk, and a host is counted silent per chunk."""
        for row, probes in chunk.host_rows():
            states = {state for state, _ in probes}
            if 0 not in states:
                continue
            if OPEN not in states and CLOSED not in states:
                self.silent_hosts += 1
                continue
            host = chunk.address(row)
            for state, pi in probes:
                if not state:
                    self._list_silent(host, self.ports[pi])

    def _list_silent(self, host: str, port: int) -> None:
        key = (host, port)
        # a host listed again in a later chunk is one host: its ports listed once
        if key in self.listed or key in self.reported:
            return
        self.listed.add(key)
        self.filtered.append(Port(host=host, port=port, protocol="tcp", state="filtered",
                                  method="syn", reason="no-response"))

    @property
    def dropped(self) -> int:
        """Replies the kernel dropped at our receive sockets."""
        return self.steering.dropped

    @property
    def backoffs(self) -> int:
        """Times the rate was lowered."""
        return self.steering.backoffs

    def _after_try(self, chunk: _Chunk, k: int, sent: int, answered: int, drops_before: int,
                   achieved: float) -> bool:
        """The rate after a try, and whether another is worth sending
        (``RateSteering.after_try``): configured retries are always sent to silent
        probes; a further try only while replies are likely still lost or the receiver
        dropped some. The next pass starts at the rate it leaves."""
        dropped = self.rx.drops() - drops_before
        return self.steering.after_try(k, sent, answered, dropped, achieved, chunk.estimate).again

    def _send_pass(self, chunk: _Chunk, sport: int, first: bool) -> int:
        """One try over the chunk from sender processes, while the receiver greenlet
        records the replies; returns the probes sent. The rate is steered during the
        pass (``_steer``)."""
        if isinstance(chunk, _Chunk6):
            assert self.v6_socks is not None  # no IPv6 chunk without them (_destinations)
            size, sock = Syn6Template.LENGTH, self.v6_socks[1]
        else:
            size, sock = SynTemplate.LENGTH, self.send_sock
        send = SendPass(self._jobs(chunk, sport), self.pace.rate, size, sock)
        steer = _Steering(self.rx.drops(), time.monotonic())
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
        """A look at the receiver every STEER_EVERY of a pass (``RateSteering.look``);
        a new rate goes to the pass's senders at once."""
        now = time.monotonic()
        if not self.steering.due(s, now):
            return
        rate = self.steering.look(s, now, send.sent(), self.rx.drops(), self.rx.backlog())
        if rate is not None:
            send.set_rate(rate)

    def _jobs(self, chunk: _Chunk, sport: int) -> list[Job]:
        """Split a pass between sender processes: by host when there are enough hosts,
        else by port."""
        n = len(chunk)
        if isinstance(chunk, _ItemChunk):  # a row a probe: split the rows
            return [job4_items(chunk, sport, self.hasher, self.templates, range(i, n, SEND_PROCESSES),
                               self.ports) for i in range(min(SEND_PROCESSES, max(1, n)))]
        ports = list(enumerate(self.ports))

        def job(hosts: range, ports: list[tuple[int, int]]) -> Job:
            if isinstance(chunk, _Chunk6):
                return job6(chunk, sport, self.hasher, self.templates6, hosts, ports)
            return job4(chunk, sport, self.hasher, self.templates, hosts, ports)

        k = SEND_PROCESSES
        if n >= k:
            return [job(range(i, n, k), ports) for i in range(k)]
        k = max(1, min(k, len(ports)))
        return [job(range(n), ports[i::k]) for i in range(k)]

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
