"""``ScanStore``: what a store of finished and running scans offers a reader.

The core keeps no scans itself: a plugin (the built-in ``store`` area) answers the
``pentora_scan_store`` hook with an object of this shape, so that code outside the
store (the server, a third-party dashboard) reads stored scans without importing it.
"""

from __future__ import annotations

import builtins
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ScanStore(Protocol):
    """Stored scans, as ``pentora scans list|show|rm`` see them (JSON-ready dicts).

    Statuses: ``queued``, ``running``, ``completed``, ``failed``, ``cancelled``,
    ``timeout``, ``interrupted`` (a scan whose process died, or that was marked so)."""

    path: str

    def list(self, status: str | None = None, since: float | None = None, limit: int = 50,
             offset: int = 0) -> builtins.list[dict[str, Any]]:
        """Newest first: ``id``, ``dag``, ``status``, ``started_at``, ``finished_at`` (ISO),
        ``runs``, ``targets``, ``records``, ``findings``; ``since`` a Unix time."""
        ...

    def count(self, status: str | None = None, since: float | None = None) -> int:
        """How many scans ``list`` would give without ``limit``/``offset``."""
        ...

    def get(self, scan_id: str) -> dict[str, Any] | None:
        """``{"scan": {...}, "nodes": [...], "counts": {kind: n}}`` as ``pentora scans show
        --format json`` gives them (without the records); None: no such scan."""
        ...

    def records(self, scan_id: str) -> builtins.list[dict[str, Any]]:
        """The records found by ``scan_id`` (dicts, ``kind`` first), in the order found."""
        ...

    def delete(self, scan_id: str) -> bool:
        """Remove the scan and everything of it; False: there was no such scan."""
        ...

    def mark_interrupted(self, scan_ids: builtins.list[str], reason: str = "interrupted") -> None:
        """Give the scans status ``interrupted`` with ``reason``, so ``--resume`` may run them."""
        ...
