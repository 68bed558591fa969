"""Hook specifications: the whole extension surface of pentora.

Grouped by the object they concern (registry, scan, node). Notification hooks are
1:N and their return values ignored; an exception raised by one implementation is
logged with the plugin's name and contained, so a broken plugin never kills a scan.

Order for one scan (asserted by a test)::

    pentora_scan_start
      per node, when it becomes ready:
        [pentora_node_restore: saved progress of an earlier run → restored, or continued]
        pentora_node_start → [pentora_node_progress | pentora_record | pentora_node_checkpoint …]
          → [pentora_node_retry → pentora_node_start …]
        → pentora_node_complete | pentora_node_failed
      per node that will not run:
        pentora_node_skipped   (false condition, or an upstream failed/was skipped)
        pentora_node_cancelled (fail-fast, cancel(), global timeout)
    pentora_scan_complete
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._dag import Dag, NodeSpec
    from ._nodectx import NodeContext, NodeRestore
    from ._orchestrator import Orchestrator
    from ._plugins import PentoraPluginManager
    from ._records import NodeRecord, ScanInfo, ScanResult
    from ._registry import Registry

hookspec = pluggy.HookspecMarker("pentora")
hookimpl = pluggy.HookimplMarker("pentora")

# -- plugin manager -----------------------------------------------------------------


@hookspec(historic=True)
def pentora_plugin_added(pm: PentoraPluginManager) -> None:
    """Called for each plugin as it is registered (historic: a plugin registered later is
    called too), with the run's plugin manager. Register the plugin's stateful parts here,
    one object per manager (never module-level state), each under ``AREA.PART`` so that
    ``-p no:AREA.PART`` disables it alone; ``pm.register`` returns None for a blocked name::

        @hookimpl
        def pentora_plugin_added(pm):
            pm.register(ProgressBar(), name="engine.progress")
    """


# -- registry ---------------------------------------------------------------------


@hookspec
def pentora_register_modules(registry: Registry) -> None:
    """Register module types: called once per plugin manager, at load.

    Example::

        @hookimpl
        def pentora_register_modules(registry):
            registry.register(BannerGrabber)
    """


@hookspec
def pentora_register_retry_policies(registry: Registry) -> None:
    """Register ``RetryPolicy`` records (``exponential``, ``fixed``, ``none`` are built in).

    Example::

        registry.register_retry_policy(RetryPolicy("linear", "n × initial",
                                                   lambda n, spec, rng: n * spec.initial))
    """


@hookspec
def pentora_register_output_formats(registry: Registry) -> None:
    """Register ``OutputFormat`` records (reporters that ``-o FILE --format X`` uses)."""


@hookspec
def pentora_profile_dirs() -> list[str]:
    """Directories holding DAG profiles (``NAME.yaml``) for ``--profile NAME``. 1:N, concatenated
    in registration order; the first directory holding a profile wins."""
    return []


@hookspec
def pentora_default_profiles() -> list[str]:
    """Profile names ``pentora scan`` runs when given neither ``--profile`` nor ``--dag``,
    best first. 1:N, concatenated in hook-call order; the first one installed wins."""
    return []


@hookspec
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    """Add subcommands to the ``pentora`` CLI (e.g. ``pentora demo``).

    ``subparsers`` is argparse's sub-parser action, ``common`` the parent parser holding the
    shared options (``-p``, ``--hooks``, logging). Set ``func`` on the new parser; it is
    called with the parsed namespace and returns the exit code. The built-in commands exist
    by then: a plugin may add options to one (``subparsers.choices["scan"].add_argument``)
    and act on them in ``pentora_scan_execute``::

        @hookimpl
        def pentora_cli_commands(subparsers, common):
            p = subparsers.add_parser("hello", parents=[common], help="say hello")
            p.set_defaults(func=lambda args: print("hello") or 0)
    """


# -- scan -------------------------------------------------------------------------


@hookspec
def pentora_scan_start(scan: ScanInfo) -> None:
    """Called once, after validation and planning, before the first node starts."""


@hookspec
def pentora_scan_idle(scan: ScanInfo) -> object | None:
    """Asked once per scan, right after ``pentora_scan_start``: a plugin with nothing to do
    in this scan returns itself (the object it registered), and its node, record and
    checkpoint hooks are not called during this scan (``pentora_scan_complete`` still is).
    1:N. It is what makes a feature that is off (progress without ``--progress``) cost
    nothing per node::

        @hookimpl
        def pentora_scan_idle(self, scan):
            return None if scan.options.get("progress") else self
    """


@hookspec
def pentora_scan_complete(scan: ScanInfo, result: ScanResult) -> None:
    """Called once when every node has a terminal status, reporters included."""


@hookspec(firstresult=True)
def pentora_scan_execute(orch: Orchestrator, args: Any, variables: dict[str, Any],
                         options: dict[str, Any]) -> ScanResult | None:
    """Run ``pentora scan`` some other way than ``orch.execute`` here, in one process
    (sharded, or spread over workers). Called once the DAG is loaded and validated and the
    ``-o`` outputs are open; ``args`` is the parsed command line (with any options a
    plugin added to ``scan`` through ``pentora_cli_commands``: ``subparsers.choices["scan"]``),
    ``variables`` the vars it sets, ``options`` what ``orch.execute`` would get. The first
    non-None result wins; None leaves the scan to the local executor. An implementation
    normally still ends in ``orch.execute`` (so hooks, outputs and reporters run as ever)::

        @hookimpl
        def pentora_scan_execute(orch, args, variables, options):
            if not args.shard:
                return None
            return orch.execute(vars=variables, options={**options, "shard": args.shard})
    """


@hookspec
def pentora_cli_scan_vars(args: Any, dag: Dag | None, resuming: bool) -> dict[str, Any] | None:
    """The DAG vars that a plugin's own ``pentora scan`` options set (added to
    ``subparsers.choices["scan"]`` in ``pentora_cli_commands``): ``--targets`` sets
    ``targets``, ``--ports`` sets ``ports``. 1:N; the answers are merged, then ``--set``
    goes on top. Return None when the options were not given. Raise
    ``pentora.cli.CliError`` for a misuse (a var the DAG does not declare).

    ``resuming`` is true (and ``dag`` None) when a plugin loads a stored scan
    (``pentora_cli_scan_load``): its vars are fixed, so any vars returned then are refused,
    naming the option that sets them.

    ``-p VALUE`` other than ``no:NAME`` is collected in ``args.p_values`` for a plugin to
    take (and empty the list); values no plugin takes are refused::

        @hookimpl
        def pentora_cli_scan_vars(args, dag, resuming):
            if args.targets is None:
                return None
            return {"targets": args.targets}
    """


@hookspec(firstresult=True)
def pentora_cli_scan_load(orch: Orchestrator, args: Any) -> tuple[dict[str, Any], str] | None:
    """Load the DAG ``pentora scan`` runs from somewhere else than ``--profile``/``--dag``
    (a stored scan, for ``--resume ID``) into ``orch`` and return ``(vars, scan_id)``. The
    first non-None answer wins; None: the command line's profile or DAG runs. Call
    ``pentora.cli.refuse_scan_options(orch, args)`` first: options that the loaded scan
    would ignore (``--profile``, ``--set``, ``--targets``…) are then refused before
    anything is read::

        @hookimpl
        def pentora_cli_scan_load(orch, args):
            if not args.resume:
                return None
            refuse_scan_options(orch, args)
            orch.load_dag(stored_dag(args.resume))
            return stored_vars(args.resume), args.resume
    """


@hookspec
def pentora_cli_scan_done(args: Any, orch: Orchestrator, result: ScanResult) -> None:
    """``pentora scan`` finished and its ``-o`` outputs are closed: print what a person
    reads (the summary), honouring the plugin's own options (``--quiet``). 1:N."""


