"""Attempts: running one node until it completes, fails, or is out of retries.

An attempt announces itself (``pentora_node_start``), gets a fresh ``NodeContext`` and
runs the module under the node timeout; an error that the node's retry spec covers is
retried after the registry's backoff delay. The scheduler (``_schedule``) decides *when*
a node runs; this module decides *how*. A ``for_each`` node's attempt runs its branches
through ``_fanout``, and each branch retries in the same loop as a node (``retry``):
one place counts retries, announces them (``pentora_node_retry``, with the node's
record) and waits out the backoff.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent
from gevent import GreenletExit

from ._dag import NodeSpec, RetrySpec
from ._errors import HubBlocked, HubInterrupt, ModuleError, ModuleExit, NodeTimeout, module_failure
from ._fanout import FanOut
from ._hookspecs import hookimpl
from ._log import logger
from ._nodectx import NodeContext, NodeRestore, record_kind
from ._records import CANCELLED, COMPLETED, FAILED, ScanInfo
from ._retry import should_retry
from ._units import format_duration

if TYPE_CHECKING:
    from ._execute import Executor

log = logger.bind(component="attempts")


@dataclass
class ExecOptions:
    sleep: Callable[[float], Any] = gevent.sleep
    seed: int | None = None
    # Called (from the watchdog's thread) before the process ends because a module blocks
    # the event loop beyond interruption; none: the watchdog never ends the process.
    abandon: list[Callable[[Any], Any]] = field(default_factory=list)


def run_module(ctx: NodeContext) -> Any:
    """Instantiate the node's module and run it; a returned dict is written to the context."""
    if ctx.module_type is None:  # a context made outside the engine: nothing to instantiate
        raise ModuleError("its NodeContext has no module_type to run", ctx.node_id)
    module = ctx.module_type.cls()
    out = module.run(ctx, ctx.config)
    if out is None:
        return True
    if not isinstance(out, Mapping):
        # A list, a lock, a generator…: almost always a bug that would otherwise pass as
        # success with nothing written, so it fails the node, naming what came back.
        raise ModuleError(f"run() of module '{ctx.module_type.name}' returned "
                          f"{type(out).__name__}: it must return a mapping of context keys "
                          "to values, or None")
    for key, value in out.items():
        ctx.set(key, value)
    return True


class CoreExecute:
    """The innermost ``pentora_node_execute``: instantiate the module and run it."""

    @hookimpl
    def pentora_node_execute(self, scan: ScanInfo, node: NodeSpec, ctx: NodeContext) -> Any:
        return run_module(ctx)


