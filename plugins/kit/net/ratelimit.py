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
