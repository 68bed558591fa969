"""The submitting side's stand-ins: ``celery_shards`` sends the shards and merges their
results; ``shard_result`` publishes one remote node's merged keys under its own id.

Findings stream: each shard's new findings are emitted (``pentora_record``, so ``-o``
files get them) as soon as that shard's result arrives, repeats across shards dropped.
A shard whose worker is gone (``_lease``) is sent again; a shard's result counts once
however often it arrives. When the scan ends, cancelled or not, its tasks are revoked,
its messages removed from Redis and a done marker left for the workers (``_redis``).
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

import gevent
from pentora_plugins.distributed._lease import BEAT, Leases
from pentora_plugins.distributed._redis import mark_done, purge
from pentora_plugins.distributed._split import DISPATCH_TYPE, RESULT_TYPE, RESULTS_KEY
from pentora_plugins.distributed._wire import ShardResults
from voluptuous import Optional, Required

from pentora import Module, ModuleError, NodeContext, clean_text
from pentora.schema import StrList

JOB_OPTION = "celery_job"  # the key of scan.options holding the plan of the shards
POLL = 0.25                # seconds between looks at the shards' states
READY_FAILED = ("FAILURE", "REVOKED", "REJECTED")
MISSED_PINGS = 3           # unanswered pings in a row before the scan gives up on its workers


def _failure_text(meta: dict[str, Any]) -> str:
    result = meta.get("result")
    if isinstance(result, BaseException):
        return str(result) or type(result).__name__
    if isinstance(result, dict) and "exc_message" in result:
        message = result["exc_message"]
        return " ".join(map(str, message)) if isinstance(message, (list, tuple)) else str(message)
    return str(result or meta.get("status"))


class _Shards:
    """The shards of one scan in flight: their tasks (a shard sent again has several),
    states, results and progress."""

    def __init__(self, ctx: NodeContext, job: dict[str, Any]) -> None:
        from pentora_plugins.distributed.app import QUEUE, check_broker, make_app

        self.ctx, self.job, self.count = ctx, job, job["shards"]
        self.app = make_app(job["broker"], job.get("backend"), job["visibility_timeout"])
        check_broker(self.app, job["broker"])  # `pentora scan` also checked that workers listen
        self.queue = QUEUE
        # This submission's name in the done markers: fresh even when a scan id is resumed.
        self.run = uuid.uuid4().hex
        self.leases = Leases(self.app, QUEUE)
        self.attempts: dict[int, list[str]] = {}  # shard -> its tasks' ids, in the order sent
        self.shard_of: dict[str, int] = {}
        self.failed: dict[str, str] = {}           # task id -> why it failed
        self.lost: set[str] = set()                # tasks given up for lost (still read: maybe only slow)
        self.succeeded: set[str] = set()
        self.results = ShardResults()
        self.failures: dict[int, str] = {}
        self.meta: dict[int, Any] = {}
        # No change at all for this long (every worker gone, none restarted): give up.
        self.stall = job["shard_timeout"] + job["visibility_timeout"] + 30.0
        # While nothing changes, ask every so often whether any worker is left at all.
        self.ping_every = min(30.0, max(5.0, job["visibility_timeout"]))
        self.unanswered = 0
        for k in range(1, self.count + 1):
            self._send(k)

    def _send(self, k: int) -> None:
        from pentora_plugins.distributed.app import TASK

        task_id = self.app.send_task(TASK, args=[self._payload(k)]).id
        self.attempts.setdefault(k, []).append(task_id)
        self.shard_of[task_id] = k

    def _payload(self, k: int) -> dict[str, Any]:
        job = self.job
        return {"dag": job["dag"], "vars": job["vars"], "shard": [k, self.count, job["seed"]],
                "disabled": job["disabled"], "scan_id": f"{self.ctx.scan.scan_id}-{k}of{self.count}",
                "run": self.run, "beat": BEAT}

    def _pending(self) -> list[int]:
        return [k for k in sorted(self.attempts) if k not in self.results and k not in self.failures]

    def wait(self) -> None:
        last_change = next_ping = time.monotonic()
        while pending := self._pending():
            gevent.sleep(POLL)
            now = time.monotonic()
            changed = any([self._look(k, now) for k in pending])  # a list: look at every shard
            self._resend_lost(now)
            if changed:
                last_change = next_ping = time.monotonic()
                self.unanswered = 0
                self._progress()
                continue
            quiet = time.monotonic() - last_change
            if quiet > self.stall:
                self._give_up(self._pending(), f"made no progress for {self.stall:.0f}s")
            if quiet > self.ping_every and time.monotonic() >= next_ping:
                next_ping = time.monotonic() + self.ping_every
                self._check_workers(self._pending())

    def _look(self, k: int, now: float) -> bool:
        """Read shard ``k``'s tasks' states; settle it when one succeeded or all failed."""
        changed = False
        for task_id in self.attempts[k]:
            if task_id in self.failed:
                continue
            meta = self.app.backend.get_task_meta(task_id, cache=False)
            status = meta.get("status")
            if status == "SUCCESS":
                self._settle(k, task_id, meta)
                return True
            if status in READY_FAILED:
                self.failed[task_id], changed = _failure_text(meta), True
                self.leases.forget(task_id)
            elif self.leases.observe(task_id, meta, now):
                self.meta[k], changed = meta.get("result"), True
        if all(t in self.failed for t in self.attempts[k]):
            self.failures[k] = self.failed[self.attempts[k][-1]]
            self.ctx.log.error(f"shard {k}/{self.count} failed: {self.failures[k]}")
            self._done_with(k)
        return changed

    def _resend_lost(self, now: float) -> None:
        """Send again the shards whose task no worker holds any more, naming the worker."""
        wanted = [t for k in self._pending() for t in self.attempts[k]
                  if t not in self.failed and t not in self.lost]
        lost = self.leases.lost(wanted, now)
        if not lost:
            return
        by_worker: dict[str, list[int]] = {}
        for task_id in lost:
            self.lost.add(task_id)
            worker = self.leases.worker(task_id) or "unknown (it took the shard but never started it)"
            by_worker.setdefault(worker, []).append(self.shard_of[task_id])
            self.leases.forget(task_id)
            self._send(self.shard_of[task_id])
        for worker, shards in sorted(by_worker.items()):
            names = ", ".join(f"{k}/{self.count}" for k in sorted(shards))
            many = "s" if len(shards) > 1 else ""
            self.ctx.log.warning(
                f"worker {worker} is gone while holding shard{many} {names}: no heartbeat for "
                f"{self.leases.lease:.0f}s and no worker holds {'them' if many else 'it'}; "
                f"sending {'them' if many else 'it'} again")
        # The lost messages would come back from Redis after the visibility timeout: not wanted.
        self._tidy(lost, revoke=False)

    def _check_workers(self, pending: list[int]) -> None:
        from pentora_plugins.distributed.app import live_workers

        if live_workers(self.app):
            self.unanswered = 0
            return
        self.unanswered += 1
        if self.unanswered >= MISSED_PINGS:
            self._give_up(pending, f"have no worker: none answered {MISSED_PINGS} pings "
                                   f"{self.ping_every:.0f}s apart")

    def _give_up(self, pending: list[int], why: str) -> None:
        names = ", ".join(f"{k}/{self.count}" for k in sorted(pending))
        raise ModuleError(f"shards {names} {why}; start workers (`pentora worker --broker URL`) and "
                          "run the scan again", self.ctx.node_id)

    def _settle(self, k: int, task_id: str, meta: dict[str, Any]) -> None:
        self.succeeded.add(task_id)
        result = meta["result"]
        new = self.results.add({**result, "shard": k})
        if new is None:  # cannot happen while k is pending; ShardResults is the guarantee
            return
        for kind, record in new:
            self.ctx.emit(record, kind=kind)
        self.meta[k] = result.get("items")
        done = len(self.results) + len(self.failures)
        # The worker's name comes over the broker: cleaned like any text from outside.
        line = f"shard {k}/{self.count} finished on {clean_text(result['worker'])} ({done}/{self.count} done)"
        self.ctx.log.info(line)
        if self.ctx.scan.options.get("progress"):
            sys.stderr.write(f"{line}, items {self._items()[0]}\n")
        self._done_with(k)

    def _done_with(self, k: int) -> None:
        """Shard ``k`` is settled: its other tasks (sent again, or the first of a resend)
        need not run, and a worker running one stops."""
        mark_done(self.app.backend, self.run, k)
        others = [t for t in self.attempts[k] if t not in self.succeeded and t not in self.failed]
        for task_id in others:
            self.leases.forget(task_id)
        self._tidy(others)

    def _tidy(self, task_ids: list[str], revoke: bool = True) -> None:
        if not task_ids:
            return
        try:
            if revoke:
                self.app.control.revoke(task_ids)
            purge(self.app, task_ids, self.queue)
        except Exception as e:  # the broker went away meanwhile: the scan's own outcome matters more
            self.ctx.log.warning(f"could not remove the shards' stale tasks from the broker: {e}")

    def _items(self) -> tuple[int, int | None]:
        metas = [m for m in self.meta.values() if isinstance(m, dict)]
        done = sum(int(m.get("done") or 0) for m in metas)
        totals = [m.get("total") for m in metas]
        known = len(metas) == self.count and all(totals)
        return done, (sum(int(t) for t in totals if t) if known else None)

    def _progress(self) -> None:
        done, total = self._items()
        self.ctx.progress(done, total)

    def close(self) -> None:
        """The scan is over (done, failed or cancelled): mark it so for the workers, revoke
        its unsettled tasks, remove its messages from Redis, drop the stored results."""
        ids = [t for tasks in self.attempts.values() for t in tasks]
        mark_done(self.app.backend, self.run)
        unsettled = [t for t in ids if t not in self.succeeded and t not in self.failed]
        if unsettled:
            self.app.control.revoke(unsettled)
        removed = purge(self.app, ids, self.queue)
        if removed:
            self.ctx.log.info(f"removed {removed} stale shard message(s) from the broker")
        for task_id in ids:
            self.app.AsyncResult(task_id).forget()

    def merged(self, nodes: list[str]) -> dict[str, Any]:
        """Per remote node: its status on each shard, errors, and the merged keys."""
        return self.results.merged(nodes)


class CeleryShards(Module):
    """Send one Celery task per shard, wait for all, emit and merge what they found."""

    module_type = DISPATCH_TYPE
    description = "runs the shards of a scan on Celery workers and merges their results"
    produces = (RESULTS_KEY,)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        job = ctx.scan.options.get(JOB_OPTION)
        if not job:
            raise ModuleError("celery_shards runs only under `pentora scan --executor celery`", ctx.node_id)
        shards = _Shards(ctx, job)
        try:
            shards.wait()
        finally:
            try:
                shards.close()
            except Exception as e:  # the broker went away meanwhile: the scan's own error matters more
                ctx.log.warning(f"could not revoke, remove or forget the shards' tasks: {e}")
        if shards.failures:
            text = "; ".join(f"shard {k}/{shards.count}: {m}" for k, m in sorted(shards.failures.items()))
            raise ModuleError(f"{len(shards.failures)} of {shards.count} shards failed: {text}", ctx.node_id)
        ctx.set(RESULTS_KEY, shards.merged(job["nodes"]))


class ShardResult(Module):
    """One remote node, merged: publishes its keys; fails if it failed on a shard."""

    module_type = RESULT_TYPE
    description = "a node that ran on the shards' workers, its outputs merged"
    requires = (RESULTS_KEY,)
    config_schema = {
        Required("node", description="the remote node's id"): str,
        Optional("produces", default=[], description="the keys it produces"): StrList(),
    }

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return cls.requires, tuple(config.get("produces", ()))

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        merged = ctx.get(RESULTS_KEY)
        mine = merged.get(config["node"], {"statuses": {}, "errors": {}})
        if mine["errors"]:
            text = "; ".join(f"shard {k}: {e}" for k, e in sorted(mine["errors"].items()))
            raise ModuleError(f"failed on {len(mine['errors'])} shard(s): {text}", ctx.node_id)
        statuses = set(mine["statuses"].values())
        if statuses and statuses <= {"skipped", "cancelled"}:
            states = ", ".join(sorted(statuses))
            ctx.log.warning(f"node '{config['node']}' did not run on any shard ({states})")
        for key in config["produces"]:
            if key in merged["__outputs__"]:
                ctx.set(key, merged["__outputs__"][key])
