"""The connect-scan engine: non-blocking connects driven from one epoll and one greenlet.

``ConnectEngine.scan`` starts connects in batches of up to ``BATCH``, at most ``window``
in flight (``concurrency``, capped by the open-file limit). A connect that the kernel
settles at once (loopback: the handshake or the RST happens inside ``connect()``) is
read back by asking ``connect()`` again, which also resets a refused socket so the same
socket serves the next port: two system calls per closed port. Any other connect is
registered with the epoll, whose descriptor the greenlet waits on through the gevent
hub, with deadlines for the silent ones. Linux only (epoll, reconnectable sockets).
"""

from __future__ import annotations

import _socket  # the C type: socket.socket's Python __init__ costs more than a connect()
import errno
import resource
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.socket
from gevent.monkey import get_original
from pentora_plugins.kit.net.fds import FD_PATIENCE, RESOURCE_ERRNOS, with_descriptor
from pentora_plugins.kit.net.hosttime import HostClock
from pentora_plugins.kit.net.ratelimit import TokenBucket

from pentora import ModuleError

DEFAULT_CONCURRENCY = 2048
BATCH = 256            # connects started between two looks at the epoll
YIELD_EVERY = 0.005    # seconds of work between yields to the hub
PROGRESS_EVERY = 0.25  # seconds between progress reports
FD_MARGIN = 64         # descriptors left to the rest of the process

# The standard library's epoll even when the CLI has monkey-patched ``select`` (which
# removes it): it is never blocked on, its descriptor is waited on through the hub.
_epoll, _EPOLLOUT = get_original("select", ["epoll", "EPOLLOUT"])
_STREAM = _socket.SOCK_STREAM | _socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC
_SOL, _SO_ERROR, _SO_LINGER = _socket.SOL_SOCKET, _socket.SO_ERROR, _socket.SO_LINGER
_LINGER_RST = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left behind
_EINPROGRESS, _EALREADY, _ECONNREFUSED = errno.EINPROGRESS, errno.EALREADY, errno.ECONNREFUSED
_RESOURCE = RESOURCE_ERRNOS  # out of descriptors, buffers or local ports: wait, try again
_NO_ANSWER = frozenset({errno.ETIMEDOUT})
# Connected; or reset by the listener after the handshake, which still makes it open.
_CONNECTED = frozenset({0, errno.EISCONN, errno.ECONNRESET})
_REASONS = {
    errno.EHOSTUNREACH: "host-unreach", errno.ENETUNREACH: "net-unreach",
    errno.EACCES: "admin-prohibited", errno.EPERM: "admin-prohibited",
    errno.EHOSTDOWN: "host-down", errno.ENETDOWN: "net-down",
}

Result = Callable[[str, int, str, str], None]


@dataclass
class ScanStats:
    """What a scan did; ``rate()`` is the achieved connection attempts per second."""

    probes: int = 0
    open: int = 0
    closed: int = 0
    filtered: int = 0
    retried: int = 0
    timed_out: int = 0  # probes left out: their host's --host-timeout had passed
    self_connects: int = 0
    fd_waits: int = 0
    peak_inflight: int = 0
    first_probe: float | None = None
    last_probe: float | None = None
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return self.open + self.closed + self.filtered + self.timed_out

    def rate(self) -> float:
        if self.first_probe is None or self.last_probe is None or self.probes < 2:
            return 0.0
        span = self.last_probe - self.first_probe
        return (self.probes - 1) / span if span > 0 else float("inf")

    def summary(self) -> str:
        late = f", {self.timed_out} not probed (host timeout)" if self.timed_out else ""
        return (f"{self.probes} connects, {self.open} open, {self.closed} closed, "
                f"{self.filtered} filtered{late} ({self.retried} retried, {self.self_connects} "
                f"self-connects, {self.fd_waits} waits for descriptors) in {self.elapsed:.2f}s")


