"""Scheduling: which node runs next, and what a node's end means for its children.

A node starts the moment its last dependency reaches a terminal state (no layer
barrier), at most ``max_parallel_nodes`` at once, ties broken by definition order.
When a node ends, its children are settled from a worklist: a child whose upstream
failed or was skipped is skipped in turn (transitively, in O(V + E)), unless its
trigger rule says otherwise (``all_done``, the rule of ``always_run`` reporters: it runs
once all its upstreams are settled; ``one_success``: once one of them completed).

The scheduler does not know how a node runs: it hands the node's index to a worker
greenlet, which calls the executor's ``Attempts``, and learns of the node's end from
its record. It also owns the stop state (fail-fast, ``cancel()``, global timeout) and
halts what runs when the scan stops. Hub thread only.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import gevent.queue
from gevent import GreenletExit

from ._errors import ConditionError
from ._log import logger
from ._records import CANCELLED, COMPLETED, FAILED, RUNNING, SKIPPED, TERMINAL
from ._units import format_duration

if TYPE_CHECKING:
    from ._execute import Executor

log = logger.bind(component="scheduler")


class Scheduler:
    """The ready queue, its workers and the stop state of one scan."""

    def __init__(self, ex: Executor) -> None:
        # The executor's tables themselves (never rebound), and bound methods taken once:
        # the hot path goes through no other object's attributes.
        self.nodes, self.records, self.scan, self.notify = ex.nodes, ex.records, ex.scan, ex.notify
        self.engine, self.plan, self.validated, self.always = ex.engine, ex.plan, ex.validated, ex.always
        self.release, self.restored, self.run_attempts = ex.release, ex.restored, ex.attempts.run
        n = len(self.nodes)
        self.rules = [nd.trigger_rule or ("all_done" if m.always_run else m.cls.trigger_rule)
                      for nd, m in zip(self.nodes, ex.mtypes)]
        self.has_condition = [nd.instance_id in self.validated.conditions for nd in self.nodes]
        self.ok_parents = [0] * n
        self.remaining = [len(p) for p in self.plan.parents]
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
        self.stop_requested_at: float | None = None  # monotonic: the watchdog's clock
        self.deadline: float | None = None  # the global timeout's, monotonic

    def loop(self) -> None:
        """Run nodes until none is left to run or the scan stops (the global timeout too)."""
        for i in range(len(self.nodes)):
            if self.remaining[i] == 0:
                heapq.heappush(self.ready, i)
        timeout = self.engine.global_timeout
        deadline = self.deadline = time.monotonic() + timeout if timeout else None
        while True:
            self._fill()
            if not self.running or self.stop_reason:
                break
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self.wake.wait(wait) and deadline is not None and time.monotonic() >= deadline:
                self.stop(f"global timeout after {format_duration(timeout or 0)}", "timeout")
            self.wake.clear()
            self._drain()

    def stop(self, reason: str, status: str) -> None:
        """Ask the scan to stop; the main loop kills and reports. Hub thread only."""
        if self.stop_reason is None:
            self.stop_reason, self.stop_status = reason, status
            self.stop_requested_at = time.monotonic()
            log.warning("stopping scan: {}", reason)
        self.wake.set()

    # -- the ready queue -------------------------------------------------------------------

    def _fill(self) -> None:
        limit = self.engine.max_parallel_nodes
        while self.ready and len(self.running) < limit and not self.stop_reason:
            i = heapq.heappop(self.ready)
            if self._condition_allows(i):
                if self.restored(i):  # completed by an earlier run: ends without running
                    self.finished.append(i)
                else:
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
            try:
                self._run_node(i)  # GreenletExit (a kill) propagates and ends the worker
            except GreenletExit:
                raise
            except BaseException as e:  # an engine bug must not cost the scan its worker
                log.opt(exception=e).error("node '{}' ended with an error outside its module: {}",
                                           self.nodes[i].instance_id, e)

    def _run_node(self, i: int) -> None:
        rec = self.records[i]
        try:
            self.run_attempts(i)
        except GreenletExit:
            if rec.status not in TERMINAL:
                self.mark_stopped(i)
            raise
        finally:
            if rec.status == RUNNING:  # defensive: never leave a node running
                self.mark_stopped(i)
            self.finished.append(i)
            self.wake.set()

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

    def _lookup(self, name: str) -> Any:
        if name in self.scan.vars:
            return self.scan.vars[name]
        ctx = self.scan.context
        if ctx.has(name):
            return ctx.get(name)
        raise KeyError(name)

    # -- settling ----------------------------------------------------------------------------

    def _skip(self, i: int, reason: str) -> None:
        rec = self.records[i]
        rec.reason = reason
        rec.mark(SKIPPED)
        self.release(i)
        self.notify("pentora_node_skipped", self.scan, self.nodes[i], rec)
        self._settle(i)

    def _settle(self, i: int) -> None:
        self.settled.append(i)

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

    # -- stopping ----------------------------------------------------------------------------

    def mark_stopped(self, i: int) -> None:
        rec = self.records[i]
        if self.stop_status == "timeout":
            rec.error, rec.error_type = self.stop_reason, "TimeoutError"
            rec.mark(FAILED)
            self.notify("pentora_node_failed", self.scan, self.nodes[i], rec)
        else:
            rec.reason = self.stop_reason or "cancelled"
            rec.mark(CANCELLED)
            self.notify("pentora_node_cancelled", self.scan, self.nodes[i], rec)

    def stop_workers(self) -> None:
        for _ in self.workers:
            self.work.put(None)  # each worker takes one sentinel and returns

    def halt(self) -> None:
        """Kill every running node's worker (and so its pool), then end the idle ones."""
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
                self.mark_stopped(i)
        self.running.clear()
        self.finished.clear()
        self.settled.clear()
        self.stop_workers()
