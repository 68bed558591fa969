"""Per-scan event logs, and the hook object that fills one from a scan's lifecycle.

Each scan has one ``EventLog``: events numbered 1, 2, 3… in the order the engine's hooks
ran, kept for the server's life, so that a client reconnecting with ``Last-Event-ID: N``
gets exactly what it missed. Waiters are woken through a gevent event that is replaced
at each append (every waiter wakes once per batch, none misses an append).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import gevent.event
from pentora_plugins.kit.records import record_dict

from pentora import hookimpl

NODE_END = {"complete": "node_complete", "failed": "node_failed", "skipped": "node_skipped",
            "cancelled": "node_cancelled"}


@dataclass
class Event:
    id: int
    type: str
    data: dict[str, Any]

    def sse(self) -> str:
        # every client following the scan sends the same text: serialised once, not per client
        text: str | None = self.__dict__.get("_sse")
        if text is None:
            text = f"id: {self.id}\nevent: {self.type}\ndata: {json.dumps(self.data, default=str)}\n\n"
            self.__dict__["_sse"] = text
        return text


@dataclass
class EventLog:
    """The events of one scan, and what a late client's ``state`` event needs."""

    scan_id: str
    events: list[Event] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)  # node → status
    counts: dict[str, int] = field(default_factory=dict)  # record kind → how many
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)  # node → latest progress
    ended: bool = False
    first_start: float | None = None  # monotonic time the first node started
    _changed: gevent.event.Event = field(default_factory=gevent.event.Event)

    def add(self, type_: str, data: dict[str, Any]) -> Event:
        event = Event(len(self.events) + 1, type_, data)
        self.events.append(event)
        if type_ == "scan_end":
            self.ended = True
        changed, self._changed = self._changed, gevent.event.Event()
        changed.set()
        return event

    def after(self, last_id: int) -> list[Event]:
        return self.events[max(last_id, 0):]

    def wait(self, timeout: float) -> bool:
        """Block this greenlet until an event is added (True) or ``timeout`` passes."""
        return self._changed.wait(timeout)

    @property
    def last_id(self) -> int:
        return len(self.events)

    def overall(self) -> dict[str, Any]:
        """``done``/``total``: the nodes that ended, of all; then the scan's work items
        (``items``), summed over the nodes that announced a total, with the rate since
        the first started and the time left at that rate (None until it can be said)."""
        total = len(self.nodes)
        done = sum(1 for s in self.nodes.values() if s not in ("pending", "running"))
        return {"done": done, "total": total, **self.items(), "nodes": dict(self.progress)}

    def items(self) -> dict[str, Any]:
        """``{items_done, items_total, rate, eta}`` of the scan so far."""
        counted = [p for p in self.progress.values() if p.get("total") is not None]
        items_done = sum(int(p["done"]) for p in counted)
        items_total = sum(int(p["total"]) for p in counted)
        elapsed = time.monotonic() - self.first_start if self.first_start is not None else 0.0
        rate = items_done / elapsed if elapsed > 0 and items_done else None
        eta = (items_total - items_done) / rate if rate and not self.ended else None
        return {"items_done": items_done, "items_total": items_total,
                "rate": round(rate, 3) if rate else None,
                "eta": round(max(eta, 0.0), 3) if eta is not None else None}


class ScanEvents:
    """Registered on the scan's plugin manager for its life; ignores other scans' hooks."""

    def __init__(self, log: EventLog, dag: Any) -> None:
        self.log = log
        self.started: dict[str, float] = {}
        for node in dag.nodes:
            log.nodes.setdefault(node.instance_id, "pending")

    def _mine(self, scan: Any) -> bool:
        return bool(scan.scan_id == self.log.scan_id)

    @hookimpl
    def pentora_scan_start(self, scan: Any) -> None:
        # The DAG that runs may not be the one submitted: on Celery, a dispatch node and
        # stand-ins (of the same ids) for the nodes the workers run.
        if self._mine(scan):
            for node in scan.dag.nodes:
                self.log.nodes.setdefault(node.instance_id, "pending")

    @hookimpl
    def pentora_node_start(self, scan: Any, node: Any, record: Any) -> None:
        if self._mine(scan):
            self.log.nodes[node.instance_id] = "running"
            self.started[node.instance_id] = time.monotonic()
            if self.log.first_start is None:
                self.log.first_start = self.started[node.instance_id]
            self.log.add("node_start", {"node": node.instance_id, "attempt": record.attempts})

    @hookimpl
    def pentora_node_progress(self, scan: Any, node: Any, done: int, total: int | None) -> None:
        if not self._mine(scan):
            return
        elapsed = time.monotonic() - self.started.get(node.instance_id, time.monotonic())
        rate = done / elapsed if elapsed > 0 else None
        eta = (total - done) / rate if rate and total is not None else None
        data = {"node": node.instance_id, "done": done, "total": total,
                "rate": round(rate, 3) if rate else None, "eta": round(eta, 3) if eta else None}
        self.log.progress[node.instance_id] = data
        # the whole scan's bar moves with each node's: items, rate and time left
        self.log.add("node_progress", {**data, "scan": self.log.items()})

    @hookimpl
    def pentora_record(self, scan: Any, node: Any, kind: str, record: Any) -> None:
        if self._mine(scan):
            self.log.counts[kind] = self.log.counts.get(kind, 0) + 1
            self.log.add("record", {"node": node.instance_id, "kind": kind,
                                    "record": record_dict(kind, record)})

    def _end(self, scan: Any, record: Any, status: str) -> None:
        if self._mine(scan):
            self.log.nodes[record.node] = record.status
            self.log.add(NODE_END[status], {"node": record.node, "status": record.status,
                                            "record": record.to_dict()})

    @hookimpl
    def pentora_node_complete(self, scan: Any, record: Any) -> None:
        self._end(scan, record, "complete")

    @hookimpl
    def pentora_node_failed(self, scan: Any, record: Any) -> None:
        self._end(scan, record, "failed")

    @hookimpl
    def pentora_node_skipped(self, scan: Any, record: Any) -> None:
        self._end(scan, record, "skipped")

    @hookimpl
    def pentora_node_cancelled(self, scan: Any, record: Any) -> None:
        self._end(scan, record, "cancelled")

    @hookimpl
    def pentora_scan_complete(self, scan: Any, result: Any) -> None:
        if self._mine(scan):
            self.log.add("scan_end", {"status": result.status, "counts": dict(self.log.counts)})
