"""The executor: a ready queue of nodes on gevent greenlets.

A node starts the moment its last dependency reaches a terminal state (no layer
barrier), at most ``max_parallel_nodes`` at once, ties broken by definition order.
When a node ends, its children are settled from a worklist: a child whose upstream
failed or was skipped is skipped in turn (transitively, in O(V + E)), unless its
module is ``always_run`` (reporters), which runs once all its upstreams are settled.

Stopping (fail-fast, ``cancel()``, global timeout) kills every running node's
greenlet and its pool, marks what never ran as cancelled, then runs the reporters
that have not run yet, each bounded by ``reporter_timeout``.

This module is the scheduling part of the engine, and ``Executor`` is what composes
the parts: it decides when each node runs (ready queue, trigger rules, conditions,
resume restores, stopping) and hands the node to ``_attempts.Attempts``, which runs
its attempts and retries, with ``_fanout.FanOut`` for ``for_each`` nodes. The module
keeps its name because the orchestrator imports ``Executor``, ``ExecOptions`` and
``CoreExecute`` from here.
"""

from __future__ import annotations

import gc
import heapq
import time
from collections import deque
from typing import Any

import gevent
import gevent.event
import gevent.queue
from gevent import GreenletExit
from loguru import logger

from ._attempts import Attempts, CoreExecute, ExecOptions
from ._dag import Dag
from ._errors import ConditionError, NodeTimeout
from ._nodectx import NodeRestore
from ._notify import Notifier
from ._plan import Plan
from ._records import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    TERMINAL,
    NodeRecord,
    ScanInfo,
    ScanResult,
)
from ._registry import ModuleType, Registry
from ._units import format_duration
from ._validate import Validated

__all__ = ["CoreExecute", "ExecOptions", "Executor"]

log = logger.bind(component="scheduler")


