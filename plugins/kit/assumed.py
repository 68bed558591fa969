"""``AssumedHosts``: every target taken as up (nmap's ``-Pn``), as a lazy view.

``discovery_merger`` with ``assume_up`` publishes this under ``discovered_hosts``
instead of a list of ``Host`` records: it holds the ``TargetSet`` only, so its memory is
that of the target intervals whatever the range (a ``Host`` each would be about 450
bytes: 7 GB for a /8). Iterating it yields one ``Host`` per target on demand, in the
targets' order (sorted, or their seeded shuffle); ``pairs()`` yields ``(address,
hostname)`` without building records, which is what the port scanners read
(``kit.inputs.iter_hosts``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pentora_plugins.kit.records import Host, Target
from pentora_plugins.kit.targetset import TargetSet
from pentora_plugins.kit.targetspec import address_of

METHOD = "assumed"
REASON = "user-set"


def assumed_host(address: str, hostname: str | None = None) -> Host:
    """The ``Host`` record of a target taken as up, unprobed."""
    return Host(address=address, hostname=hostname, method=METHOD, methods=[METHOD], reason=REASON)


class AssumedHosts:
    """The targets of ``targets`` as live hosts: ``len``, ``in``, lazy iteration of ``Host``."""

    def __init__(self, targets: TargetSet) -> None:
        self.targets = targets

    @property
    def size(self) -> int:
        return self.targets.size

    def __len__(self) -> int:
        return len(self.targets)

    def __bool__(self) -> bool:
        return bool(self.targets)

    def __contains__(self, item: object) -> bool:
        address = item.address if isinstance(item, (Host, Target)) else item
        return address in self.targets

    def __iter__(self) -> Iterator[Host]:
        for address, hostname in self.pairs():
            yield assumed_host(address, hostname)

    def pairs(self) -> Iterator[tuple[str, str | None]]:
        """``(address, hostname)`` of each target, in the targets' order, no record built."""
        if not self.targets.names and not self.targets.unresolved:
            return ((address, None) for address in self.targets.addresses())
        return ((t.address, t.hostname) for t in self.targets)

    def hostnames(self) -> dict[str, str]:
        """address → the name it was resolved from, for the targets given by name."""
        out = {str(address_of(key)): name for key, name in self.targets.names.items()}
        out.update((name, name) for name, _ in self.targets.unresolved)
        return out

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AssumedHosts) and vars(self.targets) == vars(other.targets)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"AssumedHosts({self.targets!r})"
