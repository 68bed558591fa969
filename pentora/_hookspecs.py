"""Hook specifications: the whole extension surface of pentora.

Grouped by the object they concern (manager, registry, scan, node). Every hook is called
through pluggy: wrappers, ``tryfirst`` and ``trylast`` behave as pluggy documents.
Notification hooks are 1:N and their return values ignored; an exception raised by one
implementation (``SystemExit`` and any other ``BaseException`` included) is logged with the
plugin's name and contained, so a broken plugin never kills a scan; it is listed in the
scan's result (``hook_errors``), which is then not ``ok`` (the CLI exits 3).

Order for one scan (asserted by a test)::

    pentora_scan_start → pentora_scan_idle
      per node, when it becomes ready:
        [pentora_node_restore: saved progress of an earlier run → restored, or continued]
        pentora_node_start → [pentora_node_progress | pentora_record | pentora_node_checkpoint …]
          → [pentora_node_retry → pentora_node_start …]
          (a for_each branch retried: pentora_node_retry alone; the node does not restart)
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
    from ._scanstore import ScanStore

hookspec = pluggy.HookspecMarker("pentora")
hookimpl = pluggy.HookimplMarker("pentora")

# -- manager ------------------------------------------------------------------------


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
    """Register module types: called once per plugin manager, when the registry is built
    (``Orchestrator()``, every CLI command). A module type registered twice, by two plugins,
    stops loading with a ``PluginError`` naming both, unless one was passed explicitly
    (``Orchestrator(plugins=[…])``) and the other is installed: the one passed wins, and
    an INFO log names both.

    Example::

        @hookimpl
        def pentora_register_modules(registry):
            registry.register(BannerGrabber)
    """


@hookspec
def pentora_register_retry_policies(registry: Registry) -> None:
    """Register ``RetryPolicy`` records (``exponential``, ``fixed``, ``none`` are built in),
    which ``retry: {backoff: NAME}`` names. Called once, when the registry is built.
    ``delay(attempt, spec, rng)`` returns the seconds to wait after failed attempt
    ``attempt`` (from 1); ``rng`` is the scan's ``random.Random`` (``Orchestrator(seed=N)``
    makes it repeatable).

    Example::

        @hookimpl
        def pentora_register_retry_policies(registry):
            registry.register_retry_policy(RetryPolicy(
                "linear", "n × initial", lambda n, spec, rng: n * spec.initial))
    """


@hookspec
def pentora_register_output_formats(registry: Registry) -> None:
    """Register ``OutputFormat`` records (what ``-o FILE``, ``-o X:FILE``, ``-o - --format X`` write).
    Called once, when the registry is built: ``-o FILE`` finds a format by the extension of
    FILE, the others by its name. ``open(target)`` returns a writer with ``record(kind,
    data)`` and ``close(result)``, and optionally ``start(scan)``.

    With ``takes_stream=True``, ``target`` is an open text stream, and the format never
    opens a file: for ``-o FILE`` the CLI checks the path before the run, gives the writer
    a temporary file beside FILE and renames it over FILE once ``close`` has returned, so
    a run that fails or is killed leaves an earlier FILE as it was (the writer must not
    close the stream). Without it, ``target`` is the path (``-`` for stdout), as before:
    open it with ``pentora.atomic_output(path)`` rather than ``open(path, "w")`` to get
    the same guarantee.

    Example::

        class PortList:
            def __init__(self, stream):  # sys.stdout for -o -, a temporary file for -o FILE
                self.out = stream
            def record(self, kind, data):  # data: a record, or a dict in `pentora report`
                if kind == "port":
                    get = data.get if isinstance(data, dict) else partial(getattr, data)
                    print(f"{get('host')}:{get('port')}", file=self.out)
            def close(self, result):
                self.out.flush()

        @hookimpl
        def pentora_register_output_formats(registry):
            registry.register_output_format(OutputFormat(
                "ports", "host:port of each open port", open=PortList, extensions=(".ports",),
                takes_stream=True))
    """


@hookspec
def pentora_profile_dirs() -> list[str]:
    """Directories holding DAG profiles (``NAME.yaml``) for ``--profile NAME``, asked each
    time a profile is looked up or listed (``pentora profiles``). 1:N: the lists of every
    implementation are concatenated; the first directory holding a profile wins.

    Example::

        @hookimpl
        def pentora_profile_dirs():
            return [str(Path(__file__).parent / "profiles")]
    """
    return []


@hookspec
def pentora_default_profiles() -> list[str]:
    """Profile names ``pentora scan`` runs when given neither ``--profile`` nor ``--dag``,
    best first. 1:N, concatenated in hook-call order; the first one installed wins::

        @hookimpl
        def pentora_default_profiles():
            return ["standard", "port-scan"]
    """
    return []


@hookspec
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    """Add subcommands to the ``pentora`` CLI (e.g. ``pentora demo``). Called once, when the
    command line is built, before it is parsed; a plugin that raises here loses its
    commands, with a warning, and the others still work.

    ``subparsers`` is argparse's sub-parser action, ``common`` the parent parser holding the
    shared options (``-p``, ``--hooks``, logging). Set ``func`` on the new parser; it is
    called with the parsed namespace and returns the exit code. The built-in commands exist
    by then: a plugin may add options to one (``subparsers.choices["scan"].add_argument``)
    and act on them in ``pentora_scan_execute``. A command that runs no scan sets
    ``cooperative=False`` too: the standard library is then not made cooperative (gevent's
    ``patch_all``, a tenth of a second) before ``func`` runs; without it, it is::

        @hookimpl
        def pentora_cli_commands(subparsers, common):
            p = subparsers.add_parser("hello", parents=[common], help="say hello")
            p.set_defaults(func=lambda args: print("hello") or 0, cooperative=False)

    Keep the module this hook lives in light (import a command's code in ``func``):
    ``pentora --help`` and every TAB of shell completion import it.
    """


# -- scan -------------------------------------------------------------------------


@hookspec
def pentora_scan_start(scan: ScanInfo) -> None:
    """Called once per scan, after validation and planning, before the first node starts.
    ``scan`` carries the ``scan_id``, the ``dag``, the ``vars``, the ``context`` (the
    DataContext) and the ``options`` the scan was started with.

    Example::

        @hookimpl
        def pentora_scan_start(scan):
            print(f"scan {scan.scan_id}: {len(scan.dag.nodes)} nodes")
    """


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
    """Called once per scan, when every node has a terminal status, reporters included
    (after a cancellation or a global timeout too). ``result.status`` is ``completed``,
    ``failed`` (fail-fast), ``cancelled`` or ``timeout``; ``result.nodes`` maps each node
    id to its ``NodeRecord``.

    Example::

        @hookimpl
        def pentora_scan_complete(scan, result):
            failed = [r.node for r in result.failures()]
            print(f"{result.status} in {result.duration_ms:.0f} ms; failed: {failed or 'none'}")
    """


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


@hookspec
def pentora_cli_scan_profile(args: Any) -> tuple[str, list[str]] | None:
    """The profiles a plugin's own ``pentora scan`` option can run in: ``(option,
    profiles)``, the profiles best first (``-sn`` takes ``discovery-only``; ``-sV`` a
    profile with service detection). Return None when the option was not given. 1:N:
    without ``--profile`` or ``--dag``, the scan runs the first profile of the shortest
    answer that every answer names (ahead of ``pentora_default_profiles``); answers with
    no profile in common, or a ``--profile`` one of them does not name, are a usage
    error naming the options. ``--dag`` is left to ``pentora_cli_scan_vars`` to check::

        @hookimpl
        def pentora_cli_scan_profile(args):
            if not args.service_version:
                return None
            return ("-sV", ["service-scan", "standard", "vuln-scan"])
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
    reads (the summary), honouring the plugin's own options (``--quiet``). 1:N::

        @hookimpl
        def pentora_cli_scan_done(args, result):
            if not args.quiet:
                print(f"{len(result.context.get('open_ports', []))} open ports")
    """


@hookspec
def pentora_cli_scan_options(args: Any) -> dict[str, Any] | None:
    """Scan options that a plugin's own ``pentora scan`` options set (added to
    ``subparsers.choices["scan"]`` in ``pentora_cli_commands``). They are merged, in hook-call
    order, into the ``options`` the scan runs with: every hook then reads them as
    ``scan.options`` (an ``-o`` writer in its ``start(scan)``). Return None when the options
    were not given. Options are not vars: they change what is shown or how it runs, not what
    the DAG does, so a resumed scan takes them too::

        @hookimpl
        def pentora_cli_scan_options(args):
            return {"min_quality": args.min_quality}
    """


@hookspec
def pentora_cli_scan_exit(args: Any, result: ScanResult) -> int | None:
    """An exit status for ``pentora scan`` other than the engine's (0, or 3 when nodes
    failed), decided by a plugin's own option once the scan is over and its outputs are
    written: ``--fail-on high`` exits 5 when a high or critical finding was made. 1:N; the
    highest of the engine's status and the answers is the command's. Return None to leave it::

        @hookimpl
        def pentora_cli_scan_exit(args, result):
            if args.fail_on_anything and result.context.get("vulnerabilities"):
                return 5
            return None
    """


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


@hookspec(firstresult=True)
def pentora_scan_store(path: str | None) -> ScanStore | None:
    """A reader of the stored scans (``pentora.ScanStore``): those in the store file
    ``path``, or (None) in the store the command line would use (``$PENTORA_STORE`` or
    the default). The first non-None answer wins; None: this plugin keeps no scans. Raise
    ``PentoraError`` naming the file when it cannot be opened. What the server and other
    readers use instead of importing the store::

        @hookimpl
        def pentora_scan_store(path):
            return MyStore(path or default_path())
    """


# -- node -------------------------------------------------------------------------


@hookspec
def pentora_node_start(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node starts an attempt (``record.attempts`` counts them, from 1): called again
    for each retry. Not called for a node restored as completed by ``pentora_node_restore``.

    Example::

        @hookimpl
        def pentora_node_start(node, record):
            print(f"{node.instance_id} ({node.module_type}) attempt {record.attempts}")
    """


