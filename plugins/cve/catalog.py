"""The vulnerability catalog: entries, affected ranges, and the index by product.

An ``Entry`` is one advisory (a CVE, an OSV id) for one product, named by its CPE
``vendor:product`` (``openbsd:openssh``); it holds the affected version ranges and exact
versions. ``Catalog`` indexes entries by product key, and per product sorts the ranges by
their lower bound, so that evaluating a fingerprint costs a dictionary look-up, a bisection
and a walk over the few ranges that start at or below its version — never a scan of the
whole catalog. Vendor spellings that differ between sources (NVD's ``nginx:nginx`` and
``f5:nginx``, the fingerprinter's ``beasts:vsftpd`` and NVD's ``vsftpd_project:vsftpd``)
meet through ``ALIASES``. OSV entries name a package, not a vendor: they are indexed
under ``*:name`` and found through the product part of a fingerprint's CPE.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pentora_plugins.cve.fixes import DistroFix, FixIndex
from pentora_plugins.cve.version import INFINITY, VersionKey, same_release, upper_key, version_key

ANY_VENDOR = "*"
ROLES = ("server", "client", "library", "any")
BLOCK = 32  # ranges per block of a product's index

# Spellings of the same product in different sources → the fingerprinter's key.
ALIASES = {
    "nginx:nginx": "f5:nginx",
    "igor_sysoev:nginx": "f5:nginx",
    "vsftpd_project:vsftpd": "beasts:vsftpd",
    "redislabs:redis": "redis:redis",
    "mysql:mysql": "oracle:mysql",
    "proftpd_project:proftpd": "proftpd:proftpd",
    "memcached_project:memcached": "memcached:memcached",
    "danga:memcached": "memcached:memcached",
    "apache:httpd": "apache:http_server",
}


class CatalogError(ValueError):
    """A catalog that cannot be used; the message names the file and where in it."""


def product_key(vendor: str, product: str) -> str:
    """``vendor:product`` in the index's spelling (lowercase, aliases applied)."""
    key = f"{vendor.strip().lower()}:{product.strip().lower()}"
    return ALIASES.get(key, key)


_CPE_SPLIT = re.compile(r"(?<!\\):")


def parse_cpe(cpe: str) -> tuple[str, str, str | None] | None:
    """(vendor, product, version or None) of a CPE 2.3 string or 2.2 URI, else None.

    The version is None for ``*`` and ``-``; an ``update`` field such as NVD's ``p1`` in
    ``openssh:9.2:p1`` is appended (``9.2p1``).
    """
    if cpe.startswith("cpe:2.3:"):
        parts = _CPE_SPLIT.split(cpe)[2:]
    elif cpe.startswith("cpe:/"):
        parts = cpe[5:].split(":")
    else:
        return None
    if len(parts) < 3 or not parts[1] or not parts[2]:
        return None
    vendor, product = (p.replace("\\", "") for p in parts[1:3])
    version = parts[3].replace("\\", "") if len(parts) > 3 else "*"
    update = parts[4].replace("\\", "") if len(parts) > 4 else "*"
    if version in ("*", "-", ""):
        return vendor, product, None
    if update not in ("*", "-", ""):
        version += update
    return vendor, product, version


@dataclass(frozen=True)
class Range:
    """Affected versions between two bounds; a missing bound is open."""

    start: str | None = None
    start_inclusive: bool = True
    end: str | None = None
    end_inclusive: bool = False
    start_key: VersionKey = field(init=False, repr=False, compare=False)
    end_key: VersionKey | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_key", version_key(self.start) if self.start else ())
        object.__setattr__(self, "end_key", version_key(self.end) if self.end else None)

    def contains(self, key: VersionKey) -> bool:
        if self.start is not None and (key < self.start_key if self.start_inclusive else
                                       key <= self.start_key or same_release(key, self.start_key)):
            return False
        if self.end_key is None:
            return True
        if self.end_inclusive:
            return key <= self.end_key or same_release(key, self.end_key)
        return key < self.end_key

    def describe(self) -> str:
        lower = f"{'>=' if self.start_inclusive else '>'}{self.start}" if self.start else ""
        upper = f"{'<=' if self.end_inclusive else '<'}{self.end}" if self.end else ""
        return ", ".join(p for p in (lower, upper) if p) or "all versions"


@dataclass(frozen=True)
class Entry:
    """One advisory for one product."""

    id: str
    product: str                      # index key, vendor:product or *:name
    title: str = ""
    cvss: float | None = None
    severity: str | None = None       # qualitative rating when the source gives no score
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()    # exact affected versions
    references: tuple[str, ...] = ()
    source: str = ""                  # builtin, or the file it came from
    # Where the flaw is: ``server`` (the daemon a scan reaches), ``client`` (a program
    # the host runs towards others: ssh, ssh-agent: never reported against a server's
    # banner), ``library`` (code the service links), ``any`` (not stated, as NVD and OSV say).
    role: str = "any"
    component: str | None = None      # the program or part: sshd, ssh-agent, mod_proxy
    kev: bool = False                 # in CISA's Known Exploited Vulnerabilities catalog


@dataclass(frozen=True)
class Part:
    """What one catalog source holds: entries by upstream product, distributions'
    statements about their packages, and CVE ids known to be exploited."""

    entries: tuple[Entry, ...] = ()
    fixes: tuple[DistroFix, ...] = ()
    kev: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Hit:
    """An entry that covers a version, and how (the range, or the exact version)."""

    entry: Entry
    matched: str
    id: str = field(init=False, repr=False, compare=False)  # the entry's: sorted on, read often

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.entry.id)

    @functools.cached_property
    def text(self) -> str:
        return f"matches {self.entry.id}: affected {self.matched}"


