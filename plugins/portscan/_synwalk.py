"""The walk of a ``-Pn`` sweep in ``syn_scanner``: batches of the target set's index, each
probed as one chunk and checkpointed as one item.

With an ``AssumedHosts`` view as input (``-Pn``: every target taken as up) no host needs
listing to be scanned: the target set maps an index to its address (``address_at``). The
scan is cut into batches of that index, and a finished batch is saved as one checkpoint
item, ``hosts:A-B`` (unsharded: the hosts at positions A..B of the targets' order) or
``walk:A-B`` (sharded: steps A..B of the shard's walk), with the open ports it found. A /8
makes some hundreds of checkpoint rows, not 16 million, and a resumed scan skips whole
batches without computing them.

Sharded, the batches are of the shard's own walk (``ShardSpace.walk``): step ``w`` is the
item at position ``k - 1 + w × N`` of the permutation, inverted, so a shard computes,
holds and probes its own items only — 1/N of the work of the whole scan, not a pass over
every host that skips the other shards' items. A batch of a shard holds about one port a
host, so its chunk is a row a probe (``_ItemChunk``).

IPv4 targets only: a set holding IPv6 addresses or unresolved names is scanned host by
host, as a list of hosts is (a chunk holds hosts of one family).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from typing import Any

from pentora_plugins.kit.assumed import AssumedHosts
from pentora_plugins.kit.shard import Shard, ShardSpace, current_shard
from pentora_plugins.kit.targetset import FeistelPermutation, TargetSet, union

from pentora import NodeContext

# a batch of a shard's walk, in probes, as a part of the chunk size: its sorted items are
# Python ints while the chunk is built (about 36 bytes each), on top of 13 bytes a row
WALK_SHARE = 4

_ITEM = re.compile(r"(hosts|walk):(\d+)-(\d+)")  # a checkpoint item of a batch
Batch = tuple[str, Iterable[Any]]  # (checkpoint item, the chunks to probe)


class Walk:
    """The batches of a ``-Pn`` scan of ``targets`` on ``nports`` ports, each of at most
    ``chunk_probes`` probes; ``shard`` (or None) is the part of it this scan runs."""

    def __init__(self, targets: TargetSet, nports: int, shard: Shard | None, chunk_probes: int) -> None:
        self.targets, self.nports, self.shard = targets, nports, shard
        if shard is None:
            self.kind, self.space = "hosts", None
            self.steps = targets.size
            self.per_batch = max(1, chunk_probes // max(1, nports))
        else:
            self.kind, self.space = "walk", ShardSpace(shard, targets.size, nports)
            self.steps = self.space.walk_size
            self.per_batch = max(1, chunk_probes // WALK_SHARE)

    @classmethod
    def of(cls, ctx: NodeContext, hosts: Any, nports: int, chunk_probes: int) -> Walk | None:
        """The walk of ``hosts`` (the scanner's input), or None when it is not an
        ``AssumedHosts`` view of IPv4 addresses only, or not of the scan's target set
        (the one shards number their items over)."""
        if not isinstance(hosts, AssumedHosts) or not nports:
            return None
        targets = hosts.targets
        if targets.unresolved or not targets.address_count:
            return None
        if ":" in targets.address_at(targets.address_count - 1):  # IPv6 sort last
            return None
        whole = ctx.get("targets", None)
        if isinstance(whole, TargetSet) and AssumedHosts(whole) != hosts:
            return None
        return cls(targets, nports, current_shard(ctx), chunk_probes)

    @property
    def probes(self) -> int:
        """The probes of the first try over the whole walk."""
        return self.steps if self.space is not None else self.steps * self.nports

    def batches(self, scan: Any, done: frozenset[str]) -> Iterator[Batch]:
        """``(item, chunks)`` of each batch that ``done`` does not cover, its chunks built
        as the caller takes them (``scan`` is the ``SynScan``). A batch inside one
        finished interval is skipped, whatever size the earlier run's batches had."""
        finished = self.finished(done)
        for start in range(0, self.steps, self.per_batch):
            stop = min(start + self.per_batch, self.steps)
            j = bisect.bisect_right(finished, (start, self.steps)) - 1
            if j >= 0 and finished[j][1] >= stop - 1:
                continue
            item = f"{self.kind}:{start}-{stop - 1}"
            if self.space is None:
                yield item, scan.chunks(self._hosts(start, stop), stop - start)
            else:
                yield item, (scan.item_chunk(self._probes(start, stop)),)

    def finished(self, done: frozenset[str]) -> list[tuple[int, int]]:
        """The step intervals ``done`` names for this kind of walk, sorted and merged."""
        spans = []
        for item in done:
            found = _ITEM.fullmatch(item)
            if found and found.group(1) == self.kind:
                spans.append((int(found.group(2)), int(found.group(3))))
        return union(spans)

    def _hosts(self, start: int, stop: int) -> Iterator[str]:
        address_at = self.targets.address_at
        if self.targets.seed is None:
            return map(address_at, range(start, stop))
        order = FeistelPermutation(self.targets.size, self.targets.seed)  # the targets' shuffle
        return (address_at(order(i)) for i in range(start, stop))

    def _probes(self, start: int, stop: int) -> Iterator[tuple[str, int]]:
        """(address, port index) of the batch's items, ascending: host-major item numbers
        sort by host index, which is address order."""
        assert self.space is not None
        address_at, nports = self.targets.address_at, self.nports
        last, address = -1, ""
        for item in sorted(self.space.walk(start, stop)):
            host, pi = divmod(item, nports)
            if host != last:
                last, address = host, address_at(host)
            yield address, pi