class Executor:
    def __init__(self, dag: Dag, plan: Plan, validated: Validated, registry: Registry, pm: Any,
                 scan: ScanInfo, opts: ExecOptions) -> None:
        self.dag, self.plan, self.validated, self.pm, self.scan = dag, plan, validated, pm, scan
        self.opts = opts
        self.registry = registry
        self.engine = dag.engine
        self.nodes = dag.nodes
        n = len(self.nodes)
        self.mtypes: list[ModuleType] = [registry.modules[nd.module_type] for nd in self.nodes]
        self.always = [m.always_run for m in self.mtypes]
        self.rules = [nd.trigger_rule or ("all_done" if m.always_run else m.cls.trigger_rule)
                      for nd, m in zip(self.nodes, self.mtypes)]
        self.ok_parents = [0] * n
        # Per-node lookups by index, prepared once: the hot path does no dict lookups by id.
        ids = [nd.instance_id for nd in self.nodes]
        self.configs = [validated.configs.get(nid, {}) for nid in ids]
        self.requires = [validated.requires.get(nid, ()) for nid in ids]
        self.has_condition = [nid in validated.conditions for nid in ids]
        self.records = [NodeRecord(node=nd.instance_id, module_type=nd.module_type) for nd in self.nodes]
        self.remaining = [len(p) for p in plan.parents]
        self.bad_parent: list[tuple[str, str] | None] = [None] * n
        self.ready: list[int] = []
        self.running: dict[int, Any] = {}  # node index → its worker greenlet (None: queued)
        self.work: gevent.queue.Queue[int | None] = gevent.queue.Queue()
        self.workers: list[Any] = []
        self.idle = 0
        self.finished: deque[int] = deque()
        self.settled: deque[int] = deque()
        self.wake = gevent.event.Event()
        self.stop_reason: str | None = None
        self.stop_status: str | None = None
        self.notify = Notifier(pm)
        self.pending_needs: dict[str, int] = {}
        for nd in self.nodes:
            for key in validated.requires.get(nd.instance_id, ()):
                self.pending_needs[key] = self.pending_needs.get(key, 0) + 1

        # Resuming: progress saved by pentora_node_restore or ctx.checkpoint, per node index.
        self.saved: dict[int, NodeRestore] = {}
        self._restores = bool(scan.options.get("resume")) and bool(
            pm.hook.pentora_node_restore.get_hookimpls())
        self.attempts = Attempts(self)

    # -- public --------------------------------------------------------------------------

    def run(self) -> ScanResult:
        # Per-node greenlets and records are short-lived and acyclic: tracking each
        # greenlet's spawn tree and re-walking the heap in full collections made the
        # per-node cost grow with the graph. Both are restored when the run ends.
        saved_tree = gevent.config.track_greenlet_tree
        saved_threshold = gc.get_threshold()
        # Leave a caller's own gc.freeze() alone: unfreezing is all or nothing.
        freeze = gc.get_freeze_count() == 0
        gevent.config.track_greenlet_tree = False
        if freeze:
            gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        try:
            return self._run()
        finally:
            gevent.config.track_greenlet_tree = saved_tree
            gc.set_threshold(*saved_threshold)
            if freeze:
                gc.unfreeze()

    def _run(self) -> ScanResult:
        started = time.time()
        self.notify("pentora_scan_start", self.scan)
        for i in range(len(self.nodes)):
            if self.remaining[i] == 0:
                heapq.heappush(self.ready, i)
        timeout = self.engine.global_timeout
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            self._fill()
            if not self.running or self.stop_reason:
                break
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self.wake.wait(wait) and deadline is not None and time.monotonic() >= deadline:
                self.stop(f"global timeout after {format_duration(timeout or 0)}", "timeout")
            self.wake.clear()
            self._drain()
        if self.stop_reason:
            self._abort()
        else:
            self._stop_workers()
        status = self.stop_status or COMPLETED
        result = ScanResult(
            scan_id=self.scan.scan_id, dag_name=self.dag.name, status=status,
            nodes={self.plan.ids[i]: self.records[i] for i in self.plan.order},
            context=self.scan.context, started_at=started, finished_at=time.time(),
            error=self.stop_reason)
        self.notify("pentora_scan_complete", self.scan, result)
        return result

    def stop(self, reason: str, status: str) -> None:
        """Ask the scan to stop; the main loop kills and reports. Hub thread only."""
        if self.stop_reason is None:
            self.stop_reason, self.stop_status = reason, status
            log.warning("stopping scan: {}", reason)
        self.wake.set()

    def record_map(self) -> dict[str, NodeRecord]:
        return {r.node: r for r in self.records}

    def needed(self, key: str) -> bool:
        return self.pending_needs.get(key, 0) > 0

    # -- scheduling ----------------------------------------------------------------------

    def _fill(self) -> None:
        limit = self.engine.max_parallel_nodes
        while self.ready and len(self.running) < limit and not self.stop_reason:
            i = heapq.heappop(self.ready)
            if self._condition_allows(i) and not self._restored(i):
                self.records[i].mark(RUNNING)
                self._dispatch(i)
            self._drain()

    def _dispatch(self, i: int) -> None:
        """Hand node ``i`` to a worker greenlet, starting one if none is free.

        Workers are reused: creating and first switching into a greenlet costs several
        microseconds, a queue hand-off a fraction of one. There are never more workers
        than ``max_parallel_nodes``. A worker running a node is what gets killed.
        """
        self.running[i] = None  # taken, not yet picked up by a worker
        self.work.put(i)
        if self.work.qsize() > self.idle and len(self.workers) < self.engine.max_parallel_nodes:
            self.workers.append(gevent.spawn_raw(self._worker))

    def _worker(self) -> None:
        me = gevent.getcurrent()
        while True:
            self.idle += 1
            try:
                i = self.work.get()
            finally:
                self.idle -= 1
            if i is None:
                return
            self.running[i] = me
            self._run_node(i)  # GreenletExit (a kill) propagates and ends the worker

    def _condition_allows(self, i: int) -> bool:
        if not self.has_condition[i]:
            return True
        cond = self.validated.conditions[self.nodes[i].instance_id]
        rec = self.records[i]
        try:
            if cond.evaluate(self._lookup):
                return True
        except ConditionError as e:
            rec.mark(FAILED)
            rec.error, rec.error_type = str(e), type(e).__name__
            self.release(i)
            self.notify("pentora_node_failed", self.scan, self.nodes[i], rec)
            self._settle(i)
            return False
        self._skip(i, f"condition {cond.text!r} is false")
        return False

    def _restored(self, i: int) -> bool:
        """Ask ``pentora_node_restore`` for what an earlier run saved: a completed node
        gets its outputs back and completes without running (True); a partly done one
        keeps its finished items for ``ctx.done_items()`` and runs (False)."""
        if not self._restores or self.always[i]:
            return False
        node, rec = self.nodes[i], self.records[i]
        try:
            saved = self.pm.hook.pentora_node_restore(scan=self.scan, node=node)
        except Exception as e:  # a broken store must not stop the scan: run the node instead
            log.opt(exception=e).error("pentora_node_restore failed for node '{}': {}; running it",
                                       node.instance_id, e)
            return False
        if saved is None:
            return False
        if not saved.completed:
            self.saved[i] = saved
            return False
        for key, value in saved.outputs.items():
            self.scan.context.set(key, value)
        for kind, record in saved.records:
            self.notify("pentora_record", self.scan, node, kind, record)
        rec.reason = "restored from an earlier run"
        rec.mark(RUNNING)
        rec.mark(COMPLETED)
        self.release(i)
        self.notify("pentora_node_complete", self.scan, node, rec)
        self.finished.append(i)
        return True

    def _lookup(self, name: str) -> Any:
        if name in self.scan.vars:
            return self.scan.vars[name]
        ctx = self.scan.context
        if ctx.has(name):
            return ctx.get(name)
        raise KeyError(name)

    def _skip(self, i: int, reason: str) -> None:
        rec = self.records[i]
        rec.reason = reason
        rec.mark(SKIPPED)
        self.release(i)
        self.notify("pentora_node_skipped", self.scan, self.nodes[i], rec)
        self._settle(i)

    def _settle(self, i: int) -> None:
        self.settled.append(i)

    def release(self, i: int) -> None:
        """Node ``i`` will read nothing more: its required keys may be spilled first."""
        for key in self.validated.requires.get(self.nodes[i].instance_id, ()):
            self.pending_needs[key] -= 1

    def _drain(self) -> None:
        """Process ended nodes and propagate to their children (iteratively)."""
        while self.finished or self.settled:
            if self.finished:
                i = self.finished.popleft()
                self.running.pop(i, None)
                rec = self.records[i]
                if (rec.status == FAILED and self.engine.fail_fast and not self.always[i]
                        and not self.stop_reason):
                    self.stop(f"fail-fast: node '{rec.node}' failed: {rec.error}", FAILED)
                self.settled.append(i)
                continue
            i = self.settled.popleft()
            status = self.records[i].status
            for c in self.plan.children[i]:
                if status == COMPLETED:
                    self.ok_parents[c] += 1
                elif self.bad_parent[c] is None:
                    self.bad_parent[c] = (self.nodes[i].instance_id, status)
                self.remaining[c] -= 1
                if self.remaining[c] == 0 and not self.stop_reason:
                    self._settle_child(c)

    def _settle_child(self, c: int) -> None:
        """All upstreams of ``c`` are settled: run it or skip it, by its trigger rule."""
        bad, rule = self.bad_parent[c], self.rules[c]
        if bad is None or rule == "all_done":
            heapq.heappush(self.ready, c)
        elif rule == "one_success" and self.ok_parents[c]:
            heapq.heappush(self.ready, c)
        elif rule == "one_success":
            self._skip(c, "no upstream completed (trigger_rule one_success)")
        else:
            self._skip(c, f"upstream '{bad[0]}' {bad[1]}")

    # -- running one node ----------------------------------------------------------------

    def _run_node(self, i: int) -> None:
        rec = self.records[i]
        try:
            self.attempts.run(i)
        except GreenletExit:
            if rec.status not in TERMINAL:
                self._mark_stopped(i)
            raise
        finally:
            if rec.status == RUNNING:  # defensive: never leave a node running
                self._mark_stopped(i)
            self.saved.pop(i, None)
            self.finished.append(i)
            self.wake.set()

    def _mark_stopped(self, i: int) -> None:
        rec = self.records[i]
        if self.stop_status == "timeout":
            rec.error, rec.error_type = self.stop_reason, "TimeoutError"
            rec.mark(FAILED)
            self.notify("pentora_node_failed", self.scan, self.nodes[i], rec)
        else:
            rec.reason = self.stop_reason or "cancelled"
            rec.mark(CANCELLED)
            self.notify("pentora_node_cancelled", self.scan, self.nodes[i], rec)

    # -- stopping ------------------------------------------------------------------------

    def _stop_workers(self) -> None:
        for _ in self.workers:
            self.work.put(None)  # each worker takes one sentinel and returns

    def _abort(self) -> None:
        while not self.work.empty():  # dispatched, never started
            self.work.get_nowait()
        greenlets = [g for g in self.running.values() if g is not None]
        for g in greenlets:
            gevent.kill(g)
        deadline = time.monotonic() + 1
        while any(not g.dead for g in greenlets) and time.monotonic() < deadline:
            gevent.sleep(0.01)
        for i in list(self.running):
            if self.records[i].status not in TERMINAL:
                # It would not die within a second (a module blocking the hub?): record it anyway.
                self._mark_stopped(i)
        self.running.clear()
        self.finished.clear()
        self.settled.clear()
        self._stop_workers()
        for i in self.plan.order:
            rec = self.records[i]
            if rec.status != PENDING:
                continue
            if self.always[i]:
                self._run_reporter(i)
            else:
                rec.reason = self.stop_reason
                rec.mark(CANCELLED)
                self.notify("pentora_node_cancelled", self.scan, self.nodes[i], rec)

    def _run_reporter(self, i: int) -> None:
        """Run an always_run node after a stop, bounded by ``reporter_timeout``."""
        self.records[i].mark(RUNNING)
        g = gevent.spawn(self.attempts.run, i)
        g.join(self.engine.reporter_timeout)
        if not g.dead:
            g.kill(block=True, timeout=1)
            err = NodeTimeout(f"reporter timeout after {format_duration(self.engine.reporter_timeout)}")
            self.attempts.fail(i, err)
