"""The chunk of ``syn_scanner``: the hosts probed together and one state byte per probe."""

from __future__ import annotations

import struct
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator

from gevent import socket
from pentora_plugins.kit.net.steer import LossEstimate

_HALVES = struct.Struct("!QQ")  # an IPv6 address as two 64-bit numbers


class _Chunk:
    """The destinations probed together, held compactly: per host its address (a 32-bit
    number), the keyed hash of (source, address) and its source's template — 10 bytes in
    arrays, not a Python object each — and per probe one state byte. A chunk holds at most
    CHUNK_PROBES probes, so a scan's memory does not grow with its range.

    ``find`` maps a reply's address to its host: by subtraction when the chunk is one
    range of consecutive addresses (a sweep), by binary search of the addresses when they
    came in ascending order, else of a sorted copy and its permutation.

    An address given twice is held once: ``find`` answers with one copy, so the other
    copy's probes would stay unanswered and be called filtered."""

    family = 4

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
        self.estimate = LossEstimate()  # open or closed probes likely still lost
        # --host-timeout: the chunk's hosts are probed together, port by port, so their
        # clocks start together, when the chunk's first pass does.
        self.deadline: float | None = None

    def __len__(self) -> int:
        return len(self.dst)

    def add(self, dst: int, secret: int, source: int) -> None:
        if self.dst and dst <= self.dst[-1]:
            if dst == self.dst[-1]:
                return  # the same address again, in a row; others go at ``seal``
            self._ascending = False
        self.dst.append(dst)
        self.secret.append(secret)
        self.source.append(source)

    def seal(self) -> None:
        """Done adding: the probe states and the lookup."""
        if not self._ascending:
            order = sorted(range(len(self.dst)), key=self.dst.__getitem__)
            dst = self.dst
            # sorted is stable: of equal addresses, the first given comes first and stays
            again = {order[j] for j in range(1, len(order)) if dst[order[j]] == dst[order[j - 1]]}
            if again:
                self._drop(again)
        self.states = bytearray(len(self.dst) * self.nports)
        self.pending = len(self.states)
        n = len(self.dst)
        if n and self._ascending and self.dst[-1] - self.dst[0] == n - 1:
            self._first = self.dst[0]
        if not self._ascending:
            order = sorted(range(len(self.dst)), key=self.dst.__getitem__)
            self._order = array("I", order)
            self._sorted = array("I", (self.dst[i] for i in order))

    def _drop(self, hosts: set[int]) -> None:
        """Remove the hosts at indexes ``hosts`` (before ``seal``)."""
        n = len(self)
        for name, column in list(vars(self).items()):
            if isinstance(column, array) and len(column) == n:
                setattr(self, name, array(column.typecode, (v for i, v in enumerate(column)
                                                            if i not in hosts)))

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
        return (self.address(i) for i in range(len(self)))

    def host_of(self, i: int) -> int:
        """The host of the probe whose state is ``states[i]``."""
        return i // self.nports

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def lost_left(self, answered: int) -> float:
        """After a try that got ``answered`` replies: how many of the silent probes are
        likely answering ports whose probe or reply was lost, rather than filtered
        (``LossEstimate.after``)."""
        return self.estimate.after(answered)

    @property
    def loss(self) -> float:
        """The share of probes a try loses, as the answers suggest."""
        return self.estimate.share


