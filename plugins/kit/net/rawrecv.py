"""Raw packets received a batch per system call, with the kernel's count of those it
dropped: the receiving side of the raw scanners (``syn_scanner``; stateless discovery).

Why batches: a scan's replies come as fast as its probes go out, and one ``recv`` per
packet through gevent's socket costs more than matching the packet. ``recvmmsg(2)``
fills up to ``batch`` slots in one call (Python's socket module has no binding for it,
hence ctypes, as ``kit.net.rawsend`` does for ``sendmmsg``).

Why drops: when the receiver falls behind, the socket's buffer fills and the kernel
throws replies away. A scan that cannot see that calls the ports filtered; one that can
resends those probes and lowers its rate. ``SO_MEMINFO`` reads the socket's drop
counter at any time; where it is missing (Linux before 4.6), ``SO_RXQ_OVFL`` makes the
kernel attach that counter to each packet queued after a drop, so it is known at the
next batch read.

Why senders: an ``AF_INET6`` raw socket hands over the payload without the IPv6 header,
so the sender's address is only in each message's ``msg_name``; a receiver made with
``name_size`` keeps it (``receive_from``, ``batches_from``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket as _socket
import struct
from collections.abc import Iterator
from typing import Any

from gevent import socket as gsocket
from gevent.socket import wait_read
from pentora_plugins.kit.net._mmsg import LIBC, Iovec, Mmsghdr
from pentora_plugins.kit.net.fds import FD_PATIENCE, with_descriptor

SO_RXQ_OVFL = 40          # linux/asm-generic/socket.h; the socket module lacks both
SO_MEMINFO = 55
SK_MEMINFO_RMEM_ALLOC, SK_MEMINFO_RCVBUF = 0, 1  # indexes in SO_MEMINFO's array of u32:
SK_MEMINFO_DROPS = 8      # bytes queued, the buffer's size, packets dropped
_MEMINFO = 4 * (SK_MEMINFO_DROPS + 1)
MSG_DONTWAIT = 0x40
BATCH = 256
_CMSG_HEADER = struct.Struct("@NiI")  # cmsg_len (size_t), cmsg_level, cmsg_type, then data
_CONTROL = 64             # bytes of ancillary data a slot has room for: one RXQ_OVFL counter


def open_raw_socket(family: int, proto: int, buffer: int,
                    patience: float = FD_PATIENCE) -> Any:
    """A raw (gevent) socket for replies, with a ``buffer``-byte receive buffer (forced
    past ``rmem_max`` where privilege allows: a sweep's replies come in bursts);
    PermissionError without root or CAP_NET_RAW. Waits up to ``patience`` seconds for a
    free descriptor (``kit.net.fds``)."""
    sock = with_descriptor(lambda: gsocket.socket(family, _socket.SOCK_RAW, proto), patience)
    for option in (getattr(_socket, "SO_RCVBUFFORCE", 33), _socket.SO_RCVBUF):
        try:
            sock.setsockopt(_socket.SOL_SOCKET, option, buffer)
            break
        except OSError:
            continue
    return sock


class BatchReceiver:
    """Reads ``sock`` (a raw socket, or any datagram socket) ``batch`` packets at a time,
    each cut to its first ``snap`` bytes (a reply's headers are all a scanner reads).

    ``batches()`` yields lists of packets (bytes) as they come, waiting cooperatively
    (gevent) while there are none; ``drops()`` is the number of packets the kernel
    dropped for want of buffer space since the socket was opened. Where libc has no
    ``recvmmsg`` it reads one packet a call.

    ``name_size`` (e.g. 28, a ``sockaddr_in6``) gives each slot room for the sender's
    address, which ``receive_from`` returns with each packet.
    """

    def __init__(self, sock: Any, snap: int = 128, batch: int = BATCH, name_size: int = 0) -> None:
        self.sock, self.snap, self.batch, self.name_size = sock, snap, batch, name_size
        self._ovfl = 0      # the newest SO_RXQ_OVFL counter seen
        self.calls = 0      # system calls that returned packets: received / calls = mean batch
        self.received = 0
        try:
            sock.setsockopt(_socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            self.counts_drops = True
        except OSError:
            self.counts_drops = False
        self._recvmmsg = getattr(LIBC, "recvmmsg", None)
        self._area = ctypes.create_string_buffer(batch * snap)
        self._control = ctypes.create_string_buffer(batch * _CONTROL)
        self._iov = (Iovec * batch)(*[Iovec(ctypes.addressof(self._area) + i * snap, snap)
                                       for i in range(batch)])
        self._names = ctypes.create_string_buffer(max(1, batch * name_size))
        self._msgs = (Mmsghdr * batch)()
        for i, msg in enumerate(self._msgs):
            if name_size:
                msg.hdr.name = ctypes.addressof(self._names) + i * name_size
            msg.hdr.iov = ctypes.addressof(self._iov[i])
            msg.hdr.iovlen = 1
            msg.hdr.control = ctypes.addressof(self._control) + i * _CONTROL
            msg.hdr.controllen = _CONTROL
            msg.hdr.namelen = name_size
        # The kernel writes the used lengths back into the slots it filled: one memmove
        # of this copy gives them their room again (a ctypes attribute set per slot and
        # call cost a fifth of a loopback scan's receiving).
        self._pristine = bytes(self._msgs)
        self._dirty = 0
        # each slot's msg_len, as 32-bit words of the array: read without a ctypes object
        self._lengths = memoryview(self._msgs).cast("B").cast("I")
        self._stride = ctypes.sizeof(Mmsghdr) // 4
        self._len_at = Mmsghdr.len.offset // 4

    def drops(self) -> int:
        """Packets the kernel dropped on this socket, its buffer full, so far."""
        info = self._meminfo()
        return self._ovfl if info is None else info[SK_MEMINFO_DROPS]

    def backlog(self) -> float:
        """How full the socket's receive buffer is, 0 to 1 (0 where the kernel cannot
        say): a receiver falling behind shows here before it loses anything."""
        info = self._meminfo()
        if info is None or not info[SK_MEMINFO_RCVBUF]:
            return 0.0
        return float(info[SK_MEMINFO_RMEM_ALLOC] / info[SK_MEMINFO_RCVBUF])

    def _meminfo(self) -> tuple[int, ...] | None:
        try:
            info = self.sock.getsockopt(_socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO)
        except OSError:
            return None
        return struct.unpack_from(f"@{SK_MEMINFO_DROPS + 1}I", info) if len(info) >= _MEMINFO else None

    def receive(self) -> list[bytes]:
        """The packets waiting now (at most ``batch``), without blocking; [] when none."""
        n = self._read()
        raw, snap = self._area.raw, self.snap
        lengths, stride, at = self._lengths, self._stride, self._len_at
        return [raw[i * snap:i * snap + min(lengths[i * stride + at], snap)] for i in range(n)]

    def receive_from(self) -> list[tuple[bytes, bytes]]:
        """As ``receive``, each packet with its sender's raw ``sockaddr`` (the first
        ``name_size`` bytes: for ``sockaddr_in6`` the address is at 8-24)."""
        n = self._read()
        raw, names = self._area.raw, self._names.raw
        snap, size = self.snap, self.name_size
        lengths, stride, at = self._lengths, self._stride, self._len_at
        return [(raw[i * snap:i * snap + min(lengths[i * stride + at], snap)],
                 names[i * size:(i + 1) * size]) for i in range(n)]

    def _read(self) -> int:
        """Fill the slots with the packets waiting now; how many."""
        if self._recvmmsg is None:
            # libc's recvfrom, not the socket's: gevent's would wait instead of saying EAGAIN
            namelen = ctypes.c_uint32(self.name_size)
            got = LIBC.recvfrom(self.sock.fileno(), self._area, self.snap, MSG_DONTWAIT,
                                 self._names if self.name_size else None,
                                 ctypes.byref(namelen) if self.name_size else None)
            if got < 0:
                return self._failed(ctypes.get_errno())
            self._msgs[0].len = got
            self.calls += 1
            self.received += 1
            return 1
        if self._dirty:  # the slots the last call filled: room again
            ctypes.memmove(self._msgs, self._pristine, self._dirty * ctypes.sizeof(Mmsghdr))
        n = self._recvmmsg(self.sock.fileno(), self._msgs, self.batch, MSG_DONTWAIT, None)
        if n < 0:
            self._dirty = 0
            return self._failed(ctypes.get_errno())
        self._dirty = n
        if self.counts_drops and n:
            self._read_drops(n)
        self.calls += 1
        self.received += n
        return int(n)

    @staticmethod
    def _failed(err: int) -> int:
        if err in (errno.EAGAIN, errno.EINTR):
            return 0  # nothing waiting, or a signal: the caller waits and reads again
        raise OSError(err, f"receiving from a raw socket: {os.strerror(err)}")

    def batches(self) -> Iterator[list[bytes]]:
        """Batches of packets for as long as the caller iterates, waiting (gevent) for
        the socket to become readable in between."""
        fd = self.sock.fileno()
        while True:
            packets = self.receive()
            if packets:
                yield packets
            else:
                wait_read(fd)

    def batches_from(self) -> Iterator[list[tuple[bytes, bytes]]]:
        """As ``batches``, of ``receive_from``'s (packet, sender) pairs."""
        fd = self.sock.fileno()
        while True:
            packets = self.receive_from()
            if packets:
                yield packets
            else:
                wait_read(fd)

    def _read_drops(self, n: int) -> None:
        # The counter is cumulative: the last packet of the batch that carries one has
        # the newest value. Packets queued before any drop carry none.
        for i in range(n - 1, -1, -1):
            used = self._msgs[i].hdr.controllen
            if used < _CMSG_HEADER.size + 4:
                continue
            start = i * _CONTROL
            data = ctypes.string_at(ctypes.addressof(self._control) + start, used)
            length, level, kind = _CMSG_HEADER.unpack_from(data)
            if level == _socket.SOL_SOCKET and kind == SO_RXQ_OVFL and length >= _CMSG_HEADER.size + 4:
                (count,) = struct.unpack_from("@I", data, _CMSG_HEADER.size)
                self._ovfl = max(self._ovfl, count)
                return
