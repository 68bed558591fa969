"""The executor: runs one scan of a DAG, by composing the engine's parts.

- ``_schedule.Scheduler``: when each node runs: the ready queue and its worker greenlets,
  trigger rules, conditions, skips, and the stop state (fail-fast, ``cancel()``, the
  global timeout);
- ``_attempts.Attempts``: how a node runs: its attempts, retries and node timeout;
- ``_fanout.FanOut`` (through ``Attempts``): the branches of ``for_each`` nodes.

The executor itself prepares the per-node tables the parts share, asks
``pentora_node_restore`` whether a resumed node needs to run at all, tracks which
DataContext keys pending nodes still need (so that spilling spares them), and after a
stop runs the reporters that have not run yet, each bounded by ``reporter_timeout``,
and marks the rest cancelled. The module keeps its name (rather than becoming a
scheduler module of its own) because the orchestrator imports ``Executor``,
``ExecOptions`` and ``CoreExecute`` from here.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import gevent
from gevent import GreenletExit

from ._attempts import Attempts, CoreExecute, ExecOptions
from ._dag import Dag
from ._errors import NodeTimeout
from ._log import logger
from ._nodectx import NodeRestore
from ._notify import Notifier
from ._plan import Plan
from ._records import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    TERMINAL,
    NodeRecord,
    ScanInfo,
    ScanResult,
)
from ._registry import ModuleType, Registry
from ._schedule import Scheduler
from ._units import format_duration
from ._validate import Validated, alternatives
from ._watchdog import Watchdog

__all__ = ["CoreExecute", "ExecOptions", "Executor"]

log = logger.bind(component="scheduler")


class Executor:
    """One scan of ``dag``: ``run()`` it once, from the hub thread that calls it."""

    def __init__(self, dag: Dag, plan: Plan, validated: Validated, registry: Registry, pm: Any,
                 scan: ScanInfo, opts: ExecOptions) -> None:
        self.dag, self.plan, self.validated, self.pm, self.scan = dag, plan, validated, pm, scan
        self.opts = opts
        self.registry = registry
        self.engine = dag.engine
        self.nodes = dag.nodes
        self.mtypes: list[ModuleType] = [registry.modules[nd.module_type] for nd in self.nodes]
        self.always = [m.always_run for m in self.mtypes]
        # Per-node lookups by index, prepared once: the hot path does no dict lookups by id.
        ids = [nd.instance_id for nd in self.nodes]
        self.configs = [validated.configs.get(nid, {}) for nid in ids]
        self.requires = [validated.requires.get(nid, ()) for nid in ids]
        self.records = [NodeRecord(node=nd.instance_id, module_type=nd.module_type) for nd in self.nodes]
        self.notify = Notifier(pm)
        self.pending_needs: dict[str, int] = {}
        for nd in self.nodes:
            for key in _needed_keys(validated.requires.get(nd.instance_id, ())):
                self.pending_needs[key] = self.pending_needs.get(key, 0) + 1

        # Resuming: progress saved by pentora_node_restore or ctx.checkpoint, per node index.
        self.saved: dict[int, NodeRestore] = {}
        self._restores = bool(scan.options.get("resume")) and bool(
            pm.hook.pentora_node_restore.get_hookimpls())
        self.attempts = Attempts(self)
        self.scheduler = Scheduler(self)
        self.running = self.scheduler.running  # node index → its worker greenlet (None: queued)

    @property
    def stop_reason(self) -> str | None:
        return self.scheduler.stop_reason

    @property
    def stop_status(self) -> str | None:
        return self.scheduler.stop_status

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
        # A SystemExit in a greenlet a module spawned by itself (not through ctx) would be
        # handed to the main greenlet by the hub, ending the process mid-scan: during the
        # scan it is only that greenlet's error.
        hub = gevent.get_hub()
        own = vars(hub).get("SYSTEM_ERROR")
        hub.SYSTEM_ERROR = tuple(t for t in hub.SYSTEM_ERROR if t is not SystemExit)
        try:
            return self._run()
        finally:
            if own is None:
                del hub.SYSTEM_ERROR
            else:
                hub.SYSTEM_ERROR = own
            gevent.config.track_greenlet_tree = saved_tree
            gc.set_threshold(*saved_threshold)
            if freeze:
                gc.unfreeze()

    def _run(self) -> ScanResult:
        self.started = time.time()
        self._failures_from = len(self.pm.hook_failures)
        self.notify("pentora_scan_start", self.scan)
        watchdog = Watchdog(self)
        watchdog.start()
        try:
            self.scheduler.loop()
            if self.stop_reason:
                self._abort()
            else:
                self.scheduler.stop_workers()
        finally:
            watchdog.stop()
        status = self.stop_status or COMPLETED
        result = self._result(status, self.stop_reason)
        self.notify("pentora_scan_complete", self.scan, result)
        # Failures of the scan_complete hooks themselves count too (after the reporters).
        result.hook_errors = self.pm.hook_failures[self._failures_from:]
        del self.pm.hook_failures[self._failures_from:]  # the result has them now
        return result

    def _result(self, status: str, error: str | None) -> ScanResult:
        return ScanResult(
            scan_id=self.scan.scan_id, dag_name=self.dag.name, status=status,
            nodes={self.plan.ids[i]: self.records[i] for i in self.plan.order},
            context=self.scan.context, started_at=self.started, finished_at=time.time(),
            error=error, hook_errors=self.pm.hook_failures[self._failures_from:])

    # -- the watchdog's questions ------------------------------------------------------------

    @property
    def abandon_callbacks(self) -> list[Any]:
        return self.opts.abandon

    abandon_exit_code = 3  # the CLI's "the scan ran and something failed"

    def node_of(self, greenlet: Any) -> int | None:
        """The node whose work ``greenlet`` is: its worker, or one of its pools' greenlets."""
        records = self.records
        for i, worker in self.running.items():
            # A worker that took its next node still maps the last one until it is drained.
            if worker is greenlet and records[i].status not in TERMINAL:
                return i
        for i, contexts in self.attempts.live.items():
            for ctx in contexts:
                pool = ctx._pool
                if pool is not None and greenlet in pool.greenlets:
                    return i
        return None

    def abandoned_result(self, reason: str, blocker: int | None) -> ScanResult:
        """The scan's result as the process ends under a blocked hub (watchdog thread):
        the blocking node failed, every other unfinished one cancelled, each announced
        (``pentora_node_failed``/``_cancelled``, from this thread: the hub thread is stuck
        in the module) so that outputs and the store record it. ``pentora_scan_complete``
        is not called: the store keeps the scan as interrupted, to resume."""
        now = time.time()
        for i, rec in enumerate(self.records):
            if rec.status in TERMINAL:
                continue
            if i == blocker:
                rec.error, rec.error_type = reason, "HubBlocked"
                rec.mark(FAILED, now)
                self.notify("pentora_node_failed", self.scan, self.nodes[i], rec)
            else:
                rec.reason = reason
                rec.mark(CANCELLED, now)
                self.notify("pentora_node_cancelled", self.scan, self.nodes[i], rec)
        return self._result(CANCELLED, reason)

    def stop(self, reason: str, status: str) -> None:
        """Ask the scan to stop; the main loop kills and reports. Hub thread only."""
        self.scheduler.stop(reason, status)

    def record_map(self) -> dict[str, NodeRecord]:
        return {r.node: r for r in self.records}

    def needed(self, key: str) -> bool:
        return self.pending_needs.get(key, 0) > 0

    def release(self, i: int) -> None:
        """Node ``i`` will read nothing more: its required keys may be spilled first."""
        for key in _needed_keys(self.validated.requires.get(self.nodes[i].instance_id, ())):
            self.pending_needs[key] -= 1

    # -- resuming ------------------------------------------------------------------------

    def restored(self, i: int) -> bool:
        """Ask ``pentora_node_restore`` for what an earlier run saved: a completed node
        gets its outputs back and completes without running (True); a partly done one
        keeps its finished items for ``ctx.done_items()`` and runs (False)."""
        if not self._restores or self.always[i]:
            return False
        node, rec = self.nodes[i], self.records[i]
        try:
            saved = self.pm.hook.pentora_node_restore(scan=self.scan, node=node)
        except GreenletExit:
            raise
        except BaseException as e:  # a broken store must not stop the scan: run the node instead
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
        return True

    # -- after a stop ----------------------------------------------------------------------

    def _abort(self) -> None:
        self.scheduler.halt()
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
        self.running[i] = g  # the watchdog finds the node it runs
        try:
            g.join(self.engine.reporter_timeout)
        finally:
            self.running.pop(i, None)
        if not g.dead:
            g.kill(block=True, timeout=1)
            err = NodeTimeout(f"reporter timeout after {format_duration(self.engine.reporter_timeout)}")
            self.attempts.fail(i, err)


def _needed_keys(requires: tuple[str, ...]) -> list[str]:
    """Every key a node may read: each choice of an ``a|b`` entry is one it could read."""
    return [k for key in requires for k in alternatives(key)]