class _ProductIndex:
    """The entries of one product: exact versions hashed; ranges with a lower bound sorted
    by it, in blocks that know the highest upper bound among them (and among all blocks
    before, which only grows: the blocks ending below a version are skipped by one
    bisection); ranges open below ("before X") sorted by their upper bound apart, so that
    a look-up visits only those reaching the version."""

    def __init__(self) -> None:
        # (start key, order, fast upper key or None, range, hit); the fast upper key is set
        # for the common shape "from X before Y" (or open ends), whose test is one
        # comparison: the others take Range.contains and its portable-release rules
        self.items: list[tuple[VersionKey, int, VersionKey | None, Range, Hit]] = []
        self.starts: list[VersionKey] = []
        self.block_ends: list[VersionKey] = []
        self.reach: list[VersionKey] = []  # the highest upper bound up to each block
        self.below: list[tuple[VersionKey, int, VersionKey | None, Range, Hit]] = []
        self.below_ends: list[VersionKey] = []
        self.exact: dict[VersionKey, list[Hit]] = {}

    def add(self, entry: Entry) -> None:
        for r in entry.ranges:
            fast = (r.end_key if r.end_key is not None else INFINITY) \
                if r.start_inclusive and not r.end_inclusive else None
            item = (r.start_key, len(self.items) + len(self.below), fast, r,
                    Hit(entry, f"range {r.describe()}"))
            (self.items if r.start is not None else self.below).append(item)
        for v in entry.versions:
            self.exact.setdefault(version_key(v), []).append(Hit(entry, f"version {v}"))

    def freeze(self) -> None:
        self.items.sort(key=lambda item: (item[0], item[1]))
        self.starts = [item[0] for item in self.items]
        self.block_ends = [max(upper_key(r.end_key, r.end_inclusive) for _, _, _, r, _ in
                               self.items[i:i + BLOCK]) for i in range(0, len(self.items), BLOCK)]
        self.reach = list(itertools.accumulate(self.block_ends, max))
        self.below.sort(key=lambda item: (upper_key(item[3].end_key, item[3].end_inclusive), item[1]))
        self.below_ends = [upper_key(item[3].end_key, item[3].end_inclusive) for item in self.below]

    def find(self, key: VersionKey, hits: list[Hit]) -> None:
        """Append to ``hits`` every hit covering ``key`` (an entry may come twice)."""
        exact = self.exact.get(key)
        if exact:
            hits.extend(exact)
        # open below: those whose upper bound reaches the key (the rest end below it)
        for _, _, fast, r, hit in self.below[bisect.bisect_left(self.below_ends, key):]:
            if (key < fast) if fast is not None else r.contains(key):
                hits.append(hit)
        stop = bisect.bisect_right(self.starts, key)
        items, ends = self.items, self.block_ends
        for b in range(bisect.bisect_left(self.reach, key), (stop + BLOCK - 1) // BLOCK):
            if ends[b] < key:
                continue  # every range of the block ends below the version
            for _, _, fast, r, hit in items[b * BLOCK:min(stop, (b + 1) * BLOCK)]:
                # the start is at or below the key (bisected): "from X before Y" needs key < Y
                if (key < fast) if fast is not None else r.contains(key):
                    hits.append(hit)


_HIT_ID = operator.attrgetter("id")


class Catalog:
    """Entries indexed by product key; ``find`` evaluates one product version. ``fixes``
    holds what distributions say of each CVE in their packages (``FixIndex``), ``kev``
    the CVE ids known to be exploited (CISA's catalog), whichever source named them."""

    def __init__(self, entries: Iterable[Entry], sources: tuple[str, ...] = (),
                 fixes: FixIndex | None = None, kev: Iterable[str] = ()) -> None:
        self.sources = sources
        self.fixes = fixes if fixes is not None else FixIndex()
        self.kev = frozenset(kev)
        self.size = 0
        self._index: dict[str, _ProductIndex] = {}
        self._by_id: dict[str, Entry] = {}
        for entry in entries:
            self._index.setdefault(entry.product, _ProductIndex()).add(entry)
            self._by_id.setdefault(entry.id, entry)
            self.size += 1
        for index in self._index.values():
            index.freeze()

    def __len__(self) -> int:
        return self.size

    def entry(self, ident: str) -> Entry | None:
        """The first entry of that id (any product): its title, score and role."""
        return self._by_id.get(ident)

    def products(self) -> list[str]:
        return sorted(self._index)

    def find(self, vendor: str, product: str, version: str) -> list[Hit]:
        """Every entry affecting ``version`` of the product, one hit per entry (the first
        range or exact version that covers it), in entry id order."""
        key = version_key(version)
        found: list[Hit] = []
        for index_key in (product_key(vendor, product), f"{ANY_VENDOR}:{product.lower()}"):
            index = self._index.get(index_key)
            if index is not None:
                index.find(key, found)
        if len(found) > 1:
            found.sort(key=_HIT_ID)  # stable: an entry's first covering range stays first
            last = ""
            unique = []
            for h in found:
                if h.id != last:
                    unique.append(h)
                    last = h.id
            return unique
        return found
