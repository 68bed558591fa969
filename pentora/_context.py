"""DataContext: the per-scan key-value store that carries data between nodes.

Greenlet- and thread-safe. With ``max_size`` set, values are sized (pickled length)
and the least recently used ones are spilled to a private temporary directory when
the total goes over; a spilled value is read back transparently, so eviction never
loses data. Values that no pending node needs are spilled first. With
``evict_policy: none`` a write that would go over the limit is refused instead.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from ._errors import ContextFullError, ContextKeyError

_MISSING = object()


def _human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:g}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size = size / 1000  # type: ignore[assignment]
    return str(size)


class DataContext:
    def __init__(self, max_size: int | None = None, evict_policy: str = "lru",
                 needed: Callable[[str], bool] | None = None) -> None:
        self.max_size = max_size
        self.evict_policy = evict_policy
        self._needed = needed or (lambda key: False)
        self._values: OrderedDict[str, Any] = OrderedDict()  # resident, LRU order
        self._sizes: dict[str, int] = {}
        self._spilled: dict[str, str] = {}
        self._total = 0
        self._lock = threading.RLock()
        self._spill_dir: tempfile.TemporaryDirectory[str] | None = None
        self.spills = 0

    # -- public API -----------------------------------------------------------------

    def get(self, key: str, default: Any = _MISSING, *, node: str | None = None) -> Any:
        """The value of ``key``; a missing key raises ``ContextKeyError`` naming ``node``."""
        with self._lock:
            if key in self._values:
                if self.max_size is not None:
                    self._values.move_to_end(key)
                return self._values[key]
            if key in self._spilled:
                return self._unspill(key)
        if default is not _MISSING:
            return default
        raise ContextKeyError(key, node)

    def set(self, key: str, value: Any) -> None:
        if not isinstance(key, str) or not key:
            raise TypeError(f"DataContext keys are non-empty strings, got {key!r}")
        with self._lock:
            if self.max_size is None:
                self._values[key] = value
                return
            size = _size_of(value, key)
            self._forget(key)
            if self.evict_policy == "none" and self._total + size > self.max_size:
                raise ContextFullError(
                    f"DataContext full: '{key}' ({_human(size)}) would take it past max_size "
                    f"{_human(self.max_size)} ({_human(self._total)} used); raise "
                    "engine.data_context.max_size or set evict_policy: lru to spill to disk")
            self._values[key] = value
            self._sizes[key] = size
            self._total += size
            self._evict(keep=key)

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._values or key in self._spilled

    __contains__ = has

    def keys(self) -> list[str]:
        with self._lock:
            return sorted([*self._values, *self._spilled])

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def snapshot(self) -> dict[str, Any]:
        """Every key and value (spilled ones read back), sorted by key."""
        return {k: self.get(k) for k in self.keys()}

    @property
    def resident_size(self) -> int:
        return self._total

    def is_spilled(self, key: str) -> bool:
        return key in self._spilled

    def close(self) -> None:
        with self._lock:
            if self._spill_dir is not None:
                self._spill_dir.cleanup()
                self._spill_dir = None
            self._spilled.clear()

    # -- eviction -----------------------------------------------------------------------

    def _forget(self, key: str) -> None:
        if key in self._values:
            del self._values[key]
            self._total -= self._sizes.pop(key, 0)
        path = self._spilled.pop(key, None)
        if path:
            self._sizes.pop(key, None)
            os.unlink(path)

    def _evict(self, keep: str) -> None:
        assert self.max_size is not None
        if self._total <= self.max_size:
            return
        # Values no pending node needs go first, then the rest, least recent first.
        for pass_needed in (False, True):
            for key in list(self._values):
                if self._total <= self.max_size:
                    return
                if key == keep or self._needed(key) != pass_needed:
                    continue
                self._spill(key)
        if self._total > self.max_size:
            self._spill(keep)  # bigger than the whole budget on its own

    def _spill(self, key: str) -> None:
        if self._spill_dir is None:
            self._spill_dir = tempfile.TemporaryDirectory(prefix="pentora-ctx-")
        path = os.path.join(self._spill_dir.name, f"{len(self._spilled)}-{os.getpid()}-{self.spills}.pkl")
        with open(path, "wb") as f:
            pickle.dump(self._values[key], f, protocol=pickle.HIGHEST_PROTOCOL)
        del self._values[key]
        self._total -= self._sizes[key]
        self._spilled[key] = path
        self.spills += 1

    def _unspill(self, key: str) -> Any:
        path = self._spilled[key]
        with open(path, "rb") as f:
            value = pickle.load(f)
        size = self._sizes[key]
        if self.max_size is not None and size <= self.max_size:
            del self._spilled[key]
            os.unlink(path)
            self._values[key] = value
            self._total += size
            self._evict(keep=key)
        return value


def _size_of(value: Any, key: str) -> int:
    try:
        return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as e:
        raise ContextFullError(
            f"DataContext has a max_size, so values must be picklable to be sized and spilled; "
            f"'{key}' is not ({type(e).__name__}: {e})") from e