@hookspec
def pentora_node_complete(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node finished; its outputs are in ``scan.context``; ``record.duration_ms`` is set.
    Called once per completed node (a fanned-out node once, not per branch).

    Example::

        @hookimpl
        def pentora_node_complete(scan, node, record):
            if "open_ports" in scan.context.keys():
                print(node.instance_id, record.duration_ms, "ms")
    """


@hookspec
def pentora_node_failed(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node failed for good (after its retries): ``record.error``, ``error_type`` and
    ``stack_trace`` set. Also called for a node whose condition could not be evaluated,
    and, after a global timeout, for each node that was running.

    Example::

        @hookimpl
        def pentora_node_failed(node, record):
            alert(f"{node.instance_id} failed: {record.error_type}: {record.error}")
    """


@hookspec
def pentora_node_skipped(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node will not run: its condition is false, or an upstream failed or was skipped
    (as its trigger rule reads it); ``record.reason`` says which.

    Example::

        @hookimpl
        def pentora_node_skipped(node, record):
            print(f"skipped {node.instance_id}: {record.reason}")
    """


@hookspec
def pentora_node_cancelled(scan: ScanInfo, node: NodeSpec, record: NodeRecord) -> None:
    """A node was stopped, or will never start, because the scan was cancelled
    (``Orchestrator.cancel()``, SIGINT), fail-fast stopped it, or the global timeout
    passed (for nodes that had not started: the running ones fail). ``record.reason`` says
    why.

    Example::

        @hookimpl
        def pentora_node_cancelled(node, record):
            print(f"cancelled {node.instance_id}: {record.reason}")
    """


@hookspec
def pentora_node_retry(scan: ScanInfo, node: NodeSpec, record: NodeRecord, error: BaseException,
                       delay: float) -> None:
    """An attempt failed with an error the node's ``retry_on`` names, and attempts are
    left: the next starts after ``delay`` seconds (then ``pentora_node_start`` again).
    ``record.retry_attempts`` counts the retries so far. The branches of a ``for_each``
    node retry on their own, without this hook.

    Example::

        @hookimpl
        def pentora_node_retry(node, record, error, delay):
            print(f"{node.instance_id}: {error!r}; retry {record.retry_attempts} in {delay:.1f}s")
    """


@hookspec
def pentora_node_progress(scan: ScanInfo, node: NodeSpec, done: int, total: int | None) -> None:
    """A module reported item progress with ``ctx.progress(done, total)`` (``total`` None
    when unknown); a fanned-out node reports its finished branches. Called as often as the
    module reports: keep it cheap.

    Example::

        @hookimpl
        def pentora_node_progress(node, done, total):
            print(f"{node.instance_id}: {done}/{total or '?'}")
    """


@hookspec
def pentora_record(scan: ScanInfo, node: NodeSpec, kind: str, record: Any) -> None:
    """A module found something and said so with ``ctx.emit(record)``: a host, an open
    port, a banner… Called as it is found, so outputs stream and an interrupted scan
    keeps what it had. ``kind`` is the record's JSONL kind (``host``, ``port``…). In a
    resumed scan, the findings of restored nodes and items are announced again.

    Example::

        @hookimpl
        def pentora_record(node, kind, record):
            if kind == "vulnerability":
                print(node.instance_id, record.id, record.severity)
    """


@hookspec(firstresult=True)
def pentora_node_execute(scan: ScanInfo, node: NodeSpec, ctx: NodeContext) -> Any:
    """Run one attempt of a node (or of one ``for_each`` branch). The core implements it;
    plugins wrap it, and what the wrapper returns or raises is the attempt's outcome.

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
