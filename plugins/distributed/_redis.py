"""What a scan keeps in Redis besides Celery's own state, and what it removes when done.

- **Done markers** in the result backend: ``pentora-done-RUN`` once the scan is over
  (finished, failed or cancelled), ``pentora-done-RUN-K`` once shard K's result is in. A
  worker reads them before it runs a shard and while it runs one, and drops a shard that
  is no longer wanted. ``RUN`` is fresh for every submission, so a resumed scan (same
  scan id) is never mistaken for its earlier run.
- **Stale messages** in the broker: a shard's message stays in the Redis transport's
  ``unacked`` hash while its worker holds it, and goes back to the queue when the
  ``visibility_timeout`` has passed without an ack, however long ago the scan ended.
  :func:`purge` removes a scan's messages from the queue and from ``unacked``, so nothing
  of it runs later.

The broker side reads kombu's Redis layout (queue lists named after the queue, one per
priority step; ``unacked`` and ``unacked_index`` keyed by delivery tag): kombu offers no
call to drop chosen messages from either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from loguru import logger

log = logger.bind(component="distributed")
PREFIX = "pentora-done-"


def _marker(run: str, shard: int | None = None) -> str:
    return f"{PREFIX}{run}" if shard is None else f"{PREFIX}{run}-{shard}"


def mark_done(backend: Any, run: str, shard: int | None = None) -> None:
    """Say in the result backend that the scan ``run`` (or its shard) needs no more work."""
    if hasattr(backend, "set"):
        backend.set(_marker(run, shard), "done")


def superseded(backend: Any, run: str | None, shard: int) -> str | None:
    """Why shard ``shard`` of scan ``run`` must not run (any more), or ``None``."""
    if not run or not hasattr(backend, "get"):
        return None  # a payload from before the markers, or a backend without keys
    if backend.get(_marker(run)) is not None:
        return "its scan is over"
    if backend.get(_marker(run, shard)) is not None:
        return "its result is already in (it ran elsewhere)"
    return None


def task_id(message: Any) -> str | None:
    """The Celery task id of a message as the Redis transport stores it (JSON)."""
    try:
        data = json.loads(message)
    except (TypeError, ValueError):
        return None
    if isinstance(data, list) and data:  # an ``unacked`` entry: [message, exchange, routing key]
        data = data[0]
    if not isinstance(data, dict):
        return None
    found = (data.get("headers") or {}).get("id") or (data.get("properties") or {}).get("correlation_id")
    return str(found) if found else None


def _redis_channel(conn: Any) -> Any | None:
    return conn.default_channel if conn.transport.driver_type == "redis" else None


def _queue_keys(channel: Any, queue: str) -> list[str]:
    # One list per priority step; ``_q_for_pri`` is how kombu itself names them.
    return list(dict.fromkeys(channel._q_for_pri(queue, pri) for pri in channel.priority_steps))


def queued_ids(app: Any, queue: str) -> set[str] | None:
    """Ids of the tasks waiting in ``queue`` (taken by no worker); ``None`` if the broker
    is not Redis (nothing can be told then)."""
    with app.connection_for_write() as conn:
        channel = _redis_channel(conn)
        if channel is None:
            return None
        client = channel.client
        out: set[str] = set()
        for key in _queue_keys(channel, queue):
            out.update(i for i in map(task_id, client.lrange(key, 0, -1)) if i)
        return out


def purge(app: Any, ids: Iterable[str], queue: str) -> int:
    """Remove the messages of tasks ``ids`` from ``queue`` and from ``unacked``; how many."""
    wanted = set(ids)
    if not wanted:
        return 0
    removed = 0
    with app.connection_for_write() as conn:
        channel = _redis_channel(conn)
        if channel is None:
            log.debug("broker is not Redis: the scan's messages are left to the broker")
            return 0
        client = channel.client
        for key in _queue_keys(channel, queue):
            for raw in client.lrange(key, 0, -1):
                if task_id(raw) in wanted:
                    removed += int(client.lrem(key, 1, raw))
        stale = [tag for tag, raw in client.hscan_iter(channel.unacked_key) if task_id(raw) in wanted]
        for tag in stale:
            with client.pipeline() as pipe:
                pipe.zrem(channel.unacked_index_key, tag).hdel(channel.unacked_key, tag)
                removed += int(pipe.execute()[1])
    return removed
