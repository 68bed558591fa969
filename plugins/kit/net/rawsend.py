"""Raw packets sent from forked processes, a batch per system call: the sending side
of ``syn_scanner``.

Why processes: on loopback (and on any fast link) most of a SYN scan's cost is the
kernel's — each ``sendto`` on a raw socket runs the whole receive path of the probed
stack, its RST or SYN-ACK included, before it returns (about 6 µs a packet) — and the
rest is Python patching packets and classifying replies. In one process these take
turns; native threads would overlap only the kernel part and then fight over the GIL
after every ``sendto``. A forked child has its own interpreter: it sends while the
scan's receiver greenlet, in the parent, classifies replies on another core.

A child touches nothing of gevent's: it runs one plain loop over its share of the
probes (``Job``), on the raw socket the parent opened for the scan (a child of a
process out of descriptors could not open one), reports through a small shared-memory block
(probes sent, failed sends, the first failure) and leaves with ``os._exit``. The
probe states it reads are the copy-on-write snapshot taken at the fork: the probes
already answered when the pass began are skipped, as in a single process.

The child is a copy of a process whose hub holds the scan's greenlets: the receiver
reading the shared raw socket, the outputs' writers. One switch to that hub (a
monkey-patched ``time.sleep`` or socket call is enough) would run them in the child:
replies taken off the socket before the parent sees them, records written twice. So
the child sleeps and sends with the standard library's originals, and a greenlet trace
function kills it, before the target runs, should anything switch greenlets anyway.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import signal
import socket as _socket
import struct
from collections.abc import Callable, Sequence
from typing import Any

import greenlet
from gevent.monkey import get_original
from pentora_plugins.kit.net._mmsg import LIBC, Iovec, Mmsghdr
from pentora_plugins.kit.net.fds import FD_PATIENCE, with_descriptor
from pentora_plugins.kit.net.ratelimit import TokenBucket

BATCH = 256              # probes between rate checks and shared-memory updates
_SLOT = struct.Struct("QQi16s")  # sent, failed, first errno, first failed address (4 or 16 bytes)
_RATE = struct.Struct("d")      # the pass's rate, after the slots: the parent may change it
_SEND_AGAIN = {errno.EAGAIN, errno.ENOBUFS}  # worth one retry a millisecond later
_SOCKADDR_IN = struct.Struct("=HH4s8x")
_SOCKADDR_IN6 = struct.Struct("=HHI16sI")  # family, port, flow info, address, scope id
# The originals even when the CLI has monkey-patched them: in a sender process, the
# gevent versions would switch to the hub copied from the parent (see above).
_sleep = get_original("time", "sleep")
_RawSocket = get_original("socket", "socket")
_os_waitpid = get_original("os", "waitpid")


def open_send_socket(family: int = _socket.AF_INET, patience: float = FD_PATIENCE) -> Any:
    """The blocking ``IPPROTO_RAW`` socket the sender processes share; PermissionError
    without root or CAP_NET_RAW. Opened in the parent, once a descriptor is free.

    With ``AF_INET6`` the packets carry their IPv6 header too: Linux implies
    ``IPV6_HDRINCL`` for ``IPPROTO_RAW``, so the source address is ours to choose.
    ``patience``: seconds to wait for a free descriptor (``kit.net.fds``)."""
    return with_descriptor(lambda: _RawSocket(family, _socket.SOCK_RAW, _socket.IPPROTO_RAW), patience)
EXIT_SWITCHED = 70  # a sender process that tried to switch greenlets: killed, not run


def _no_switch(event: str, args: Any) -> None:
    """Greenlet trace function of a sender process: any switch ends it on the spot."""
    os._exit(EXIT_SWITCHED)


class SendResult:
    """A child's counters, mirrored into its shared-memory slot at every batch."""

    def __init__(self, shm: mmap.mmap, offset: int) -> None:
        self.shm, self.offset = shm, offset
        self.sent = 0
        self.failures = 0
        self.first: tuple[int, bytes] = (0, bytes(16))

    def failed(self, code: int, dst: bytes) -> None:
        """A send the kernel refused (EPERM from a local firewall, EHOSTUNREACH): the
        probe stays unanswered, to be retried or called filtered. ``dst``: the packed
        address, 4 or 16 bytes."""
        self.failures += 1
        if self.failures == 1:
            self.first = (code, dst)

    def flush(self) -> None:
        _SLOT.pack_into(self.shm, self.offset, self.sent, self.failures, *self.first)


