"""The probe scheduler shared by every discovery method.

A ``Sweep`` runs one sender greenlet that walks the (lazy) hosts, a timer greenlet that
retries unanswered probes or gives up on them, and whatever receiver greenlets the
transport starts to match answers. At most ``window`` hosts are in flight and at most
``rate`` probes leave per second, so a /8 costs memory in proportion to the window, not
to the target count. Transports (ICMP, TCP connect, ARP) only send and match.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import monotonic
from typing import Any, Protocol

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore
from pentora_plugins.kit.net.ratelimit import TokenBucket

# Send errors worth a short pause and another try rather than giving up on the host.
_BUSY = {errno.ENOBUFS, errno.EAGAIN, errno.EWOULDBLOCK, errno.EADDRNOTAVAIL}
MAX_DEFERRALS = 10


@dataclass(eq=False)
class Probe:
    """One host being probed: the attempt count and the transport's per-host state."""

    address: str
    hostname: str | None
    family: int  # 4 or 6
    attempt: int = 0
    sent_at: float = 0.0  # monotonic time of the latest attempt
    state: Any = None
    deferred: int = 0  # attempts that could not leave (kernel queues full)


@dataclass
class Answer:
    """What a reply told about a host."""

    reason: str
    latency_ms: float | None = None
    ttl: int | None = None
    mac: str | None = None


class Transport(Protocol):
    method: str

    def skip_reason(self, address: str, family: int) -> str | None:
        """Why this transport cannot probe ``address`` (None: it can)."""

    def send(self, probe: Probe, sweep: Sweep) -> None:
        """Send one attempt; raise OSError when the host cannot be reached at all."""

    def discard(self, probe: Probe) -> None:
        """Forget a finished probe (close its sockets, free its sequence numbers)."""

    def close(self) -> None:
        """Release sockets; receiver greenlets are killed by the sweep."""


def wait_for_token(bucket: TokenBucket) -> None:
    """Sleep (cooperatively) until the bucket lets one more probe leave."""
    while not bucket.take(1):
        gevent.sleep(bucket.delay(1))


ResultFn = Callable[[Probe, Answer | None, str], None]


class Sweep:
    """Probe hosts through a transport: windowed, rate-limited, with retries.

    ``on_result(probe, answer, reason)`` is called once per host, from a greenlet:
    with an ``Answer`` when the host answered, else with ``None`` and why not.
    """

    def __init__(self, transport: Transport, *, timeout: float, retry: int, window: int,
                 rate: float, on_result: ResultFn) -> None:
        self.transport = transport
        self.timeout = timeout
        self.retry = retry
        self.on_result = on_result
        self.pending: dict[str, Probe] = {}
        self._deadlines: deque[tuple[float, Probe, int]] = deque()
        self._slots = BoundedSemaphore(window)
        self._bucket = TokenBucket(rate)
        self._timer_wakeup = Event()
        self._done = Event()
        self._sending = True
        self._greenlets: list[gevent.Greenlet] = []
        self.error: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def run(self, probes: Iterable[Probe]) -> None:
        """Probe everything; returns when every host has an outcome."""
        try:
            self.spawn(self._send_all, probes)
            self.spawn(self._expire)
            self._done.wait()
            if self.error is not None:
                raise self.error
        finally:
            gevent.killall(self._greenlets, block=True, timeout=2)
            self.transport.close()

    def spawn(self, fn: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        """A helper greenlet whose failure ends the sweep with its exception."""
        g = gevent.spawn(self._guarded, fn, *args)
        self._greenlets.append(g)
        return g

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except gevent.GreenletExit:
            raise
        except BaseException as e:  # noqa: B036 - handed to the node's greenlet, re-raised there
            if self.error is None:
                self.error = e
            self._done.set()

    # -- sending -------------------------------------------------------------------------

    def _send_all(self, probes: Iterable[Probe]) -> None:
        for count, probe in enumerate(probes, 1):
            if probe.address in self.pending:
                continue  # a duplicate of a host still in flight
            self._slots.acquire()
            self.pending[probe.address] = probe
            self._send(probe)
            if count % 64 == 0:
                gevent.sleep(0)  # let receivers drain their sockets between bursts
        self._sending = False
        self._check_done()

    def _send(self, probe: Probe) -> None:
        wait_for_token(self._bucket)
        if self.pending.get(probe.address) is not probe:
            return
        probe.attempt += 1
        probe.sent_at = monotonic()
        try:
            self.transport.send(probe, self)
        except OSError as e:
            name = errno.errorcode.get(e.errno or 0, str(e)).lower()
            probe.deferred += 1
            if e.errno not in _BUSY or probe.deferred > MAX_DEFERRALS:
                self._finish(probe, None, name)
                return
            # Kernel queues are full (a neighbour table overflowing on a large local
            # sweep): this attempt did not leave. Try it again later and slow down.
            probe.attempt -= 1
            gevent.sleep(0.01)
        # From when the send returned: a transport that waited for descriptors has only
        # just started its attempt, which gets the whole timeout to be answered.
        self._deadlines.append((monotonic() + self.timeout, probe, probe.attempt))
        self._timer_wakeup.set()

    # -- outcomes ------------------------------------------------------------------------

    def answer(self, probe: Probe, answer: Answer) -> None:
        """A receiver matched a reply to ``probe`` (late replies to older attempts count)."""
        if self.pending.get(probe.address) is probe:
            self._finish(probe, answer, answer.reason)

    def _expire(self) -> None:
        while True:
            if not self._deadlines:
                self._timer_wakeup.clear()
                self._timer_wakeup.wait()
                continue
            deadline, probe, attempt = self._deadlines[0]
            delay = deadline - monotonic()
            if delay > 0:
                gevent.sleep(delay)
                continue
            self._deadlines.popleft()
            if self.pending.get(probe.address) is not probe or probe.attempt != attempt:
                continue  # answered, or already retried
            if probe.attempt <= self.retry:
                self._send(probe)
            else:
                self._finish(probe, None, "no-response")

    def _finish(self, probe: Probe, answer: Answer | None, reason: str) -> None:
        del self.pending[probe.address]
        self.transport.discard(probe)
        self._slots.release()
        self.on_result(probe, answer, reason)
        self._check_done()

    def _check_done(self) -> None:
        if not self._sending and not self.pending:
            self._done.set()