@hookspec(firstresult=True)
def pentora_scan_resume(scan_id: str) -> tuple[str, dict[str, Any]] | None:
    """The DAG and vars of the stored scan ``scan_id``, for ``pentora scan --resume ID``:
    ``(dag, vars)`` with ``dag`` anything ``load_dag`` reads (YAML/JSON text). The first
    non-None answer wins; None: not known here. Raise ``PentoraError`` with a clear
    message when the scan cannot be resumed (finished, still running). The CLI then runs
    the DAG again under the same ``scan_id`` with ``scan.options["resume"]`` true, and
    ``pentora_node_restore`` says what is already done::

        @hookimpl
        def pentora_scan_resume(scan_id):
            row = db.execute("SELECT dag, vars FROM scans WHERE id = ?", (scan_id,)).fetchone()
            return (row[0], json.loads(row[1])) if row else None
    """


# -- node -------------------------------------------------------------------------


@hookspec
def pentora_node_start(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node starts an attempt (``record.attempts`` counts them, from 1)."""


@hookspec
def pentora_node_complete(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node finished; its outputs are in ``scan.context``; ``record.duration_ms`` is set."""


@hookspec
def pentora_node_failed(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node failed for good (after its retries): ``record.error`` and ``stack_trace`` set."""


@hookspec
def pentora_node_skipped(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node will not run: false condition or an upstream that failed; ``record.reason``."""


@hookspec
def pentora_node_cancelled(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node was stopped or never started because the scan was cancelled or timed out,
    or fail-fast stopped it."""


@hookspec
def pentora_node_retry(scan: ScanInfo, node: NodeSpec, record: NodeRecord, error: BaseException,
                       delay: float) -> None:
    """An attempt failed with a retryable error; the next starts after ``delay`` seconds."""


@hookspec
def pentora_node_progress(scan: ScanInfo, node: NodeSpec, done: int, total: int | None) -> None:
    """A module reported item progress with ``ctx.progress(done, total)``."""


@hookspec
def pentora_record(scan: ScanInfo, node: NodeSpec, kind: str, record: Any) -> None:
    """A module found something and said so with ``ctx.emit(record)``: a host, an open
    port, a banner… Called as it is found, so outputs stream and an interrupted scan
    keeps what it had. ``kind`` is the record's JSONL kind (``host``, ``port``…)."""


@hookspec(firstresult=True)
def pentora_node_execute(scan: ScanInfo, node: NodeSpec, ctx: NodeContext) -> Any:
    """Run one attempt of a node. The core implements it; plugins wrap it.

    Use ``@hookimpl(wrapper=True)`` for timing, rate limiting or tracing::

        @hookimpl(wrapper=True)
        def pentora_node_execute(scan, node, ctx):
            with limiter:
                return (yield)
    """


@hookspec
def pentora_node_checkpoint(scan: ScanInfo, node: NodeSpec, item: str | None, records: list[Any],
                            outputs: dict[str, Any] | None) -> None:
    """Progress worth keeping for a resumed scan (see ``pentora_node_restore``). 1:N.

    - ``item`` a string: the module finished one per-target item (``ctx.checkpoint(item,
      records)``, e.g. a host or ``host:port``); ``records`` are that item's findings,
      already announced through ``pentora_record``; ``outputs`` is None.
    - ``item`` None: the node completed; called just before ``pentora_node_complete``,
      ``outputs`` maps each DataContext key the node set to its value; ``records`` is [].

    Example (a scan store)::

        @hookimpl
        def pentora_node_checkpoint(scan, node, item, records, outputs):
            db.save(scan.scan_id, node.instance_id, item, records, outputs)
    """


@hookspec(firstresult=True)
def pentora_node_restore(scan: ScanInfo, node: NodeSpec) -> NodeRestore | None:
    """Saved progress of ``node`` from an earlier run of this scan, asked once when the
    node is ready to run, in a resumed scan only (``scan.options["resume"]`` true, as
    ``pentora scan --resume`` sets it), and never for ``always_run`` nodes: reporters run
    again to report the whole scan. The first non-None answer wins; None runs the node.

    - ``NodeRestore(completed=True, outputs=…, records=…)``: the outputs go back into
      the DataContext, the records are announced again (``pentora_record``), and the
      node is marked completed (``record.reason`` says restored) without running:
      ``pentora_node_complete`` is called, ``pentora_node_start`` is not.
    - ``NodeRestore(completed=False, items=…)``: the node runs; the findings of the
      finished items are announced again after ``pentora_node_start`` and the module
      skips those items (``ctx.done_items()``, ``ctx.restored_records()``).

    Example::

        @hookimpl
        def pentora_node_restore(scan, node):
            if node.instance_id in saved:
                return NodeRestore(completed=True, outputs=saved[node.instance_id])
    """
