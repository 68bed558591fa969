"""The Orchestrator: load → validate → plan → execute, with status and cancellation."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gevent

from ._context import DataContext
from ._dag import Dag, NodeSpec
from ._errors import PentoraError, ValidationError
from ._execute import CoreExecute, ExecOptions, Executor
from ._hookspecs import hookimpl
from ._log import logger
from ._parse import load_dag
from ._plan import Plan
from ._plugins import PentoraPluginManager, get_plugin_manager
from ._records import NodeRecord, ScanInfo, ScanResult
from ._registry import Registry
from ._validate import Validated, validate_dag


def _nothing_pending(key: str) -> bool:
    return False


class _Callbacks:
    """``on_node_start/complete/failed`` callbacks, fired through the same hooks as plugins."""

    def __init__(self) -> None:
        self.start: list[Callable[..., Any]] = []
        self.complete: list[Callable[..., Any]] = []
        self.failed: list[Callable[..., Any]] = []

    @hookimpl
    def pentora_node_start(self, node: NodeSpec, record: NodeRecord) -> None:
        for fn in self.start:
            fn(node, record)

    @hookimpl
    def pentora_node_complete(self, node: NodeSpec, record: NodeRecord) -> None:
        for fn in self.complete:
            fn(node, record)

    @hookimpl
    def pentora_node_failed(self, node: NodeSpec, record: NodeRecord) -> None:
        for fn in self.failed:
            fn(node, record)


class Orchestrator:
    """Runs DAGs. Plugins come from the ``pentora`` entry points plus ``plugins``.

    ``execute()`` runs on gevent in the calling thread and returns a ``ScanResult``
    even when nodes failed (``result.ok`` is then False). Blocking calls in modules
    must be cooperative: the CLI monkey-patches the standard library; a library user
    should call ``gevent.monkey.patch_all()`` first or use gevent's sockets.

    A plugin in ``plugins`` that registers a module type (retry policy, output format) an
    installed plugin also registers wins: its own is used, and an INFO log names both.
    Two installed plugins registering one name raise ``PluginError`` naming both; pass
    ``disabled=["NAME"]`` to leave one out.
    """

    def __init__(self, plugins: Iterable[Any] = (), *, autoload: bool | None = None,
                 disabled: Iterable[str] = (), hook_files: Iterable[str] = (),
                 sleep: Callable[[float], Any] = gevent.sleep, seed: int | None = None,
                 pm: PentoraPluginManager | None = None) -> None:
        self._callbacks = _Callbacks()
        if pm is None:
            pm = get_plugin_manager(plugins, autoload=autoload, disabled=disabled,
                                    hook_files=hook_files)
        else:  # the run's manager (the CLI builds one per run), with any extra plugins
            for plugin in plugins:
                if not pm.is_registered(plugin):
                    pm.register_explicit(plugin)
        self.pm: PentoraPluginManager = pm
        if not pm.has_plugin("pentora.core"):
            pm.register(CoreExecute(), name="pentora.core")
        self.registry: Registry = pm.registry
        self.dag: Dag | None = None
        self.validated: Validated | None = None
        self.plan: Plan | None = None
        self._sleep = sleep
        self._seed = seed
        self._executor: Executor | None = None
        self._hub: Any = None
        self._thread: int | None = None
        self._state = "idle"
        self._result: ScanResult | None = None
        self._cancel_requested: str | None = None
        self._abandon: list[Callable[[ScanResult], Any]] = []

    # -- loading and checking --------------------------------------------------------------

    def load_dag(self, dag: Dag | str | bytes | Path) -> Dag:
        """Load a ``Dag`` object, a path, or YAML/JSON text; resets validation."""
        self.dag = dag if isinstance(dag, Dag) else load_dag(dag)
        self.validated = None
        self.plan = None
        return self.dag

    def validate(self, vars: dict[str, Any] | None = None, initial_keys: Iterable[str] = ()) -> Validated:
        """Check the loaded DAG; raise ``ValidationError`` listing every problem."""
        dag = self._need_dag()
        validated = validate_dag(dag, self.registry, vars=vars, initial_keys=initial_keys)
        if validated.problems:
            raise ValidationError(validated.problems)
        self.validated = validated
        self.plan = validated.plan
        return validated

    def _need_dag(self) -> Dag:
        if self.dag is None:
            raise PentoraError("no DAG loaded: call load_dag() first")
        return self.dag

    # -- running ------------------------------------------------------------------------------

    def execute(self, vars: dict[str, Any] | None = None, initial: dict[str, Any] | None = None,
                options: dict[str, Any] | None = None, scan_id: str | None = None) -> ScanResult:
        """Run the DAG. ``vars`` override the DAG's vars (``--set``); ``initial`` seeds the
        DataContext (e.g. ``targets`` from the command line)."""
        dag = self._need_dag()
        initial = dict(initial or {})
        merged_vars = {**dag.vars, **(vars or {})}
        if self.validated is None or vars or initial:
            self.validate(vars=merged_vars, initial_keys=initial)
        assert self.validated is not None and self.plan is not None
        spec = dag.engine.data_context
        context = DataContext(spec.max_size, spec.evict_policy)
        for key, value in initial.items():
            context.set(key, value)
        scan = ScanInfo(scan_id=scan_id or uuid.uuid4().hex[:12], dag=dag, vars=merged_vars,
                        context=context, options=dict(options or {}))
        executor = Executor(dag, self.plan, self.validated, self.registry, self.pm, scan,
                            ExecOptions(sleep=self._sleep, seed=self._seed,
                                        abandon=list(self._abandon)))
        context._needed = executor.needed
        self._executor, self._hub, self._thread = executor, gevent.get_hub(), threading.get_ident()
        self._state = "running"
        if self._cancel_requested:
            executor.stop(self._cancel_requested, "cancelled")
        try:
            self._result = executor.run()
        finally:
            self._state = "finished"
            self._cancel_requested = None
            context._needed = _nothing_pending  # break context → executor → context
        logger.bind(component="orchestrator").debug(
            "scan {} finished: {} in {:.1f}ms", scan.scan_id, self._result.status,
            self._result.duration_ms)
        return self._result

    def cancel(self, reason: str = "cancelled by request") -> None:
        """Stop a running scan from any greenlet or thread; reporters still run."""
        executor = self._executor
        if executor is None or self._state != "running":
            self._cancel_requested = reason
            return
        if threading.get_ident() == self._thread:
            executor.stop(reason, "cancelled")
        else:
            self._hub.loop.run_callback_threadsafe(executor.stop, reason, "cancelled")

    def status(self) -> dict[str, Any]:
        """State, node counts by status, running nodes, and percent done."""
        ex = self._executor
        if ex is None:
            return {"state": self._state, "total": len(self.dag.nodes) if self.dag else 0,
                    "done": 0, "percent": 0.0, "running": [], "counts": {}}
        counts: dict[str, int] = {}
        for r in ex.records:
            counts[r.status] = counts.get(r.status, 0) + 1
        total = len(ex.records)
        done = total - counts.get("pending", 0) - counts.get("running", 0)
        running = [ex.records[i].node for i in sorted(ex.running)]
        return {"state": self._state, "total": total, "done": done,
                "percent": round(100.0 * done / total, 1) if total else 100.0,
                "running": running, "counts": counts, "elapsed_s": round(
                    time.time() - ex.scan.started_at, 3)}

    # -- callbacks ------------------------------------------------------------------------------

    def _callback_list(self, kind: str) -> list[Callable[..., Any]]:
        # Registered on first use: hooks with no callbacks cost nothing per node.
        if not self.pm.is_registered(self._callbacks):
            self.pm.register(self._callbacks, name=f"pentora.callbacks.{id(self):x}")
        return getattr(self._callbacks, kind)  # type: ignore[no-any-return]

    def on_node_start(self, fn: Callable[[NodeSpec, NodeRecord], Any]) -> None:
        self._callback_list("start").append(fn)

    def on_node_complete(self, fn: Callable[[NodeSpec, NodeRecord], Any]) -> None:
        self._callback_list("complete").append(fn)

    def on_node_failed(self, fn: Callable[[NodeSpec, NodeRecord], Any]) -> None:
        self._callback_list("failed").append(fn)

    def on_scan_abandoned(self, fn: Callable[[ScanResult], Any]) -> None:
        """Let the process end when a module blocks the event loop beyond interruption.

        A module that spins in Python code, or blocks in a call that never yields, is
        interrupted by the engine's watchdog when its node times out or the scan stops.
        When even that fails for a few seconds, the watchdog calls ``fn(result)`` (from its
        own thread; nodes unfinished are failed or cancelled in ``result``), then ends the
        process with exit code 3, so that outputs closed by ``fn`` keep what was found.
        With no such callback (the default), the watchdog only warns."""
        self._abandon.append(fn)
