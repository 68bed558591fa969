"""``TargetSet``: a lazy, re-iterable, de-duplicated set of scan targets.

Addresses are kept as disjoint sorted intervals of integer keys (see ``_targetspec``),
so a /8 costs one interval, not 16.7 million objects. De-duplication and exclusion are
interval arithmetic. Iteration yields ``Target`` records on demand:

- **order**: numeric, IPv4 before IPv6, then unresolved hostnames (``resolve: false``)
  in spec order;
- **seeded shuffle**: a keyed Feistel permutation of the index space ``[0, N)`` with
  cycle-walking (the zmap/masscan approach), so shuffled order streams too and the same
  seed always gives the same order.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import socket
import struct
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from pentora_plugins.kit.records import Target
from pentora_plugins.kit.targetspec import V4_MAX, V6_BASE, address_of, exclusions, iter_specs, key_of

_M64 = (1 << 64) - 1
Interval = tuple[int, int]


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, merged, disjoint intervals covering the same keys."""
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _segments(labelled: Iterable[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Disjoint ``(start, end, label)`` segments; a key covered twice keeps the label of
    the spec that starts lowest (ties: the earlier spec). Touching segments of one label
    merge."""
    out: list[tuple[int, int, int]] = []
    covered = -1
    for a, b, label in sorted(labelled, key=lambda s: (s[0], s[2])):
        if b <= covered:
            continue
        a = max(a, covered + 1)
        if out and out[-1][1] + 1 == a and out[-1][2] == label:
            out[-1] = (out[-1][0], b, label)
        else:
            out.append((a, b, label))
        covered = b
    return out


def _subtract(segments: list[tuple[int, int, int]], holes: list[Interval]) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    j = 0
    for a, b, label in segments:
        while j < len(holes) and holes[j][1] < a:
            j += 1
        k = j
        while a <= b and k < len(holes) and holes[k][0] <= b:
            h0, h1 = holes[k]
            if h0 > a:
                out.append((a, h0 - 1, label))
            a = max(a, h1 + 1)
            k += 1
        if a <= b:
            out.append((a, b, label))
    return out


class FeistelPermutation:
    """A keyed bijection of ``[0, n)``: a 4-round balanced Feistel network over the
    smallest ``2**(2h) >= n`` (so fewer than 4 walks are expected), cycle-walking
    outputs that fall outside ``[0, n)``. O(1) memory, any ``n`` (IPv6 sized too)."""

    ROUNDS = 4

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.half = (max((n - 1).bit_length(), 2) + 1) // 2
        self.mask = (1 << self.half) - 1
        digest = hashlib.blake2b(str(seed).encode(), digest_size=8 * self.ROUNDS,
                                 person=b"pentora-targets").digest()
        self.keys = [int.from_bytes(digest[8 * r:8 * r + 8], "big") for r in range(self.ROUNDS)]

    def _f(self, x: int, key: int) -> int:
        if self.half <= 32:  # splitmix64 finaliser: fast, well mixed
            z = ((x ^ key) + 0x9E3779B97F4A7C15) & _M64
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
            return (z ^ (z >> 31)) & self.mask
        size = (self.half + 7) // 8
        h = hashlib.blake2b(x.to_bytes(size, "big"), key=key.to_bytes(8, "big"), digest_size=size)
        return int.from_bytes(h.digest(), "big") & self.mask

    def _encrypt(self, x: int) -> int:
        left, right = x >> self.half, x & self.mask
        for key in self.keys:
            left, right = right, left ^ self._f(right, key)
        return (left << self.half) | right

    def _decrypt(self, x: int) -> int:
        left, right = x >> self.half, x & self.mask
        for key in reversed(self.keys):
            left, right = right ^ self._f(left, key), left
        return (left << self.half) | right

    def __call__(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range [0, {self.n})")
        x = self._encrypt(i)
        while x >= self.n:
            x = self._encrypt(x)
        return x

    def inverse(self, x: int) -> int:
        """The ``i`` with ``self(i) == x``: the rounds undone in reverse order, walking
        back over the out-of-range values that the forward cycle-walk stepped through
        (the chain from ``i`` to ``x`` leaves ``[0, n)`` only in between, so the first
        value back inside it is ``i``)."""
        if not 0 <= x < self.n:
            raise IndexError(f"position {x} out of range [0, {self.n})")
        i = self._decrypt(x)
        while i >= self.n:
            i = self._decrypt(i)
        return i

    def __iter__(self) -> Iterator[int]:
        return map(self, range(self.n))


def _text(key: int) -> str:
    if key <= V4_MAX:
        return socket.inet_ntoa(struct.pack("!I", key))
    return str(ipaddress.IPv6Address(key - V6_BASE))


class TargetSet:
    """The ``targets`` value: ``len``, ``in``, indexing and lazy iteration of ``Target``.

    ``intervals`` are ``(first_key, last_key, source)``; ``names`` maps a key to the
    hostname it was resolved from; ``unresolved`` lists ``(hostname, source)`` kept as
    names; ``exclude`` intervals are removed. ``seed`` (not None) iterates in a seeded
    shuffled order. ``errors`` carries failed lookups (records with ``spec``/``error``).
    """

    def __init__(self, intervals: Iterable[tuple[int, int, str]] = (), *,
                 names: dict[int, str] | None = None,
                 unresolved: Iterable[tuple[str, str]] = (),
                 exclude: Iterable[Interval] = (), seed: int | None = None,
                 errors: Iterable[Any] = ()) -> None:
        label_of: dict[str, int] = {}  # a source's label is its rank of first appearance
        labelled = [(a, b, label_of.setdefault(source, len(label_of))) for a, b, source in intervals]
        self.sources = list(label_of)
        segments = _subtract(_segments(labelled), union(exclude))
        self._starts = [a for a, _, _ in segments]
        self._ends = [b for _, b, _ in segments]
        self._labels = [label for _, _, label in segments]
        self._offsets: list[int] = []
        count = 0
        for a, b, _ in segments:
            self._offsets.append(count)
            count += b - a + 1
        self.address_count = count
        self.names = {k: v for k, v in (names or {}).items() if self._find(k) is not None}
        first_source: dict[str, str] = {}
        for name, source in unresolved:
            first_source.setdefault(name, source)
        self.unresolved = list(first_source.items())
        self._hostnames = {n for n, _ in self.unresolved} | set(self.names.values())
        self.size = count + len(self.unresolved)
        self.seed = seed
        self.errors = list(errors)

    @classmethod
    def parse(cls, specs: str | Iterable[str], *, exclude: str | Iterable[str] = (),
              seed: int | None = None) -> TargetSet:
        """Build from specs without resolving: hostnames stay names."""
        intervals, unresolved = [], []
        for spec in iter_specs(specs):
            if spec.hostname is None:
                intervals.append((spec.start, spec.end, spec.source))
            else:
                unresolved.append((spec.hostname, spec.source))
        return cls(intervals, unresolved=unresolved, exclude=exclusions(iter_specs(exclude)), seed=seed)

    # -- set protocol ------------------------------------------------------------------

    def __len__(self) -> int:
        if self.size > sys.maxsize:
            raise OverflowError(f"{self.size} targets are more than len() can count; use .size")
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def _find(self, key: int) -> int | None:
        i = bisect.bisect_right(self._starts, key) - 1
        return i if i >= 0 and key <= self._ends[i] else None

    def __contains__(self, item: object) -> bool:
        text = item.address if isinstance(item, Target) else item
        if isinstance(text, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return self._find(key_of(text)) is not None
        if not isinstance(text, str):
            return False
        try:
            ip = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            return text.lower().rstrip(".") in self._hostnames
        return self._find(key_of(ip)) is not None

    def index_of(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int | None:
        """The position of ``ip`` in the sorted order (``self[i]``), or None when not in the set."""
        key = key_of(ip)
        seg = self._find(key)
        return None if seg is None else self._offsets[seg] + key - self._starts[seg]

    def __getitem__(self, index: int) -> Target:
        """The target at ``index`` of the sorted order (shuffling does not change it)."""
        if index < 0:
            index += self.size
        if not 0 <= index < self.size:
            raise IndexError(f"target index {index} out of range ({self.size} targets)")
        if index >= self.address_count:
            name, source = self.unresolved[index - self.address_count]
            return Target(address=name, hostname=name, source=source)
        seg = bisect.bisect_right(self._offsets, index) - 1
        return self._target(self._starts[seg] + index - self._offsets[seg], seg)

    def _target(self, key: int, seg: int) -> Target:
        return Target(address=_text(key), hostname=self.names.get(key),
                      source=self.sources[self._labels[seg]])

    def __iter__(self) -> Iterator[Target]:
        if self.seed is not None:
            return map(self.__getitem__, FeistelPermutation(self.size, self.seed))
        return self._sorted()

    def _sorted(self) -> Iterator[Target]:
        for seg, (a, b) in enumerate(zip(self._starts, self._ends)):
            for key in range(a, b + 1):
                yield self._target(key, seg)
        for name, source in self.unresolved:
            yield Target(address=name, hostname=name, source=source)

    def addresses(self) -> Iterator[str]:
        """Address strings in iteration order, without building records."""
        if self.seed is not None:
            for index in FeistelPermutation(self.size, self.seed):
                yield self._address(index)
            return
        for a, b in zip(self._starts, self._ends):
            yield from map(_text, range(a, b + 1))
        for name, _ in self.unresolved:
            yield name

    def address_at(self, index: int) -> str:
        """The address (or unresolved name) at ``index`` of the sorted order, without a
        record: ``self[index].address`` in O(log intervals)."""
        if not 0 <= index < self.size:
            raise IndexError(f"target index {index} out of range ({self.size} targets)")
        return self._address(index)

    def _address(self, index: int) -> str:
        if index >= self.address_count:
            return self.unresolved[index - self.address_count][0]
        seg = bisect.bisect_right(self._offsets, index) - 1
        return _text(self._starts[seg] + index - self._offsets[seg])

    def ranges(self) -> Iterator[tuple[str, str, str]]:
        """``(first, last, source)`` of each address interval, sorted."""
        for a, b, label in zip(self._starts, self._ends, self._labels):
            yield str(address_of(a)), str(address_of(b)), self.sources[label]

    def __repr__(self) -> str:
        shown = ", ".join(a if a == b else f"{a}-{b}" for a, b, _ in list(self.ranges())[:4])
        more = ", ..." if len(self._starts) > 4 else ""
        names = f", names={[n for n, _ in self.unresolved][:4]}" if self.unresolved else ""
        order = f", seed={self.seed}" if self.seed is not None else ""
        return f"TargetSet(size={self.size}, [{shown}{more}]{names}{order})"
