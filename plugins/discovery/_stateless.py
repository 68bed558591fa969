"""Stateless raw discovery: the privileged path of ``icmp_discovery`` and
``tcp_probe_discovery``, on the SYN scanner's design.

Hosts are read in chunks (config ``concurrency``, else ``CHUNK_HOSTS``). Each try is one
pass over the chunk's silent hosts: packets are patched from precomputed templates into
a ``BatchSender``'s slots and leave up to 256 to a ``sendmmsg`` call, paced by a token
bucket. Receiver greenlets read the replies and match them by a keyed hash alone
(``kit.net.rawping``), so the only state per host is its slot in the chunk: answered or
not, and when its latest try left. After the last try's wait the silent hosts are down.

The sending stays in this process: discovery needs one packet a host (a few for TCP
pings), tens of thousands a second at most, which one process sends and receives.

The rate is an ``AdaptiveRate`` under the configured ``rate`` (the ceiling), steered
by ``kit.net.steer.RateSteering`` as the SYN scanner's is: during a pass by the receive
sockets (their drop counter grows, or their buffer fills: halved; nearly empty for a
while: a quarter more), and after each try by its answers (a retry answered by many
hosts means their first probe or reply was lost: halved). Replies are read a batch per
``recvmmsg`` (``kit.net.rawrecv``). Beyond the configured retries, silent hosts get
further tries (up to ``EXTRA_TRIES``) while the answers suggest some are still lost, or
the receiver dropped replies: a sweep stays exact when the rate was too high for a while.
"""

from __future__ import annotations

import socket as _socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from time import monotonic
from typing import Any, Protocol

import gevent
from gevent.event import Event
from pentora_plugins.discovery._common import Results, latency_ms
from pentora_plugins.discovery._sweep import Answer, Probe
from pentora_plugins.kit.net.ratelimit import AdaptiveRate, TokenBucket
from pentora_plugins.kit.net.rawsend import BATCH, BatchSender
from pentora_plugins.kit.net.steer import EXTRA_TRIES, LossEstimate, PassState, RateSteering

CHUNK_HOSTS = 1 << 16  # hosts whose state is held at once
_SEND_ERRORS_SHOWN = 1


@dataclass(eq=False)
class Slot:
    """One host of the chunk: its probe, packed address and the prober's precomputed
    packet state."""

    probe: Probe
    key: bytes
    state: Any
    sent_at: float = 0.0
    answered: bool = False


class Prober(Protocol):
    """What a raw method supplies: per-host preparation, packets, and reply matching;
    ``receivers``, the batch receivers whose drops and backlog steer the rate."""

    receivers: list[Any]

    def prepare(self, probe: Probe) -> Slot:
        """The host's slot; raise OSError when it cannot be probed (no route)."""

    def variants(self) -> list[Any]:
        """What each try sends a host, in order (ICMP: one echo; TCP: one per port)."""

    def write(self, slot: Slot, variant: Any, attempt: int) -> None:
        """Write one packet into the next free slot of its sender's ``sweep.outbox``."""

    def start(self, sweep: StatelessSweep) -> None:
        """Spawn the receivers (``sweep.spawn``), each calling ``sweep.answered``."""

    def close(self) -> None: ...


class _Counts:
    """The ``SendResult`` interface for an in-process BatchSender: failures are counted
    and the first named, for one warning."""

    def __init__(self) -> None:
        self.sent = 0
        self.up = 0
        self.silent = 0
        self.send_time = 0.0  # seconds spent in send passes: sent / send_time is the rate
        self.failures = 0
        self.first: tuple[int, bytes] = (0, b"")

    def failed(self, code: int, dst: bytes) -> None:
        self.failures += 1
        if self.failures == 1:
            self.first = (code, dst)


class Outbox:
    """A BatchSender and how many of its slots are filled."""

    def __init__(self, sender: BatchSender) -> None:
        self.sender = sender
        self.count = 0

    def next(self, dst: bytes) -> int:
        """The next slot, its destination written; the caller writes the packet."""
        i = self.count
        start = i * self.sender.name_size + self.sender.addr_offset
        self.sender.addresses[start:start + len(dst)] = dst
        self.count += 1
        return i


