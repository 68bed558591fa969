"""The chunk of ``syn_scanner``: the hosts probed together and one state byte per probe."""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator

from gevent import socket


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