class BatchSender:
    """Up to BATCH packets a system call with sendmmsg(2), through ctypes: a quarter of
    the sending time is the per-call overhead of ``sendto``. Packets and their
    destinations are written in place into ``packets`` / ``addresses`` (one slot each);
    where libc has no sendmmsg, ``flush`` sends the slots one by one.

    ``family`` AF_INET6 makes the slots ``sockaddr_in6`` (for a raw ICMPv6 socket): a
    destination's 16 bytes go at ``addr_offset`` of its ``name_size``-byte slot.

    ``family`` AF_PACKET is for a packet socket bound to its interface: frames leave with
    no address (the interface is the socket's), and a slot keeps the probed address,
    ``addr_size`` bytes (4 or 16), only to name it should its send fail."""

    def __init__(self, sock: Any, size: int, family: int = _socket.AF_INET, addr_size: int = 4) -> None:
        self.sock, self.size, self.family = sock, size, family
        self._area = ctypes.create_string_buffer(BATCH * size)
        self._named = family != _socket.AF_PACKET
        if not self._named:
            self.name_size, self.addr_offset, self.addr_size = addr_size, 0, addr_size
            empty = bytes(addr_size)
        elif family == _socket.AF_INET6:
            self.name_size, self.addr_offset, self.addr_size = _SOCKADDR_IN6.size, 8, 16
            empty = _SOCKADDR_IN6.pack(_socket.AF_INET6, 0, 0, bytes(16), 0)
        else:
            self.name_size, self.addr_offset, self.addr_size = _SOCKADDR_IN.size, 4, 4
            empty = _SOCKADDR_IN.pack(_socket.AF_INET, 0, b"\0\0\0\0")
        self._names = ctypes.create_string_buffer(empty * BATCH)
        self.packets = memoryview(self._area).cast("B")
        self.addresses = memoryview(self._names).cast("B")
        self._iov = (Iovec * BATCH)(*[Iovec(ctypes.addressof(self._area) + i * size, size)
                                       for i in range(BATCH)])
        self._msgs = (Mmsghdr * BATCH)()
        for i, msg in enumerate(self._msgs):
            if self._named:  # else NULL: the kernel sends on the bound interface
                msg.hdr.name = ctypes.addressof(self._names) + i * self.name_size
                msg.hdr.namelen = self.name_size
            msg.hdr.iov = ctypes.addressof(self._iov[i])
            msg.hdr.iovlen = 1
        self._sendmmsg = getattr(LIBC, "sendmmsg", None)

    def flush(self, n: int, result: SendResult) -> None:
        """Send slots 0..n-1; a refused packet is counted and skipped, a full buffer waited out."""
        i, waited = 0, False
        while i < n:
            sent = self._send(i, n)
            if sent > 0:
                i, waited = i + sent, False
                continue
            err = ctypes.get_errno() if self._sendmmsg else -sent
            if err in _SEND_AGAIN and not waited:
                _sleep(0.001)
                waited = True
                continue
            start = i * self.name_size + self.addr_offset
            result.failed(err, bytes(self.addresses[start:start + self.addr_size]))
            i, waited = i + 1, False
        result.sent += n

    def _send(self, i: int, n: int) -> int:
        if self._sendmmsg is not None:
            return int(self._sendmmsg(self.sock.fileno(), ctypes.byref(self._msgs[i]), n - i, 0))
        start = i * self.name_size + self.addr_offset
        packet = self.packets[i * self.size:(i + 1) * self.size]
        try:
            if not self._named:
                self.sock.send(packet)
                return 1
            dst = _socket.inet_ntop(self.family, bytes(self.addresses[start:start + self.addr_size]))
            self.sock.sendto(packet, (dst, 0))
        except OSError as e:
            return -(e.errno or 1)
        return 1


# A job sends its share of one pass: job(out, pace, result) writes packets into the
# BatchSender's slots and flushes them; ``pace()`` returns how many probes it may send
# next (at most BATCH).
Job = Callable[[BatchSender, Callable[[], int], SendResult], None]


