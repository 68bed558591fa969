"""A token bucket for scan rates (probes per second)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; rate 0 means unlimited.

    The bucket starts with one token, so a scan never begins with a burst, and holds at
    most ``burst`` (by default 20 ms worth): a scan that fell behind catches up by that
    much only, which keeps the achieved rate within a few percent of ``rate``.
    """

    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst) if burst else max(1.0, self.rate / 50)
        self.clock = clock
        self.tokens = 1.0
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, want: int) -> int:
        """Take up to ``want`` tokens now; returns how many were taken."""
        if not self.rate:
            return want
        self._refill()
        n = min(want, int(self.tokens))
        self.tokens -= n
        return n

    def give_back(self, n: int) -> None:
        """Return tokens taken but not used."""
        if self.rate:
            self.tokens += n

    def delay(self, want: int = 1) -> float:
        """Seconds until ``want`` tokens (at most a full bucket) are there."""
        if not self.rate:
            return 0.0
        self._refill()
        need = min(float(want), self.burst) - self.tokens
        return max(0.0, need / self.rate)


class AdaptiveRate:
    """A sending rate that backs off when replies are lost and climbs back when they are
    not (AIMD, as TCP and nmap do; masscan and zmap keep sending at the set rate and lose
    what the receiver cannot take).

    ``ceiling`` is the user's rate (0 = no ceiling); ``rate`` is the one to send at now
    (0 = unlimited, until the first loss). ``lost(achieved)`` halves the rate, starting
    from the rate achieved when it was unlimited; ``clean()`` raises it by a quarter, up
    to the ceiling. A rate never drops below ``floor``: a scan that loses replies at any
    rate still ends, its retries resending what was lost.
    """

    def __init__(self, ceiling: float, floor: float = 1000.0) -> None:
        self.ceiling = float(ceiling)
        self.floor = min(float(floor), self.ceiling) if self.ceiling else float(floor)
        self.rate = self.ceiling

    def lost(self, achieved: float) -> float:
        """Replies were lost while sending at ``achieved`` probes a second: halve."""
        base = self.rate or achieved or self.floor * 2
        if self.rate:
            base = min(base, achieved or base)
        self.rate = max(self.floor, base / 2)
        return self.rate

    def clean(self) -> float:
        """A try lost nothing: a quarter faster, up to the ceiling."""
        if self.rate:
            self.rate = self.rate * 1.25
            if self.ceiling:
                self.rate = min(self.rate, self.ceiling)
        return self.rate
