"""Shards of a scan: the target × port space split by a seeded permutation.

The masscan/zmap way: the items of a port scan are the pairs (host, port), numbered
``host_index * nports + port_index`` over the whole target set (not over the hosts that
discovery happened to find, so every shard numbers them alike). A keyed Feistel
permutation of ``[0, hosts × ports)`` maps each item to a position; shard ``k`` of ``N``
owns the items whose position is ``k - 1`` modulo ``N``. A permutation is a bijection, so
every item belongs to exactly one shard and the shards' sizes differ by at most one;
positions are scattered over the space, so every shard gets an even mix of hosts and
ports.

A scan is sharded when ``scan.options["shard"]`` holds a :class:`Shard` (``pentora scan
--shard 3/8``, or a Celery worker running one shard). Port scanners ask
:func:`port_selector` once, then keep only the ports it selects for each host; everything
before the port scan (target parsing, discovery) runs whole in every shard, and what
several shards find twice is merged by record identity.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pentora_plugins.kit.assumed import AssumedHosts
from pentora_plugins.kit.targetset import FeistelPermutation, TargetSet

from pentora import PentoraError

if TYPE_CHECKING:
    from pentora import NodeContext

SHARD_OPTION = "shard"  # the key of ``scan.options`` that holds the Shard

PortSelector = Callable[[str], tuple[int, ...]]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based, as on the command line) of ``count``; ``seed`` keys the
    permutation: every machine of one scan must use the same seed."""

    index: int
    count: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise PentoraError(f"shard {self.index}/{self.count} does not exist: write K/N with "
                               "1 <= K <= N, e.g. --shard 3/8")

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> Shard:
        """``"3/8"`` → ``Shard(3, 8)``; a clear error for anything else."""
        index, sep, count = str(text).strip().partition("/")
        if not sep or not index.strip().isdigit() or not count.strip().isdigit():
            raise PentoraError(f"--shard takes K/N (this machine's shard K of N, e.g. 3/8), got '{text}'")
        return cls(int(index), int(count), seed)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def to_list(self) -> list[int]:
        return [self.index, self.count, self.seed]


class ShardSpace:
    """The items ``[0, hosts × nports)`` of one scan and which of them ``shard`` owns."""

    def __init__(self, shard: Shard, hosts: int, nports: int) -> None:
        self.shard, self.hosts, self.nports = shard, hosts, nports
        self.size = hosts * nports
        self._perm = FeistelPermutation(self.size, shard.seed) if self.size else None

    def owns(self, item: int) -> bool:
        assert self._perm is not None
        return self._perm(item) % self.shard.count == self.shard.index - 1

    def items(self) -> Iterator[int]:
        """Every item of this shard, in item order (a full pass over the space)."""
        return (i for i in range(self.size) if self.owns(i))

    @property
    def walk_size(self) -> int:
        """How many items this shard owns: the positions ``k - 1 + w × N`` below ``size``."""
        first = self.shard.index - 1
        return 0 if first >= self.size else (self.size - 1 - first) // self.shard.count + 1

    def walk(self, start: int = 0, stop: int | None = None) -> Iterator[int]:
        """The items at steps ``[start, stop)`` of this shard's walk: step ``w`` is position
        ``k - 1 + w × N`` of the permutation, inverted to its item. Only this shard's
        items are computed (1/N of the space, unlike ``items``), in position order: as
        scattered over hosts and ports as the permutation is. masscan's ``--shards``."""
        if self._perm is None:
            return iter(())
        stop = self.walk_size if stop is None else min(stop, self.walk_size)
        first, count, inverse = self.shard.index - 1, self.shard.count, self._perm.inverse
        return (inverse(first + w * count) for w in range(start, stop))

    def ports_of(self, host_index: int, ports: Sequence[int]) -> tuple[int, ...]:
        base = host_index * self.nports
        return tuple(port for p, port in enumerate(ports) if self.owns(base + p))