class StatelessSweep:
    """Chunks of hosts, tries of passes, replies matched as they come."""

    def __init__(self, prober: Prober, results: Results, *, timeout: float, retry: int,
                 rate: float, chunk: int, log: Any, name: str) -> None:
        self.name = name
        self.prober = prober
        self.results = results
        self.timeout = timeout
        self.tries = retry + 1
        self.pace = AdaptiveRate(rate)
        self.bucket = TokenBucket(rate)
        self.steer = RateSteering(self.pace, self.tries, name, log)
        self.steering = PassState(0, monotonic())
        self.loss = LossEstimate()
        self.chunk_size = chunk
        self.log = log
        self.index: dict[bytes, Slot] = {}
        self.pending = 0
        self.all_answered = Event()
        self.outboxes: list[Outbox] = []
        self.counts = _Counts()
        self._greenlets: list[gevent.Greenlet] = []
        self.error: BaseException | None = None
        self.sent = 0
        self.up = 0
        self.silent = 0
        self.send_time = 0.0  # seconds spent in send passes: sent / send_time is the rate

    def spawn(self, fn: Any, *args: Any) -> None:
        self._greenlets.append(gevent.spawn(self._guarded, fn, *args))

    def _guarded(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except gevent.GreenletExit:
            raise
        except BaseException as e:  # noqa: B036 - re-raised by run, in the node's greenlet
            self.error = e
            self.all_answered.set()

    def outbox(self, sender: BatchSender) -> Outbox:
        for box in self.outboxes:
            if box.sender is sender:
                return box
        box = Outbox(sender)
        self.outboxes.append(box)
        return box

    def run(self, probes: Iterable[Probe], skipped: dict[str, int]) -> None:
        try:
            self.prober.start(self)
            for chunk in _chunks(self._slots(probes, skipped), self.chunk_size):
                self._chunk(chunk)
                self._raise()
        finally:
            gevent.killall(self._greenlets, block=True, timeout=2)
            self.prober.close()
        pps = self.sent / self.send_time if self.send_time else 0.0
        self.log.info("{}: {} probes ({:,.0f}/s while sending), {} up, {} silent", self.name,
                      self.sent, pps, self.up, self.silent)
        if self.steer.dropped:
            self.log.info("{}: the receive buffer dropped {} replies; their hosts were probed "
                          "again", self.name, self.steer.dropped)
        if self.counts.failures:
            code, dst = self.counts.first
            where = _socket.inet_ntop(_socket.AF_INET if len(dst) == 4 else _socket.AF_INET6, dst)
            self.log.warning("{} probe(s) could not be sent (the first to {}: {}); those hosts "
                             "count as silent", self.counts.failures, where, _strerror(code))

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _slots(self, probes: Iterable[Probe], skipped: dict[str, int]) -> Iterator[Slot]:
        for count, probe in enumerate(probes, 1):
            if count % 1024 == 0:
                gevent.sleep(0)  # preparing a chunk is CPU work: let the other nodes run
            if probe.address in self.results.hosts:
                continue  # listed twice among the targets: answered already
            try:
                yield self.prober.prepare(probe)
            except OSError as e:
                reason = f"no route ({e.strerror or e})"
                skipped[reason] = skipped.get(reason, 0) + 1

    def _chunk(self, chunk: list[Slot]) -> None:
        self.index = {}
        for slot in chunk:
            self.index.setdefault(slot.key, slot)  # a duplicate in the chunk is probed once
        self.pending = len(self.index)
        self.all_answered.clear()
        self.loss = LossEstimate()
        for attempt in range(self.tries + EXTRA_TRIES):
            if not self.pending:
                break
            before, drops, sent = self.pending, self._drops(), self.sent
            began = monotonic()
            self._send_pass(list(self.index.values()), attempt)
            took = monotonic() - began
            self.send_time += took
            self.all_answered.wait(self.timeout)
            self._raise()
            sent = self.sent - sent
            if not self._after_try(attempt, sent, before - self.pending, self._drops() - drops,
                                   sent / took if took else 0.0):
                break
        index, self.index = self.index, {}
        for slot in index.values():
            if not slot.answered:
                self.silent += 1
                self.results.add(slot.probe, None, "no-response")

    def _drops(self) -> int:
        return sum(r.drops() for r in self.prober.receivers)

    def _set_rate(self, rate: float) -> None:
        self.bucket.rate = rate
        self.bucket.burst = max(1.0, rate / 50)  # the bucket's own default: 20 ms worth

    def _after_try(self, k: int, sent: int, answered: int, dropped: int, achieved: float) -> bool:
        """The rate after a try, and whether another is worth sending (``RateSteering.after_try``)."""
        verdict = self.steer.after_try(k, sent, answered, dropped, achieved, self.loss)
        if verdict.rate is not None:
            self._set_rate(verdict.rate)
        return verdict.again

    def _steer(self) -> None:
        """A look at the receivers every STEER_EVERY of a pass (``RateSteering.look``)."""
        s, now = self.steering, monotonic()
        if not self.steer.due(s, now):
            return
        backlog = max((r.backlog() for r in self.prober.receivers), default=0.0)
        rate = self.steer.look(s, now, self.sent, self._drops(), backlog)
        if rate is not None:
            self._set_rate(rate)

    def _send_pass(self, slots: list[Slot], attempt: int) -> None:
        """One try: every variant to every silent host, at most ``rate`` a second."""
        write = self.prober.write
        old = self.steering
        self.steering = PassState(self._drops(), monotonic(), self.sent, calm=old.calm, cuts=old.cuts)
        limit = self._grant()
        n = 0
        for variant in self.prober.variants():
            for slot in slots:
                if slot.answered:
                    continue
                slot.sent_at = monotonic()
                write(slot, variant, attempt)
                n += 1
                if n >= limit:
                    self._flush()
                    n, limit = 0, self._grant()
        self._flush()

    def _grant(self) -> int:
        """How many packets may leave now (at most a batch), sleeping cooperatively until
        one may; the receivers run meanwhile."""
        want = BATCH if not self.bucket.rate else max(1, min(BATCH, int(self.bucket.burst) // 2))
        while not (granted := self.bucket.take(want)):
            gevent.sleep(self.bucket.delay(want))
        gevent.sleep(0)
        self._steer()
        return granted

    def _flush(self) -> None:
        for box in self.outboxes:
            if box.count:
                box.sender.flush(box.count, self.counts)  # type: ignore[arg-type]
                self.sent += box.count
                box.count = 0

    def answered(self, key: bytes, reason: str, ttl: int | None, received_at: float,
                 mac: str | None = None) -> None:
        """A receiver matched a reply to the host ``key``: it is up (once); ``mac``, its
        hardware address when the reply came over the link layer."""
        slot = self.index.get(key)
        if slot is None or slot.answered:
            return  # a host of an earlier chunk, or the answer to a retry
        slot.answered = True
        self.pending -= 1
        self.up += 1
        self.results.add(slot.probe, Answer(reason, latency_ms(slot.sent_at, received_at), ttl, mac),
                         reason)
        if not self.pending:
            self.all_answered.set()


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _strerror(code: int) -> str:
    import os

    return os.strerror(code) if code else "unknown error"
