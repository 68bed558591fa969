"""A scan's events as a Server-Sent Events stream.

A client without ``Last-Event-ID`` gets a ``state`` event first (the scan's status,
every node's status, counts, progress, and ``last_id``), then every later event; one
with ``Last-Event-ID: N`` gets the events after N. A comment line every ``keepalive``
seconds keeps proxies from closing a quiet stream. The stream ends after ``scan_end``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pentora_plugins.server._events import EventLog

KEEPALIVE = 15.0


def state_data(log: EventLog, status: str) -> dict[str, Any]:
    return {"status": status, "nodes": dict(log.nodes), "counts": dict(log.counts),
            "progress": log.overall(), "last_id": log.last_id}


def stream(log: EventLog, status: Any, last_id: int | None,
           keepalive: float = KEEPALIVE) -> Iterator[str]:
    """``status()``: the scan's status now (for the ``state`` event)."""
    if last_id is None:
        data = state_data(log, status())
        # the state event carries the id of the last event it sums up: a reconnect from
        # there misses nothing and repeats nothing
        yield f"id: {log.last_id}\nevent: state\ndata: {json.dumps(data, default=str)}\n\n"
        last_id = log.last_id
    while True:
        for event in log.after(last_id):
            yield event.sse()
            last_id = event.id
            if event.type == "scan_end":
                return
        if log.ended:
            return
        if not log.wait(keepalive):
            yield ": keep-alive\n\n"


def stored(shown: dict[str, Any]) -> Iterator[str]:
    """A scan this server does not run (finished, or run before a restart): its state
    from the store, then its end when it has one."""
    scan = shown["scan"]
    data = {"status": scan["status"], "nodes": {n["node"]: n["status"] for n in shown["nodes"]},
            "counts": shown.get("counts", {}), "progress": None, "last_id": 0}
    yield f"event: state\ndata: {json.dumps(data, default=str)}\n\n"
    if scan["status"] in ("completed", "failed", "cancelled", "timeout", "interrupted"):
        end = {"status": scan["status"], "counts": shown.get("counts", {})}
        yield f"event: scan_end\ndata: {json.dumps(end)}\n\n"
