"""The submitting side's stand-ins: ``celery_shards`` sends the shards and merges their
results; ``shard_result`` publishes one remote node's merged keys under its own id.

Findings stream: each shard's new findings are emitted (``pentora_record``, so ``-o``
files get them) as soon as that shard's result arrives, repeats across shards dropped.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import gevent
from pentora_plugins.distributed._split import DISPATCH_TYPE, RESULT_TYPE, RESULTS_KEY
from pentora_plugins.distributed._wire import Deduper, decode, merge_values
from voluptuous import Optional, Required

from pentora import Module, ModuleError, NodeContext
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
    """The shards of one scan in flight: their tasks, states, results and progress."""

    def __init__(self, ctx: NodeContext, job: dict[str, Any]) -> None:
        from pentora_plugins.distributed.app import TASK, check_broker, make_app

        self.ctx, self.job, self.count = ctx, job, job["shards"]
        self.app = make_app(job["broker"], job.get("backend"), job["visibility_timeout"])
        check_broker(self.app, job["broker"])  # `pentora scan` also checked that workers listen
        self.tasks = {k: self.app.send_task(TASK, args=[self._payload(k)]) for k in range(1, self.count + 1)}
        self.results: dict[int, dict[str, Any]] = {}
        self.failures: dict[int, str] = {}
        self.meta: dict[int, Any] = {}
        self.seen = Deduper()
        # No change at all for this long (every worker gone, none restarted): give up.
        self.stall = job["shard_timeout"] + job["visibility_timeout"] + 30.0
        # While nothing changes, ask every so often whether any worker is left at all.
        self.ping_every = min(30.0, max(5.0, job["visibility_timeout"]))
        self.unanswered = 0

    def _payload(self, k: int) -> dict[str, Any]:
        job = self.job
        return {"dag": job["dag"], "vars": job["vars"], "shard": [k, self.count, job["seed"]],
                "disabled": job["disabled"], "scan_id": f"{self.ctx.scan.scan_id}-{k}of{self.count}"}

    def wait(self) -> None:
        pending = dict(self.tasks)
        last_change = next_ping = time.monotonic()
        while pending:
            gevent.sleep(POLL)
            changed = False
            for k, res in list(pending.items()):
                meta = self.app.backend.get_task_meta(res.id, cache=False)
                status = meta.get("status")
                if status == "SUCCESS" or status in READY_FAILED:
                    del pending[k]
                    self._settle(k, meta)
                    changed = True
                elif meta.get("result") != self.meta.get(k):
                    self.meta[k], changed = meta.get("result"), True
            if changed:
                last_change = next_ping = time.monotonic()
                self.unanswered = 0
                self._progress()
                continue
            quiet = time.monotonic() - last_change
            if quiet > self.stall:
                self._give_up(pending, f"made no progress for {self.stall:.0f}s")
            if quiet > self.ping_every and time.monotonic() >= next_ping:
                next_ping = time.monotonic() + self.ping_every
                self._check_workers(pending)

    def _check_workers(self, pending: dict[int, Any]) -> None:
        from pentora_plugins.distributed.app import live_workers

        if live_workers(self.app):
            self.unanswered = 0
            return
        self.unanswered += 1
        if self.unanswered >= MISSED_PINGS:
            self._give_up(pending, f"have no worker: none answered {MISSED_PINGS} pings "
                                   f"{self.ping_every:.0f}s apart")

    def _give_up(self, pending: dict[int, Any], why: str) -> None:
        names = ", ".join(f"{k}/{self.count}" for k in sorted(pending))
        raise ModuleError(f"shards {names} {why}; start workers (`pentora worker --broker URL`) and "
                          "run the scan again", self.ctx.node_id)

    def _settle(self, k: int, meta: dict[str, Any]) -> None:
        if meta.get("status") != "SUCCESS":
            self.failures[k] = _failure_text(meta)
            self.ctx.log.error(f"shard {k}/{self.count} failed: {self.failures[k]}")
            return
        result = self.results[k] = meta["result"]
        for _node, kind, data in result["records"]:
            record = decode(data)
            if self.seen.new(kind, record):
                self.ctx.emit(record, kind=kind)
        self.meta[k] = result.get("items")
        done = len(self.results) + len(self.failures)
        line = f"shard {k}/{self.count} finished on {result['worker']} ({done}/{self.count} done)"
        self.ctx.log.info(line)
        if self.ctx.scan.options.get("progress"):
            sys.stderr.write(f"{line}, items {self._items()[0]}\n")

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
        """Revoke the shards not yet settled (a cancelled scan); drop the stored results."""
        ids = [res.id for k, res in self.tasks.items() if k not in self.results and k not in self.failures]
        if ids:
            self.app.control.revoke(ids)
        for res in self.tasks.values():
            res.forget()

    def merged(self, nodes: list[str]) -> dict[str, Any]:
        """Per remote node: its status on each shard, errors, and the merged keys."""
        shards = [self.results[k] for k in sorted(self.results)]
        keys = sorted({key for r in shards for key in r["outputs"]})
        outputs = {key: merge_values([decode(r["outputs"][key]) for r in shards if key in r["outputs"]])
                   for key in keys}
        out: dict[str, Any] = {"__outputs__": outputs}
        for nid in nodes:
            states = {r["shard"]: r["nodes"].get(nid, {}) for r in shards}
            out[nid] = {"statuses": {k: s.get("status") for k, s in states.items()},
                        "errors": {k: s.get("error") for k, s in states.items() if s.get("error")}}
        return out


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
                ctx.log.warning(f"could not revoke or forget the shards' tasks: {e}")
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