def current_shard(ctx: NodeContext) -> Shard | None:
    """The shard this scan runs, from ``scan.options["shard"]`` (a Shard, ``"K/N"`` or
    ``[K, N, seed]``), or None when the scan is not sharded."""
    value = ctx.scan.options.get(SHARD_OPTION)
    if value is None or isinstance(value, Shard):
        return value
    if isinstance(value, (list, tuple)):
        return Shard(*(int(v) for v in value))
    return Shard.parse(str(value))


def _fallback_index(address: str, hosts: int) -> int:
    """A host the target set does not hold (found some other way): a stable hashed slot."""
    digest = hashlib.blake2b(address.encode(), digest_size=8, person=b"pentora-shard").digest()
    return int.from_bytes(digest, "big") % max(1, hosts)


def host_indexer(targets: Any) -> tuple[int, Callable[[str], int]]:
    """(number of hosts, address → its index) over the scan's whole target set.

    A ``TargetSet`` answers by interval search; any other iterable of targets/hosts
    (records, dicts or strings) is indexed by its sorted distinct addresses.
    """
    if isinstance(targets, AssumedHosts):  # -Pn's hosts: the target set they view
        targets = targets.targets
    if isinstance(targets, TargetSet):
        return targets.size, _targetset_index(targets)
    addresses = sorted({_address(t) for t in (targets or ())})
    index = {a: i for i, a in enumerate(addresses)}
    size = len(addresses)
    return size, lambda address: index[address] if address in index else _fallback_index(address, size)


def _targetset_index(targets: TargetSet) -> Callable[[str], int]:
    names = {name: targets.address_count + i for i, (name, _) in enumerate(targets.unresolved)}

    def index(address: str) -> int:
        try:
            position = targets.index_of(ipaddress.ip_address(address))
        except ValueError:
            return names.get(address, _fallback_index(address, targets.size))
        return _fallback_index(address, targets.size) if position is None else position
    return index


def _address(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("address", ""))
    return str(getattr(item, "address", item))


def port_selector(ctx: NodeContext, ports: Sequence[int]) -> PortSelector | None:
    """None when the scan is not sharded; else ``select(address)`` → the ``ports`` of that
    host this shard scans (often none). The item space is the ``targets`` key (the whole
    target set) × ``ports``."""
    shard = current_shard(ctx)
    if shard is None:
        return None
    targets = ctx.get("targets", None)
    if targets is None:
        targets = ctx.get(ctx.config.get("input", "discovered_hosts"), ())
    hosts, index = host_indexer(targets)
    space = ShardSpace(shard, hosts, len(ports))
    ports = tuple(ports)
    return lambda address: space.ports_of(index(address), ports)


def shard_sizes(shard_count: int, hosts: int, nports: int, seed: int = 0) -> list[int]:
    """How many items each shard owns (for tests and planning)."""
    sizes = [0] * shard_count
    space = ShardSpace(Shard(1, shard_count, seed), hosts, nports)
    for i in range(space.size):
        assert space._perm is not None  # set whenever size > 0
        sizes[space._perm(i) % shard_count] += 1
    return sizes


def share(ctx: NodeContext, total: int | None) -> int | None:
    """A shard's expected part of ``total`` items (for progress); ``total`` when unsharded."""
    shard = current_shard(ctx)
    if shard is None or total is None:
        return total
    return -(-total // shard.count)


def mark_foreign(states: bytearray, addresses: Sequence[str], ports: Sequence[int],
                 select: PortSelector, mark: int) -> int:
    """Set ``states[host * len(ports) + port]`` to ``mark`` for every item of another
    shard (a host-major state table, as the SYN scanner keeps); returns how many."""
    position = {port: p for p, port in enumerate(ports)}
    nports, marked = len(ports), 0
    for h, address in enumerate(addresses):
        mine = {position[port] for port in select(address)}
        for p in range(nports):
            if p not in mine:
                states[h * nports + p] = mark
                marked += 1
    return marked
