"""Port specifications: ``1-1000``, ``22,80,443``, ``-`` (all), ``top-100``, ``U:53,T:80``.

A ``PortSet`` is compact (sorted ranges), iterable in ascending order and supports
``len`` and ``in``. ``top-N`` ports come from ``data/top_ports.txt``, a ranking written
for pentora (most commonly exposed services first), not copied from nmap's data.
"""

from __future__ import annotations

import bisect
import importlib.resources
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

MAX_PORT = 65535


class PortSpecError(ValueError):
    pass


class PortSet:
    """An immutable set of ports kept as merged, sorted ``(first, last)`` ranges."""

    def __init__(self, ranges: list[tuple[int, int]], order: list[int] | None = None) -> None:
        self.ranges = _merge(ranges)
        self._starts = [a for a, _ in self.ranges]
        self._len = sum(b - a + 1 for a, b in self.ranges)
        # top-N keeps its ranking order (most likely open first) for scanning.
        self.order = order

    def __iter__(self) -> Iterator[int]:
        if self.order is not None:
            yield from self.order
            return
        for a, b in self.ranges:
            yield from range(a, b + 1)

    def __len__(self) -> int:
        return self._len

    def __contains__(self, port: object) -> bool:
        if not isinstance(port, int):
            return False
        i = bisect.bisect_right(self._starts, port) - 1
        return i >= 0 and self.ranges[i][0] <= port <= self.ranges[i][1]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PortSet) and self.ranges == other.ranges

    def __repr__(self) -> str:
        return f"PortSet({self.spec()!r})"

    def spec(self) -> str:
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.ranges)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@lru_cache(maxsize=4)
def top_ports(protocol: str = "tcp") -> tuple[int, ...]:
    """The ranking, most commonly exposed first."""
    text = importlib.resources.files("pentora_plugins").joinpath("data", "top_ports.txt").read_text()
    ports: list[int] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        proto, _, number = line.partition("/")
        if proto == protocol:
            ports.append(int(number))
    return tuple(dict.fromkeys(ports))


def _port(text: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise PortSpecError(f"'{text}' in port spec '{spec}' is not a port number") from None
    if not 0 < value <= MAX_PORT:
        raise PortSpecError(f"port {value} in '{spec}' is out of range (1-{MAX_PORT})")
    return value


def by_protocol(spec: str) -> tuple[dict[str, list[str]], frozenset[str]]:
    """nmap's port syntax per protocol: the items of ``spec`` for ``tcp`` and for ``udp``
    (an item before any ``T:``/``U:`` prefix is for both, one after ``T:`` TCP, after
    ``U:`` UDP), and the protocols a prefix named. The items themselves are not checked."""
    items: dict[str, list[str]] = {"tcp": [], "udp": []}
    named: set[str] = set()
    current: str | None = None  # the protocol a T:/U: prefix selected
    for part in spec.replace(" ", "").split(","):
        if not part:
            raise PortSpecError(f"empty item in port spec '{spec}'")
        if part[:2].upper() in ("T:", "U:"):
            current = "tcp" if part[0].upper() == "T" else "udp"
            named.add(current)
            part = part[2:]
        for protocol in (current,) if current else ("tcp", "udp"):
            items[protocol].append(part)
    return items, frozenset(named)


def parse_ports(spec: Any, protocol: str = "tcp") -> PortSet:
    """Parse a port spec for ``protocol``; ``U:``/``T:`` prefixes pick ports per protocol."""
    if isinstance(spec, PortSet):
        return spec
    if isinstance(spec, bool):
        raise PortSpecError(f"expected a port spec such as '1-1000' or 'top-100', got {spec!r}")
    if isinstance(spec, int):
        return PortSet([(p := _port(str(spec), str(spec)), p)])
    if isinstance(spec, (list, tuple)):
        spec = ",".join(str(s) for s in spec)
    if not isinstance(spec, str) or not spec.strip():
        raise PortSpecError(f"expected a port spec such as '1-1000' or 'top-100', got {spec!r}")
    items, _ = by_protocol(spec)
    ranges: list[tuple[int, int]] = []
    order: list[int] | None = None
    single = spec.replace(" ", "").count(",") == 0  # top-N alone keeps its ranking order
    for part in items[protocol]:
        if part == "-":
            ranges.append((1, MAX_PORT))
        elif part.lower().startswith("top-"):
            count = _port(part[4:], spec) if part[4:].isdigit() else None
            if count is None:
                raise PortSpecError(f"'{part}' in port spec '{spec}': expected top-N, e.g. top-100")
            ranked = list(top_ports(protocol)[:count])
            ranges += [(p, p) for p in ranked]
            order = ranked if single else None
        elif "-" in part:
            first, _, last = part.partition("-")
            a = _port(first, spec) if first else 1
            b = _port(last, spec) if last else MAX_PORT
            if a > b:
                raise PortSpecError(f"range '{part}' in port spec '{spec}' runs backwards")
            ranges.append((a, b))
        else:
            p = _port(part, spec)
            ranges.append((p, p))
    return PortSet(ranges, order)


def port_spec_validator(protocol: str = "tcp") -> Any:
    """A voluptuous validator turning a spec into a ``PortSet``."""
    import voluptuous as vol

    def validate(value: Any) -> PortSet:
        try:
            return parse_ports(value, protocol)
        except PortSpecError as e:
            raise vol.Invalid(str(e)) from e

    validate.__name__ = "port spec"
    return validate
