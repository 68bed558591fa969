"""Is someone still running this shard? The submitting side's lease on each shard's task.

A running shard writes a heartbeat to the result backend every :data:`BEAT` seconds (its
``PROGRESS`` state, with a counter that moves). When a task's state has not changed for
:data:`LEASE` seconds and its message is not waiting in the queue, the workers are asked
who holds it (``inspect().query_task``, a broadcast every live worker answers from its
own list of active and reserved tasks). Held by none, :data:`CONFIRM` times in a row
:data:`BEAT` apart, the task is lost: its worker died (SIGKILL, power loss, a cut
network) or was restarted under the same name. The caller sends the shard again.

Why a lease: ``acks_late`` with ``task_reject_on_worker_lost`` covers a pool child that
dies under a living worker, not the worker itself (and the gevent pool has no child):
the message of a SIGKILLed worker waits in Redis's ``unacked`` hash until the transport's
``visibility_timeout`` (an hour by default), and nothing says so. The workers' own event
heartbeats are off (no gossip, no events) and say nothing about a task lost by a worker
restarted under the same name; the task's own heartbeat and a question about the very
task do. A worker only slow to answer gets its shard sent again too; its result, should it
come, counts once (``ShardResults``).
"""

from __future__ import annotations

import json
from typing import Any

from pentora_plugins.distributed._redis import queued_ids

BEAT = 5.0          # seconds between a running shard's heartbeats (the submitting side sends it)
LEASE = 20.0        # a task whose state is this old is looked for among the workers
CONFIRM = 2         # looks, BEAT apart, that find no worker holding it: lost
ASK_TIMEOUT = 1.0   # seconds the workers have to answer a look


class Leases:
    """The tasks of a scan's shards as seen from the submitting side: when each last
    changed, who holds it, and which are lost."""

    def __init__(self, app: Any, queue: str, lease: float = LEASE, every: float = BEAT,
                 confirm: int = CONFIRM) -> None:
        self.app, self.queue = app, queue
        self.lease, self.every, self.confirm = lease, every, confirm
        self.last: dict[str, tuple[tuple[Any, str], float]] = {}  # id -> (state seen, when it changed)
        self.holder: dict[str, str] = {}
        self.misses: dict[str, int] = {}
        self.next_look = 0.0

    def observe(self, task_id: str, meta: dict[str, Any], now: float) -> bool:
        """Note a task's state from the backend; whether it changed since last seen."""
        result = meta.get("result")
        seen = (meta.get("status"), json.dumps(result, sort_keys=True, default=str))
        if isinstance(result, dict):
            # STARTED carries the worker's ``hostname``; our PROGRESS beats its ``worker``
            worker = result.get("worker") or result.get("hostname")
            if worker:
                self.holder[task_id] = str(worker)
        before = self.last.get(task_id)
        if before is not None and before[0] == seen:
            return False
        self.last[task_id] = (seen, now)
        self.misses.pop(task_id, None)
        return before is not None

    def worker(self, task_id: str) -> str | None:
        """The worker that last said it held the task."""
        return self.holder.get(task_id)

    def forget(self, task_id: str) -> None:
        self.last.pop(task_id, None)
        self.holder.pop(task_id, None)
        self.misses.pop(task_id, None)

    def lost(self, task_ids: list[str], now: float) -> list[str]:
        """Of ``task_ids`` (tasks still wanted), those no worker holds any more."""
        quiet = [t for t in task_ids if t in self.last and now - self.last[t][1] >= self.lease]
        if not quiet or now < self.next_look:
            return []
        self.next_look = now + self.every
        if any(self.last[t][0][0] == "PENDING" for t in quiet):
            queued = queued_ids(self.app, self.queue)
            if queued is None:  # not Redis: a pending task may be queued or held, no telling
                quiet = [t for t in quiet if self.last[t][0][0] != "PENDING"]
            else:
                quiet = [t for t in quiet if t not in queued]
        if not quiet:
            return []
        held = self._held(quiet)
        out = []
        for t in quiet:
            if t in held:  # a live worker has it (its beats do not arrive): a new lease
                self.holder[t] = held[t]
                self.misses.pop(t, None)
                self.last[t] = (self.last[t][0], now)
                continue
            self.misses[t] = self.misses.get(t, 0) + 1
            if self.misses[t] >= self.confirm:
                out.append(t)
        return out

    def _held(self, task_ids: list[str]) -> dict[str, str]:
        replies = self.app.control.inspect(timeout=ASK_TIMEOUT).query_task(*task_ids) or {}
        return {tid: str(worker) for worker, tasks in replies.items() for tid in (tasks or {})}
