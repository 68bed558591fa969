"""nmap's ``--host-timeout`` for a port scanner: a time limit on each host's probes.

A host's clock starts with its first probe. Once the limit has passed, no further probe
of that host is started (those under way finish and are recorded as ever), and the ports
it never got to are counted, per host, for one warning at the end. Unlike nmap, which
drops a timed-out host from its output, what was found before the limit is kept: an open
port seen is a fact, and a scan never throws findings away.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from voluptuous import Optional

from pentora.schema import Duration

__all__ = ["HOST_TIMEOUT_OPTION", "HostClock"]

# The option of every port scanner that takes it (a profile's var host_timeout, --host-timeout).
HOST_TIMEOUT_OPTION = {
    Optional("host_timeout", default=0,
             description="stop probing a host this long after its first probe, keeping what "
                         "was found (nmap's --host-timeout); 0 = no limit"): Duration(min=0),
}

SHOWN = 5  # hosts named in the warning; the rest are counted


class HostClock:
    """Per-host time limits of one scan. ``limit`` in seconds; 0 is no limit, and then
    every method costs nothing but the test of it."""

    def __init__(self, limit: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = float(limit)
        self.clock = clock
        self.started: dict[str, float] = {}
        self.skipped: dict[str, int] = {}
        self.total = 0  # probes skipped, every host's

    def __bool__(self) -> bool:
        return self.limit > 0

    def start(self, host: str, at: float | None = None) -> None:
        """Start ``host``'s clock (at ``at``) unless it runs already."""
        if self.limit > 0 and host not in self.started:
            self.started[host] = self.clock() if at is None else at

    def expired(self, host: str) -> bool:
        """Whether ``host`` is out of time; its clock starts on the first question."""
        if self.limit <= 0:
            return False
        now = self.clock()
        return now - self.started.setdefault(host, now) > self.limit

    def skip(self, host: str, count: int = 1) -> None:
        """``count`` probes of ``host`` were left out: its time had run out."""
        self.skipped[host] = self.skipped.get(host, 0) + count
        self.total += count

    def admit(self, items: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
        """The ``(host, …)`` items whose host still has time, in order; the others skipped."""
        if self.limit <= 0:
            yield from items
            return
        for item in items:
            if self.expired(item[0]):
                self.skip(item[0])
            else:
                yield item

    def summary(self, module: str) -> str | None:
        """One line for the log naming the hosts that ran out of time, or None if none did."""
        if not self.skipped:
            return None
        hosts = sorted(self.skipped, key=lambda h: -self.skipped[h])
        named = ", ".join(f"{h} ({self.skipped[h]} port(s) left)" for h in hosts[:SHOWN])
        more = f" and {len(hosts) - SHOWN} more" if len(hosts) > SHOWN else ""
        return (f"{module}: --host-timeout {self.limit:g}s passed for {len(hosts)} host(s): "
                f"{named}{more}; their ports found open before it are kept, the others were "
                "not probed (raise host_timeout, or 0 for no limit)")
