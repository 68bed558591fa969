"""``RecordRouter``: route findings and node records to writers as they happen.

The base of every streaming output: the CLI's ``-o`` files and report nodes alike.
A subclass says which writers see a scan; the router sends each emitted record
(``pentora_record``) and each settled node record (kind ``node``) to them at once,
so an interrupted scan keeps everything written so far.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .hookspecs import hookimpl


class RecordRouter:
    """Writers have ``record(kind, record)``; ``writers_for(scan)`` picks them."""

    def writers_for(self, scan: Any) -> Iterable[Any]:
        raise NotImplementedError

    def _send(self, scan: Any, kind: str, record: Any) -> None:
        for writer in self.writers_for(scan):
            writer.record(kind, record)

    @hookimpl
    def pentora_record(self, scan: Any, kind: str, record: Any) -> None:
        self._send(scan, kind, record)

    @hookimpl
    def pentora_node_complete(self, scan: Any, record: Any) -> None:
        self._send(scan, "node", record)

    @hookimpl
    def pentora_node_failed(self, scan: Any, record: Any) -> None:
        self._send(scan, "node", record)

    @hookimpl
    def pentora_node_skipped(self, scan: Any, record: Any) -> None:
        self._send(scan, "node", record)

    @hookimpl
    def pentora_node_cancelled(self, scan: Any, record: Any) -> None:
        self._send(scan, "node", record)