class _Probe:
    """A connect() in flight, watched by the epoll."""

    __slots__ = ("sock", "fam", "host", "port", "attempt", "deadline", "crossed")

    def __init__(self, sock: Any, fam: int, host: str, port: int, attempt: int,
                 deadline: float) -> None:
        self.sock, self.fam, self.host, self.port = sock, fam, host, port
        self.attempt, self.deadline, self.crossed = attempt, deadline, False


def fd_budget(concurrency: int) -> int:
    """``concurrency`` capped by the open-file limit, leaving the process a margin."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return concurrency
    spare = soft - FD_MARGIN if soft > 2 * FD_MARGIN else soft // 2
    return max(1, min(concurrency, spare))


def _probes(targets: Iterable[tuple[str, Iterable[int]]],
            hosts: HostClock | None = None) -> Iterator[tuple[int, str, int]]:
    for host, ports in targets:
        fam = _socket.AF_INET6 if ":" in host else _socket.AF_INET
        if not hosts:
            for port in ports:
                yield fam, host, port
            continue
        for port in ports:  # the host's clock starts with its first probe
            if hosts.expired(host):
                hosts.skip(host)
            else:
                yield fam, host, port


class ConnectEngine:
    """Connect-scans (host, ports) pairs; results go to ``on_result(host, port, state,
    reason)`` for open and filtered ports (closed ones are only counted)."""

    def __init__(self, timeout: float = 1.0, retries: int = 1, rate: float = 0,
                 concurrency: int = DEFAULT_CONCURRENCY, on_result: Result | None = None,
                 on_progress: Callable[[int, int | None], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 host_timeout: HostClock | None = None) -> None:
        self.timeout, self.retries = timeout, retries
        self.hosts = host_timeout if host_timeout else None  # nmap's --host-timeout
        self.limit = self.window = fd_budget(concurrency)
        # Up to 0.1 s of tokens saved: a scan that stalled (the process not scheduled)
        # catches up, and any second of it still stays within 10% of ``rate``.
        self.bucket = TokenBucket(rate, burst=max(1.0, rate / 10), clock=clock)
        # Rate-limited, wake for a few milliseconds' worth of tokens: smooth pacing.
        self.pace = min(BATCH, max(1, int(rate * YIELD_EVERY))) if rate else BATCH
        self.on_result = on_result or (lambda host, port, state, reason: None)
        self.on_progress = on_progress
        self.clock = clock
        self.stats = ScanStats()

    # -- the loop ------------------------------------------------------------------------

    def scan(self, targets: Iterable[tuple[str, Iterable[int]]], total: int | None = None) -> ScanStats:
        """Scan every (host, ports) pair; hosts are IP address strings."""
        self.work, self.total, self.exhausted = _probes(targets, self.hosts), total, False
        self.retry: deque[tuple[int, str, int, int]] = deque()
        self.inflight: dict[int, _Probe] = {}
        self.dests: dict[tuple[str, int], _Probe] = {}
        self.expiry: deque[_Probe] = deque()
        self.spare: dict[int, Any] = {}  # a socket per family, reset after a refused connect
        self.pause_until, self.backoff = 0.0, 0.001
        self.starved_since: float | None = None
        self.ep = with_descriptor(_epoll)  # a busy process may hold every descriptor now
        watcher = gevent.get_hub().loop.io(self.ep.fileno(), 1)
        start = self.last_yield = self.last_report = self.clock()
        self._report(force=True)  # the planned probes, before the first is sent (--progress)
        try:
            self._loop(watcher)
        finally:
            watcher.close()
            for sock in [p.sock for p in self.inflight.values()] + list(self.spare.values()):
                sock.close()
            self.ep.close()
            self.stats.elapsed = self.clock() - start
        self._report(force=True)
        return self.stats

    def _loop(self, watcher: Any) -> None:
        while True:
            started = self._launch()
            events = self.ep.poll(0) if self.inflight else ()
            if events:
                self._collect(events)
            if self.expiry:
                self._expire(self.clock())
            if self.exhausted and not self.retry and not self.inflight:
                return
            if not started and not events:
                self._idle(watcher)
            elif self.clock() - self.last_yield >= YIELD_EVERY:
                gevent.sleep(0)
                self.last_yield = self.clock()
                self._report()

    def _idle(self, watcher: Any) -> None:
        """Sleep in the hub until a connection settles, a deadline passes or tokens come."""
        now = self.clock()
        waits = [self.expiry[0].deadline - now] if self.expiry else []
        room = self.window - len(self.inflight)
        if room > 0 and (self.retry or not self.exhausted):
            waits.append(max(self.pause_until - now, self.bucket.delay(min(room, self.pace))))
        timeout = max(0.0, min(waits)) if waits else 0.0
        if self.inflight:
            try:
                gevent.socket.wait(watcher, timeout, _DeadlineError)
            except _DeadlineError:
                pass
        else:
            gevent.sleep(timeout)
        self.last_yield = self.clock()
        self._report()

    def _report(self, force: bool = False) -> None:
        if self.hosts is not None:
            self.stats.timed_out = self.hosts.total
        now = self.clock()
        if self.on_progress and (force or now - self.last_report >= PROGRESS_EVERY):
            self.last_report = now
            self.on_progress(self.stats.done, self.total)

    # -- starting connects ---------------------------------------------------------------

    def _launch(self) -> int:
        """Start up to a batch of connects; settle those the kernel finishes at once."""
        room = self.window - len(self.inflight)
        if room <= 0 or (self.exhausted and not self.retry):
            return 0
        now = self.clock()
        if now < self.pause_until:
            return 0
        want = self.bucket.take(min(room, BATCH))
        started = closed = 0
        new, spare, retry, work = _socket.socket, self.spare, self.retry, self.work
        # One tight loop: this is where a scan spends its time.
        while started < want:
            if retry:
                fam, host, port, attempt = retry.popleft()
                if self.hosts is not None and self.hosts.expired(host):
                    self.hosts.skip(host)  # its time ran out while the port stayed silent
                    continue
            else:
                item = next(work, None)
                if item is None:
                    self.exhausted = True
                    break
                (fam, host, port), attempt = item, 0
            sock = spare.pop(fam, None)
            if sock is None:
                try:
                    sock = new(fam, _STREAM)
                except OSError as e:
                    if e.errno in _RESOURCE:
                        self._starved(fam, host, port, attempt)
                        break
                    self._finish(host, port, "filtered", errno.errorcode.get(e.errno or 0, "error"))
                    continue
            started += 1
            address = (host, port)
            err = sock.connect_ex(address)
            if err == _EINPROGRESS:
                # Asking again reports how it ended and resets a refused socket for reuse.
                err = sock.connect_ex(address)
                if err == _ECONNREFUSED:
                    spare[fam] = sock
                    closed += 1
                    continue
                if err == _EALREADY:
                    self._watch(sock, fam, host, port, attempt, now)
                    continue
            self._settle(sock, fam, host, port, attempt, err, None)
        self.bucket.give_back(want - started)
        self._count(started, closed, now)
        return started

    def _count(self, started: int, closed: int, now: float) -> None:
        stats = self.stats
        stats.closed += closed
        if started:
            stats.probes += started
            if stats.first_probe is None:
                stats.first_probe = now
            stats.last_probe = now
            self.starved_since = None
            self.backoff = 0.001
            if self.window < self.limit:
                self.window = min(self.limit, self.window + max(1, self.window // 8))

    def _watch(self, sock: Any, fam: int, host: str, port: int, attempt: int, now: float) -> None:
        p = _Probe(sock, fam, host, port, attempt, now + self.timeout)
        fd = sock.fileno()
        self.ep.register(fd, _EPOLLOUT)
        self.inflight[fd] = p
        self.dests[(host, port)] = p
        self.expiry.append(p)
        if len(self.inflight) > self.stats.peak_inflight:
            self.stats.peak_inflight = len(self.inflight)

    def _starved(self, fam: int, host: str, port: int, attempt: int) -> None:
        """No descriptor, buffer or local port: put the port back, hold fewer sockets."""
        self.retry.appendleft((fam, host, port, attempt))
        self.stats.fd_waits += 1
        held = len(self.inflight)
        if held:
            self.window = max(1, held)
            return
        now = self.clock()
        if self.starved_since is None:
            self.starved_since = now
        elif now - self.starved_since > FD_PATIENCE:
            raise ModuleError(f"connect_scanner: no file descriptor or local port came free for "
                              f"{FD_PATIENCE:.0f}s; raise the open-file limit (ulimit -n) or "
                              f"lower 'concurrency'")
        self.pause_until = now + self.backoff
        self.backoff = min(0.1, self.backoff * 2)

    # -- settling ------------------------------------------------------------------------

    def _collect(self, events: list[tuple[int, int]]) -> None:
        inflight, dests = self.inflight, self.dests
        for fd, _ in events:
            p = inflight.pop(fd, None)
            if p is None:
                continue
            sock, p.sock = p.sock, None
            dests.pop((p.host, p.port), None)
            err = sock.getsockopt(_SOL, _SO_ERROR)
            if err == _ECONNREFUSED:
                sock.close()
                self.stats.closed += 1
            else:
                self._settle(sock, p.fam, p.host, p.port, p.attempt, err, p)

    def _expire(self, now: float) -> None:
        expiry = self.expiry
        while expiry and (expiry[0].sock is None or expiry[0].deadline <= now):
            p = expiry.popleft()
            sock = p.sock
            if sock is None:
                continue
            p.sock = None
            del self.inflight[sock.fileno()]
            self.dests.pop((p.host, p.port), None)
            sock.close()
            self._silent(p.fam, p.host, p.port, p.attempt)

    def _settle(self, sock: Any, fam: int, host: str, port: int, attempt: int, err: int,
                probe: _Probe | None) -> None:
        if err in _CONNECTED:
            if self._genuine(sock, host, port, probe):
                self._finish(host, port, "open", "syn-ack")
            else:
                self.stats.self_connects += 1
                self.stats.closed += 1
            return
        sock.close()
        if err in _RESOURCE:
            self._starved(fam, host, port, attempt)
        elif err in _NO_ANSWER:
            self._silent(fam, host, port, attempt)
        else:
            self._finish(host, port, "filtered", _REASONS.get(err) or errno.errorcode.get(err, str(err)))

    def _genuine(self, sock: Any, host: str, port: int, probe: _Probe | None) -> bool:
        """Did the connection reach a listener, not this socket or another probe?"""
        try:
            local = sock.getsockname()[:2]
            peer = sock.getpeername()[:2]
        except OSError:
            local = peer = None
        sock.setsockopt(_SOL, _SO_LINGER, _LINGER_RST)
        sock.close()
        if local is not None and local == peer:
            return False
        if probe is not None and probe.crossed:
            return False
        return local is None or not self._crossed(local, host, port)

    def _crossed(self, local: tuple[str, int], host: str, port: int) -> bool:
        """Another probe in flight targets our local address from (host, port): the two
        SYNs met (a simultaneous open), so neither port has a listener."""
        other = self.dests.get(local)
        if other is None or other.sock is None:
            return False
        try:
            theirs = other.sock.getsockname()[:2]
        except OSError:
            return False
        if theirs != (host, port):
            return False
        other.crossed = True
        return True

    def _silent(self, fam: int, host: str, port: int, attempt: int) -> None:
        if attempt < self.retries:
            self.retry.append((fam, host, port, attempt + 1))
            self.stats.retried += 1
        else:
            self._finish(host, port, "filtered", "no-response")

    def _finish(self, host: str, port: int, state: str, reason: str) -> None:
        if state == "open":
            self.stats.open += 1
        else:
            self.stats.filtered += 1
        self.on_result(host, port, state, reason)


class _DeadlineError(Exception):
    """The hub woke us for a deadline, not for the epoll."""
