"""The conversation ``banner_grabber`` has with one open TCP port.

A pass over a transport (plain TCP, then TLS when TLS was seen):

1. connect, and read what the service says on its own (the passive read: the full
   ``passive_timeout``, or ``short_passive_timeout`` on a port hinted only for
   client-first protocols such as HTTP or Redis);
2. send the probes that answer selects (``match``), on the same connection when the
   probe says ``connection: same``;
3. unless an answer was recognised (``expect`` of any catalog entry), send the probes
   hinted for the port, then the generic ones, each on a connection of its own (the
   unused passive connection serves the first), running the follow-ups every answer
   selects, until one answer is recognised.

With ``race_probes`` step 3 does not wait for step 1 to end: ``race_delay`` after the
passive connection opened, a rival runs step 3 on connections of its own while the
passive read goes on, its banners held back. The first word heard on the passive
connection ends the rival (its banners are dropped, its connections closed) and the
pass goes on as above, so a service that speaks first gets the same banners either
way. Once the passive read ends silent, or the rival recognises an answer before the
passive connection heard anything, the passive connection is closed and the rival's
banners are the pass's. A rival's answer that looks like a greeting (``Catalog.greeting``:
the service greets every connection) waits for the passive read to end silent before
it counts. A probe sent during the passive wait has ``read_timeout`` beyond the end of
that wait to be answered: a server serving one connection at a time answers it once
the passive connection closes.

An answer recognised as ``tls`` (a ServerHello or alert, or a web server's complaint
about plain HTTP) ends the plain pass; the raw ClientHello probe is sent if it was
not, then a second pass runs through gevent.ssl, whose first connection adds a
``tls_handshake`` banner.

Every read is bounded: the first byte within ``read_timeout``, later ones within
``idle_timeout`` of the previous, the bytes of all reads of the port together by
``max_bytes``, and the whole port by ``deadline``. A server that resets the connection
leaves what it sent before. The deadline stops while the port waits for a file
descriptor: in a process short of them, other ports' connections must close before
the next probe's can open, which makes the scan slower, not the port's banners fewer.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.monkey
from gevent import socket
from pentora_plugins.kit import linear_re
from pentora_plugins.kit.net.fds import FD_PATIENCE, RESOURCE_ERRNOS, with_descriptor
from pentora_plugins.kit.net.tls import client_context, describe, sni_name
from pentora_plugins.kit.probes import Catalog, Probe
from pentora_plugins.kit.records import Banner

from pentora import ModuleError

TLS = "tls"
# what ends a read: a catalog's read_until, or a check's own fixed pattern
Until = re.Pattern[bytes] | linear_re.Pattern[bytes]
HELLO = "tls_client_hello"
# the real poll even when the CLI has monkey-patched select: a zero-timeout look, never a wait
_poll = gevent.monkey.get_original("select", "poll")


@functools.lru_cache(maxsize=1)
def tls_context() -> Any:
    return client_context()


@dataclass(frozen=True)
class GrabOptions:
    connect_timeout: float = 2.0
    read_timeout: float = 2.0
    passive_timeout: float = 1.5
    short_passive_timeout: float = 0.3
    idle_timeout: float = 0.3
    deadline: float = 10.0
    max_bytes: int = 8192
    tls: bool = True
    race_probes: bool = True
    race_delay: float = 0.1


class Conn:
    """One connection of a port; ``closed`` once the peer hung up or failed."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.closed = False
        self.heard: gevent.event.Event | None = None  # set by ``read`` on its first byte

    def readable(self) -> bool:
        """True when bytes (or the peer's close) wait to be read; never blocks."""
        pending = getattr(self.sock, "pending", None)
        try:
            if pending is not None and pending():
                return True
            poller = _poll()
            poller.register(self.sock.fileno(), 1)  # POLLIN
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return False

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True
        return not self.closed

    def read(self, first: float, idle: float, limit: int, until: Until | None) -> bytes:
        buf = bytearray()
        timeout = first
        while len(buf) < limit:
            self.sock.settimeout(timeout)
            try:
                chunk = self.sock.recv(min(65536, limit - len(buf)))
            except TimeoutError:
                break
            except OSError:  # reset, TLS error: keep what came before
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            buf += chunk
            if self.heard is not None:
                self.heard.set()
            if until is not None and until.search(bytes(buf)):
                break
            timeout = idle
        return bytes(buf)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _DeadlineError(Exception):
    """A port's deadline passed."""