class SendPass:
    """One try over a chunk, its probes split into ``jobs``, one forked child each,
    sending on ``sock`` (``open_send_socket``). ``rate`` (probes a second, 0 = unlimited)
    is shared evenly between the children; ``set_rate`` changes it while they run (a
    scan that sees replies lost backs off at once, not at the next pass). The senders'
    slots are of the socket's family: ``sockaddr_in6`` ones on an ``AF_INET6`` socket."""

    def __init__(self, jobs: Sequence[Job], rate: float, packet_size: int, sock: Any) -> None:
        self.jobs = jobs
        self.sock = sock
        self.packet_size = packet_size
        self.rate = rate
        # anonymous and shared across fork: the children's slots, then the rate
        self.shm = mmap.mmap(-1, _SLOT.size * len(jobs) + _RATE.size)
        self.set_rate(rate)
        self.pids: dict[int, int] = {}  # pid → job index, while running
        self.status: dict[int, int] = {}
        self._final: list[tuple[int, int, int, bytes]] | None = None

    def start(self) -> None:
        for k, job in enumerate(self.jobs):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child, which never returns
                self._child(job, k)
            self.pids[pid] = k

    def set_rate(self, rate: float) -> None:
        """The pass's rate from now on (0 = unlimited); children read it every batch."""
        self.rate = rate
        _RATE.pack_into(self.shm, _SLOT.size * len(self.jobs), float(rate))

    def alive(self) -> bool:
        for pid in list(self.pids):
            done, status = _reap(pid)
            if done:
                self.status[self.pids.pop(pid)] = os.waitstatus_to_exitcode(status)
        return bool(self.pids)

    def slots(self) -> list[tuple[int, int, int, bytes]]:
        if self._final is not None:
            return self._final
        return [_SLOT.unpack_from(self.shm, k * _SLOT.size) for k in range(len(self.jobs))]

    def sent(self) -> int:
        return sum(slot[0] for slot in self.slots())

    def errors(self) -> list[tuple[str, OSError]]:
        family = self.sock.family
        size = 16 if family == _socket.AF_INET6 else 4
        out = [(_socket.inet_ntop(family, addr[:size]), OSError(code, os.strerror(code)))
               for _, failed, code, addr in self.slots() if failed]
        out += [("-", OSError(_exit_reason(code))) for code in self.status.values() if code]
        return out

    def close(self) -> None:
        """Stop children still running (the scan was cancelled) and reap them."""
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in list(self.pids):
            os.waitpid(pid, 0)
        self.pids.clear()
        self._final = self.slots()
        self.shm.close()

    def _child(self, job: Job, k: int) -> None:
        code = 1
        try:
            greenlet.settrace(_no_switch)
            # the parent's handlers would run gevent code here: a child just dies
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            result = SendResult(self.shm, k * _SLOT.size)
            share = len(self.jobs)
            offset = _SLOT.size * share
            pace = _pacer(lambda: _RATE.unpack_from(self.shm, offset)[0] / share, result)
            job(BatchSender(self.sock, self.packet_size, self.sock.family), pace, result)
            result.flush()
            code = 0
        finally:
            os._exit(code)


def _reap(pid: int) -> tuple[int, int]:
    """``os.waitpid(pid, WNOHANG)`` that never waits for a child already gone.

    gevent's waitpid answers for a forked child from its child watcher, which learns of
    the exit from SIGCHLD through the event loop; on a loaded machine that news was seen
    to never come, the child left a zombie and the scan polled it forever. So when gevent
    says "running", ask the kernel without reaping (waitid with WNOWAIT), and reap an
    exited child ourselves."""
    done, status = os.waitpid(pid, os.WNOHANG)  # gevent's, when the CLI has patched os
    if done:
        return done, status
    try:
        exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return 0, 0  # reaped by the event loop meanwhile: gevent's answer comes next time
    if exited is None:
        return 0, 0
    return _os_waitpid(pid, os.WNOHANG)


def _exit_reason(code: int) -> str:
    if code == EXIT_SWITCHED:
        return (f"sender process exited with {code}: it tried to switch greenlets, which would "
                "have run the scan's greenlets in a copy of the process; its probes stay unsent")
    return f"sender process exited with {code}"


def _pacer(rate_now: Callable[[], float], result: SendResult) -> Callable[[], int]:
    """``pace()`` for a job: how many probes it may send now, sleeping until it may send
    some, at the rate ``rate_now()`` says (read once a grant, so a change applies within
    a batch)."""
    bucket: TokenBucket | None = None
    batch, rate = BATCH, 0.0

    def pace() -> int:
        nonlocal bucket, batch, rate
        result.flush()
        if (now := rate_now()) != rate:
            rate = now
            bucket = TokenBucket(rate) if rate else None
            # half a bucket per grant: time slept past the due moment fills the other
            # half, so oversleeping does not lower the rate
            batch = max(1, min(BATCH, int(bucket.burst) // 2)) if bucket else BATCH
        if bucket is None:
            return batch
        while not (granted := bucket.take(batch)):
            _sleep(bucket.delay(batch))
        return granted

    return pace