class Attempts:
    """Runs the nodes the executor hands over, by index; shares its per-node tables."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        # The executor's lists and dicts themselves (never rebound): no copy, no lookup
        # through the executor on the hot path.
        self.scan, self.nodes, self.records, self.mtypes = ex.scan, ex.nodes, ex.records, ex.mtypes
        self.configs, self.requires, self.saved = ex.configs, ex.requires, ex.saved
        self.engine, self.registry, self.notify = ex.engine, ex.registry, ex.notify
        self.pm, self.opts = ex.pm, ex.opts
        self.rng = random.Random(ex.opts.seed)
        # With no plugin wrapping pentora_node_execute, skip pluggy's dispatch per node.
        impls = ex.pm.hook.pentora_node_execute.get_hookimpls()
        self._direct = len(impls) == 1 and isinstance(impls[0].plugin, CoreExecute)
        self._checkpoints = self.notify.has("pentora_node_checkpoint")
        # For the hub watchdog (read from its signal handler and thread): when the running
        # body of each node's attempt times out (monotonic), and the contexts of its running
        # attempts and branches (their pools' greenlets belong to the node).
        self.deadlines: dict[int, float] = {}
        self.live: dict[int, set[NodeContext]] = {}
        self.fanout = FanOut(self)

    def call_execute(self, i: int, ctx: NodeContext) -> None:
        if self._direct:
            run_module(ctx)
        else:
            self.pm.hook.pentora_node_execute(scan=self.scan, node=self.nodes[i], ctx=ctx)

    # -- the retry loop --------------------------------------------------------------------

    def retry(self, i: int, spec: RetrySpec, timeout: float | None,
              begin: Callable[[int, int], NodeContext], body: Callable[[int, NodeContext], None],
              branch: int | None = None) -> NodeContext:
        """Attempt ``body(i, begin(i, n))`` for n = 1, 2, … until an attempt returns (its
        context is returned) or raises an error ``spec`` does not retry (raised).

        Nodes and ``for_each`` branches (``branch``: its index) both retry here, so a
        retry is counted and announced the same way for both. Each attempt runs within
        ``timeout`` seconds, if any; its context's pool is killed when it ends.
        """
        n = 0
        while True:
            n += 1
            ctx = begin(i, n)
            try:
                if timeout:
                    self._bounded(body, i, ctx, timeout)
                else:
                    body(i, ctx)
            except GreenletExit:
                raise  # the node is being killed (a stop): not the module's failure
            except BaseException as e:
                # SystemExit, KeyboardInterrupt and bare BaseExceptions from a module end
                # this attempt like any error (never the process, never silently).
                ctx.kill()  # the failed attempt's greenlets must not outlive it into the backoff
                if (not isinstance(e, Exception) or self.ex.stop_reason
                        or not should_retry(e, spec, n, self.mtypes[i].cls.transient_errors)):
                    raise
                self._before_retry(i, n, e, spec, branch)
                continue
            finally:
                ctx.kill()
                live = self.live.get(i)
                if live is not None:
                    live.discard(ctx)
            return ctx

    def _bounded(self, body: Callable[[int, NodeContext], None], i: int, ctx: NodeContext,
                 timeout: float) -> None:
        """``body(i, ctx)`` within ``timeout`` seconds, else NodeTimeout. A gevent.Timeout
        the module itself started is not ours: it passes through unchanged. The deadline
        is also the hub watchdog's, for the time the body runs: a module that blocks the
        event loop past it gets a HubInterrupt, which fails the attempt as HubBlocked."""
        self.deadlines[i] = time.monotonic() + timeout
        try:
            with gevent.Timeout(timeout) as t:
                try:
                    body(i, ctx)
                except gevent.Timeout as e:
                    if e is not t:
                        raise
                    raise NodeTimeout(f"timeout after {format_duration(timeout)}") from None
                except HubInterrupt as e:
                    raise HubBlocked(f"timeout after {format_duration(timeout)}, {e}") from None
        finally:
            self.deadlines.pop(i, None)

    def _before_retry(self, i: int, n: int, error: Exception, spec: RetrySpec,
                      branch: int | None) -> None:
        """Count and announce the retry on the node's record, then wait out the backoff."""
        node, rec = self.nodes[i], self.records[i]
        delay = self.delay(spec, n)
        rec.retry_attempts += 1
        self.notify("pentora_node_retry", self.scan, node, rec, error, delay)
        # The hook's record counts the node's attempts only: say which branch attempt failed.
        log.debug("node '{}'{} attempt {} failed ({}: {}); retrying in {:g}s", node.instance_id,
                  "" if branch is None else f" branch {branch}", n, type(error).__name__, error, delay)
        self.opts.sleep(delay)

    def retry_spec(self, node: NodeSpec) -> RetrySpec:
        return self.engine.retry if node.retry is None else self.engine.retry.merged(node.retry)

    def retryable(self, i: int) -> bool:
        spec = self.retry_spec(self.nodes[i])
        return spec.enabled and spec.max_attempts > 1

    def delay(self, spec: RetrySpec, attempt: int) -> float:
        policy = self.registry.retry_policies[spec.backoff]
        return max(0.0, float(policy.delay(attempt, spec, self.rng)))

    # -- one node --------------------------------------------------------------------------

    def run(self, i: int) -> None:
        """Run node ``i`` until it completes or fails for good; its record says which."""
        node = self.nodes[i]
        # A for_each node is not retried as a whole: each of its branches retries itself.
        spec = self.retry_spec(node) if not node.for_each else RetrySpec(enabled=False)
        timeout = node.timeout if node.timeout is not None else self.engine.node_timeout
        body = self.fanout.run if node.for_each else self.call_execute
        try:
            ctx = self.retry(i, spec, timeout, self._begin, body)
        except GreenletExit:
            raise
        except BaseException as e:
            self.fail(i, e)
            if isinstance(e, KeyboardInterrupt):  # Ctrl-C delivered inside the module's code
                self.ex.stop(f"interrupted in node '{node.instance_id}'", CANCELLED)
        else:
            self._complete(i, ctx)
        finally:
            self.saved.pop(i, None)  # restored or checkpointed progress served this run only
            self.live.pop(i, None)

    def _begin(self, i: int, n: int) -> NodeContext:
        """Attempt ``n`` of node ``i`` starts: announced, with a fresh context."""
        rec = self.records[i]
        rec.attempts += 1
        self.notify("pentora_node_start", self.scan, self.nodes[i], rec)
        if n == 1 and i in self.saved:
            self._replay(i)
        return self.context(i)

    def _complete(self, i: int, ctx: NodeContext) -> None:
        node, rec = self.nodes[i], self.records[i]
        self.ex.release(i)
        rec.mark(COMPLETED)
        if self._checkpoints:
            data = self.scan.context
            self.notify("pentora_node_checkpoint", self.scan, node, None, [],
                        {key: data.get(key) for key in sorted(ctx.written)})
        self.notify("pentora_node_complete", self.scan, node, rec)

    def fail(self, i: int, e: BaseException) -> None:
        rec = self.records[i]
        shown = module_failure(e)
        original = shown.original if isinstance(shown, ModuleExit) else e
        rec.error = str(shown) or type(e).__name__
        rec.error_type = type(original).__name__
        rec.stack_trace = "".join(traceback.format_exception(e))
        self.ex.release(i)
        rec.mark(FAILED)
        self.notify("pentora_node_failed", self.scan, self.nodes[i], rec)

    def _replay(self, i: int) -> None:
        """Announce again the findings of the items an earlier run finished."""
        for records in self.saved[i].items.values():
            for record in records:
                self.notify("pentora_record", self.scan, self.nodes[i], record_kind(record), record)

    # -- contexts --------------------------------------------------------------------------

    def context(self, i: int, item: Any = ...,
                progress: Callable[[NodeContext, int, int | None], None] | None = None) -> NodeContext:
        node = self.nodes[i]
        ctx = NodeContext(
            self.scan, node, self.records[i], self.configs[i],
            self.requires[i], self.engine.max_parallel_targets,
            progress or self._ctx_progress, records=self.ex.record_map, emit=self._ctx_emit, index=i,
            checkpoint=self._ctx_checkpoint, module_type=self.mtypes[i],
            **({} if item is ... else {"item": item}))
        ctx.saved = self.saved.get(i)
        live = self.live.get(i)
        if live is None:
            self.live[i] = {ctx}
        else:
            live.add(ctx)
        return ctx

    # Callbacks every NodeContext shares (no closure per node): the context says who it is.
    def _ctx_progress(self, ctx: NodeContext, done: int, total: int | None) -> None:
        self.progress(ctx.index, done, total)

    def _ctx_emit(self, ctx: NodeContext, kind: str, record: Any) -> None:
        self.notify("pentora_record", self.scan, ctx.node, kind, record)

    def _ctx_checkpoint(self, ctx: NodeContext, item: str, records: list[Any]) -> None:
        i = ctx.index
        # Kept in memory only for a node that may be retried: its next attempt continues
        # from here (a scan of millions of hosts would otherwise hold them all).
        if i in self.saved or self.retryable(i):
            saved = self.saved.setdefault(i, NodeRestore(completed=False))
            saved.items[item] = records
            ctx.saved = saved
        self.notify("pentora_node_checkpoint", self.scan, ctx.node, item, records, None)

    def progress(self, i: int, done: int, total: int | None) -> None:
        self.records[i].progress = (done, total)
        self.notify("pentora_node_progress", self.scan, self.nodes[i], done,
                    total)