class Deadline:
    """The time a port may take, thrown into the greenlet that set it as ``expired``;
    ``paused()`` stops the clock (waits for a descriptor, from any greenlet of the port)."""

    def __init__(self, seconds: float) -> None:
        self.owner = gevent.getcurrent()
        self.expired = _DeadlineError()
        self.left = seconds
        self._pauses = 0
        self._timer: Any = None
        self._closed = False
        self._run()

    def _run(self) -> None:
        self._ends = time.monotonic() + self.left
        self._timer = gevent.get_hub().loop.timer(self.left)
        self._timer.start(self.owner.throw, self.expired)

    @contextlib.contextmanager
    def paused(self) -> Any:
        self._pauses += 1
        if self._pauses == 1 and not self._closed:
            self._timer.close()
            self.left = max(0.0, self._ends - time.monotonic())
        try:
            yield
        finally:
            self._pauses -= 1
            if self._pauses == 0 and not self._closed:
                self._run()

    def close(self) -> None:
        self._closed = True
        self._timer.close()


class PortGrab:
    """Grabs the banners of one (host, port); ``run`` returns them, each also passed to
    ``on_banner`` the moment it is read."""

    def __init__(self, host: str, port: int, hostname: str | None, catalog: Catalog,
                 opts: GrabOptions, on_banner: Callable[[Banner], None] = lambda b: None) -> None:
        self.host, self.port, self.catalog, self.opts = host, port, catalog, opts
        self.sni = sni_name(hostname)
        self.on_banner = on_banner
        self.banners: list[Banner] = []
        self.budget = opts.max_bytes
        self.tls = False
        self.tls_seen = False
        self.unreachable = False
        self._conns: list[Conn] = []
        self._tried: set[str] = set()
        self._told_handshake = False
        self._hold_until = 0.0  # a rival's: when the passive read it races ends
        self._first: Any = None  # the socket of the first connection, opened before the deadline
        self.deadline: Deadline | None = None  # set by ``run``, shared with a rival

    def run(self) -> list[Banner]:
        # The first descriptor is waited for before the deadline starts: a process short of
        # descriptors may delay a port, it must not cost the port its banners.
        try:
            self._first = with_descriptor(self._socket)
        except OSError as e:
            raise ModuleError(f"banner_grabber: no file descriptor came free for {FD_PATIENCE:.0f}s "
                              f"to grab {self.host} port {self.port} ({e.strerror}); raise the "
                              f"open-file limit (ulimit -n) or lower 'concurrency'") from e
        self.deadline = deadline = Deadline(self.opts.deadline)
        try:
            self._pass(tls=False)
            if self.tls_seen and self.opts.tls and not self.unreachable:
                self._pass(tls=True)
        except _DeadlineError as e:
            if e is not deadline.expired:
                raise
        finally:
            deadline.close()
            for conn in self._conns:
                conn.close()
            if self._first is not None:
                self._first.close()
        return self.banners

    # -- a pass --------------------------------------------------------------------

    def _pass(self, tls: bool) -> None:
        self.tls, self._tried = tls, set()
        conn = self._connect()
        if conn is None:
            return
        wait = self._passive_wait()
        if self.opts.race_probes and wait > self.opts.race_delay and self._candidates():
            greeting = self._race(conn, wait)
            if greeting is None:
                return
        else:
            greeting = self._read(conn, wait)
        spare: Conn | None = None
        if greeting:
            self._emit("passive", greeting)
            if self._settle(greeting, conn):
                return
        elif not conn.closed:
            spare = conn
        self._probe(spare)

    def _probe(self, spare: Conn | None, quiet: gevent.event.Event | None = None) -> bool:
        """Send the hinted, then the generic probes (the first on ``spare`` if given)
        until an answer is recognised; True then. ``quiet``, for a rival: set once the
        passive read ended silent; an answer that looks like a greeting waits for it."""
        for probe in self._candidates():
            if self.budget <= 0 or self.unreachable:
                return False
            if probe.name in self._tried:
                continue
            answer, used = self._run(probe, spare)
            spare = None
            if answer and quiet is not None and self.catalog.greeting(answer):
                quiet.wait()  # killed instead when the passive connection hears the greeting
            if answer and used is not None and self._settle(answer, used):
                return True
        return False

    # -- the race --------------------------------------------------------------------

    def _race(self, conn: Conn, wait: float) -> bytes | None:
        """The passive read on ``conn`` raced against a rival sending the probes (module
        doc). Returns the greeting heard on ``conn`` (never empty: silence lets the rival
        finish), or None when the rival's banners were taken and the pass is over."""
        rival = self._rival(wait)
        heard, quiet = gevent.event.Event(), gevent.event.Event()
        conn.heard = heard
        passive = gevent.spawn(self._read, conn, wait)
        probing = gevent.spawn(rival._probe_after, self.opts.race_delay, quiet)
        taken = False
        try:
            gevent.wait([passive, probing, heard], count=1)
            if (probing.ready() and not heard.is_set() and not conn.readable()
                    and probing.get()):  # recognised before the service said a word
                passive.kill()
                conn.close()
                taken = self._take(rival)
                return None
            if heard.is_set():
                probing.kill()
            greeting = passive.get()
            if greeting:
                return greeting
            quiet.set()
            conn.close()  # a server serving one connection at a time turns to the rival's
            probing.get()
            taken = self._take(rival)
            return None
        finally:
            conn.heard = None
            gevent.killall([passive, probing])
            if not taken:
                for c in rival._conns:
                    c.close()

    def _rival(self, wait: float) -> PortGrab:
        rival = PortGrab(self.host, self.port, self.sni, self.catalog, self.opts)
        rival.tls, rival.budget, rival._told_handshake = self.tls, self.budget, self._told_handshake
        rival.deadline = self.deadline
        rival._hold_until = time.monotonic() + wait
        return rival

    def _probe_after(self, delay: float, quiet: gevent.event.Event) -> bool:
        gevent.sleep(delay)  # a service that greets within it is never probed
        return self._probe(None, quiet)

    def _take(self, rival: PortGrab) -> bool:
        """Adopt what ``rival`` found, emitting its banners now, in the order read."""
        self.budget, self._tried = rival.budget, rival._tried
        self.tls_seen |= rival.tls_seen
        self.unreachable |= rival.unreachable
        self._told_handshake |= rival._told_handshake
        self._conns += rival._conns
        for banner in rival.banners:
            self.banners.append(banner)
            self.on_banner(banner)
        return True

    def _patience(self) -> float:
        """Extra wait for an answer while the passive read this rival races goes on."""
        return max(0.0, self._hold_until - time.monotonic())

    def _candidates(self) -> list[Probe]:
        found = self.catalog.hinted(self.port) + self.catalog.generic()
        return [p for p in found if p.runs_over(self.tls)]

    def _passive_wait(self) -> float:
        short = self.catalog.client_first(self.port) or (
            self.tls and not any(p.greets for p in self.catalog.probes if p.hints(self.port)))
        return self.opts.short_passive_timeout if short else self.opts.passive_timeout

    def _settle(self, answer: bytes, conn: Conn) -> bool:
        """Run what ``answer`` selects; True when the pass can stop."""
        protocol = self.catalog.recognise(answer)
        if protocol == TLS and not self.tls:
            self.tls_seen = True
            hello = next((p for p in self.catalog.probes if p.name == HELLO), None)
            if hello is not None and hello.name not in self._tried:
                self._run(hello, None)
            return True
        followed = self._followups(answer, conn)
        return protocol is not None or followed

    def _followups(self, answer: bytes, conn: Conn | None) -> bool:
        """Send the probes ``answer`` selects (and those their answers select); True when
        one of their answers was recognised."""
        recognised = False
        for probe in self.catalog.followups(answer):
            if probe.name in self._tried or not probe.runs_over(self.tls) or self.budget <= 0:
                continue
            reuse = conn if probe.connection == "same" else None
            reply, used = self._run(probe, reuse, trigger=answer)
            if reply:
                recognised = self.catalog.recognise(reply) is not None or recognised
                recognised = self._followups(reply, used) or recognised
        return recognised

    # -- one probe -------------------------------------------------------------------

    def _run(self, probe: Probe, conn: Conn | None, trigger: bytes = b"") -> tuple[bytes, Conn | None]:
        """Send ``probe`` (on ``conn`` if still open, else a new connection) and read its
        answer; emits it as a banner. ``trigger``: the answer that selected the probe."""
        self._tried.add(probe.name)
        if conn is None or conn.closed:
            conn = self._connect()
            if conn is None:
                return b"", None
            if trigger and probe.connection == "same" and probe.greets:
                self._read(conn, self.opts.passive_timeout)  # the greeting we already have
        if not conn.send(probe.build(trigger)):
            return b"", conn
        answer = self._read(conn, self.opts.read_timeout + self._patience(), probe.max_bytes,
                            probe.read_until)
        if answer:
            self._emit(probe.name, trigger + answer if probe.transcript else answer)
        return answer, conn

    def _read(self, conn: Conn, first: float, cap: int | None = None,
              until: Until | None = None) -> bytes:
        limit = min(self.budget, cap or self.budget)
        if limit <= 0:
            return b""
        data = conn.read(first, min(self.opts.idle_timeout, first), limit, until)
        self.budget -= len(data)
        return data

    def _connect(self) -> Conn | None:
        if self.unreachable:
            return None
        sock, self._first = self._first, None
        try:
            if sock is None:
                sock = self._descriptor()
            sock.settimeout(self.opts.connect_timeout)
            sock.connect((self.host, self.port))
        except OSError:
            if sock is not None:
                sock.close()
            self.unreachable = True  # refused or timed out: the port is gone, stop here
            return None
        if self.tls:
            wrapped = self._handshake(sock)
            if wrapped is None:
                return None
            sock = wrapped
        conn = Conn(sock)
        self._conns.append(conn)
        return conn

    def _descriptor(self) -> Any:
        """A socket for the next connection; a wait for a free descriptor stops the deadline.
        The port's connections the peer closed are closed first: theirs may be the one."""
        for conn in self._conns:
            if conn.closed:
                conn.close()
        try:
            return self._socket()
        except OSError as e:
            if e.errno not in RESOURCE_ERRNOS or self.deadline is None:
                raise
        with self.deadline.paused():
            return with_descriptor(self._socket)

    def _socket(self) -> Any:
        return socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)

    def _handshake(self, sock: Any) -> Any:
        try:
            wrapped = tls_context().wrap_socket(sock, server_hostname=self.sni,
                                                do_handshake_on_connect=False)
            wrapped.settimeout(self.opts.read_timeout + self._patience())
            wrapped.do_handshake()
        except (OSError, ValueError):
            sock.close()
            self.unreachable = True  # a TLS port that will not shake hands: nothing to probe
            return None
        if not self._told_handshake:
            self._told_handshake = True
            self._emit("tls_handshake", describe(wrapped))
        return wrapped

    def _emit(self, probe: str, data: bytes | str) -> None:
        # latin-1 maps byte N to code point N: the text holds every byte, unchanged.
        text = data.decode("latin-1") if isinstance(data, bytes) else data
        banner = Banner(host=self.host, port=self.port, protocol="tcp", tls=self.tls,
                        probe=probe, data=text)
        self.banners.append(banner)
        self.on_banner(banner)