class _Chunk6(_Chunk):
    """A chunk of IPv6 destinations: per host its address as two 64-bit halves, the
    keyed hash of (source, address), the sum of the address's 16-bit words (its share of
    the TCP checksum) and its source's template — 26 bytes in arrays, as for IPv4, so a
    chunk's memory stays bounded by its probes.

    ``find(hi, lo)``: by subtraction when the hosts are one range of consecutive
    addresses within one /64 (a sweep of a prefix), else by binary search of an order of
    the hosts sorted by address. An address given twice is held once."""

    family = 6

    def __init__(self, nports: int) -> None:
        super().__init__(nports)
        self.hi = array("Q")
        self.lo = array("Q")
        self.dsum = array("I")

    def __len__(self) -> int:
        return len(self.hi)

    def add6(self, hi: int, lo: int, secret: int, dsum: int, source: int) -> None:
        if self.hi:
            last = (self.hi[-1], self.lo[-1])
            if (hi, lo) <= last:
                if (hi, lo) == last:
                    return  # the same address again, in a row; others go at ``seal``
                self._ascending = False
        self.hi.append(hi)
        self.lo.append(lo)
        self.secret.append(secret)
        self.dsum.append(dsum)
        self.source.append(source)

    def _key(self, i: int) -> tuple[int, int]:
        return self.hi[i], self.lo[i]

    def seal(self) -> None:
        if not self._ascending:
            order = sorted(range(len(self)), key=self._key)
            again = {order[j] for j in range(1, len(order)) if self._key(order[j]) == self._key(order[j - 1])}
            if again:
                self._drop(again)
        n = len(self)
        self.states = bytearray(n * self.nports)
        self.pending = len(self.states)
        if n and self._ascending and self.hi[0] == self.hi[-1] and self.lo[-1] - self.lo[0] == n - 1:
            self._first = self.lo[0]
        elif not self._ascending:
            self._order = array("I", sorted(range(n), key=self._key))

    def find6(self, hi: int, lo: int) -> int | None:
        n = len(self)
        if not n:
            return None
        if self._first is not None:
            i = lo - self._first
            return i if hi == self.hi[0] and 0 <= i < n else None
        order = self._order if self._order is not None else range(n)
        j = bisect_left(order, (hi, lo), key=self._key)
        if j == n or self._key(order[j]) != (hi, lo):
            return None
        return order[j]

    def address(self, i: int) -> str:
        return socket.inet_ntop(socket.AF_INET6, _HALVES.pack(self.hi[i], self.lo[i]))


class _ItemChunk(_Chunk):
    """A chunk of single probes, as a shard's walk of a ``-Pn`` sweep makes: a row per
    (host, port), not a host with a state for every port. A shard's items are scattered:
    a batch of them holds about one port a host, so a host-by-port table would be mostly
    other shards' probes (a million hosts × the ports) to hold and skip.

    Rows are sorted by (address, port index), an address on consecutive rows; ``find``
    gives the first row of an address, ``slot`` the row of one of its ports. Per row: the
    address, the keyed hash of (source, address), the source's template, the port index
    and one state byte — 13 bytes."""

    def __init__(self, nports: int) -> None:
        super().__init__(nports)
        self.port = array("H")  # each row's index into the scan's ports

    def add_item(self, dst: int, secret: int, source: int, port_index: int) -> None:
        """A row, in ascending (address, port index) order."""
        self.dst.append(dst)
        self.secret.append(secret)
        self.source.append(source)
        self.port.append(port_index)

    def seal(self) -> None:
        self.states = bytearray(len(self.dst))
        self.pending = len(self.states)

    def find(self, dst: int) -> int | None:
        j = bisect_left(self.dst, dst)
        return j if j < len(self.dst) and self.dst[j] == dst else None

    def slot(self, row: int, port_index: int) -> int | None:
        """The row of ``port_index`` among the rows of the address at ``row`` (its first)."""
        dst, dsts, ports = self.dst[row], self.dst, self.port
        while row < len(dsts) and dsts[row] == dst:
            if ports[row] == port_index:
                return row
            row += 1
        return None

    def host_of(self, i: int) -> int:
        return i

    def host_rows(self) -> Iterator[tuple[int, list[tuple[int, int]]]]:
        """(a row of the address, [(state, port index)] of its rows), per address."""
        dsts, states, ports, n = self.dst, self.states, self.port, len(self.dst)
        row = 0
        while row < n:
            end = row
            while end < n and dsts[end] == dsts[row]:
                end += 1
            yield row, [(states[r], ports[r]) for r in range(row, end)]
            row = end
