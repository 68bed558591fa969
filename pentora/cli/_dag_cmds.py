"""``pentora dag validate|plan|graph|run``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from .._errors import ValidationError
from .._text import clean
from ._common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    checked_sets,
    load_dag_arg,
    make_orchestrator,
    out,
    parse_sets,
)

if TYPE_CHECKING:  # the engine is imported when a command runs, not to build the parser
    from .._records import ScanResult


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    dag = sub.add_parser("dag", help="validate, plan, draw and run DAG files")
    dsub = dag.add_subparsers(dest="dag_cmd", metavar="COMMAND", required=True)

    p = dsub.add_parser("validate", parents=[common], help="check a DAG; list every problem")
    p.add_argument("file", help="DAG file (YAML/JSON) or profile name")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_validate, cooperative=False)

    p = dsub.add_parser("plan", parents=[common], help="show layers and execution order")
    p.add_argument("file")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_plan, cooperative=False)

    p = dsub.add_parser("graph", parents=[common], help="draw the DAG as Graphviz dot or Mermaid")
    p.add_argument("file")
    p.add_argument("--format", choices=["dot", "mermaid"], default="dot")
    p.set_defaults(func=cmd_graph, cooperative=False)

    p = dsub.add_parser("run", parents=[common], help="execute any DAG")
    p.add_argument("file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DAG var (repeatable)")
    p.add_argument("--progress", action="store_true", help="show progress on stderr")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="summary format on stdout")
    p.set_defaults(cooperative=True, func=cmd_run)


def _validated(args: argparse.Namespace) -> tuple[Any, Any]:
    orch = make_orchestrator(args)
    orch.load_dag(load_dag_arg(orch, args.file))
    orch.validate(vars={**orch.dag.vars, **checked_sets(orch.dag, getattr(args, "set", []))})  # type: ignore[union-attr]
    return orch, orch.dag


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        _, dag = _validated(args)
    except ValidationError as e:
        if args.format == "json":
            out(json.dumps({"valid": False, "file": args.file,
                            "problems": [p.to_dict() for p in e.problems]}, indent=2))
            return EXIT_INVALID
        raise
    if args.format == "json":
        out(json.dumps({"valid": True, "file": args.file, "name": dag.name,
                        "nodes": len(dag.nodes), "problems": []}, indent=2))
    else:
        out(f"{clean(args.file, None)}: valid ({len(dag.nodes)} nodes)")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from .. import _render as render

    orch, dag = _validated(args)
    out(render.plan_json(dag, orch.plan) if args.format == "json" else render.plan_text(dag, orch.plan))
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from .. import _render as render

    _, dag = _validated(args)
    out(render.dot(dag) if args.format == "dot" else render.mermaid(dag))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    orch, dag = _validated(args)
    install_signal_handlers(orch)
    orch.on_scan_abandoned(_print_abandoned)
    result = orch.execute(vars=parse_sets(args.set), options={"progress": args.progress})
    if args.format == "json":
        out(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        out(summary(result))
    return EXIT_OK if result.ok else EXIT_FAILED


def _print_abandoned(result: ScanResult) -> None:
    out(summary(result))
    sys.stdout.flush()


def install_signal_handlers(orch: Any) -> None:
    """SIGINT/SIGTERM cancel the scan (reporters still run); a second SIGINT exits at once.

    Python-level handlers, not libev's: Python runs them even while a module blocks the
    event loop, and their numbers reach the engine's watchdog through the wakeup fd, so
    a spinning module is interrupted too (see ``Orchestrator.on_scan_abandoned``)."""
    import gevent

    if threading.current_thread() is not threading.main_thread():
        return
    hits = [0]
    hub = gevent.get_hub()

    def handler(signum: int, frame: Any) -> None:
        hits[0] += 1
        if hits[0] > 1:  # ends the run: the CLI keeps its outputs' partial files and exits 130
            current = gevent.getcurrent()
            if current is hub or current is hub.parent:
                raise KeyboardInterrupt
            # Raised in a node's code it would only fail that node: the main greenlet
            # (running the scan) gets it instead, from the hub.
            hub.loop.run_callback_threadsafe(hub.parent.throw, KeyboardInterrupt)
            return
        # The hub thread's callback queue: this may run inside any greenlet, mid-work.
        hub.loop.run_callback_threadsafe(orch.cancel, f"interrupted by {signal.Signals(signum).name}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def summary(result: ScanResult) -> str:
    rows = [("NODE", "MODULE", "STATUS", "MS", "DETAIL")]
    for rec in result.nodes.values():
        detail = rec.error or rec.reason or ""
        if rec.retry_attempts:
            detail = f"{detail} (retries: {rec.retry_attempts})".strip()
        failed_branches = sum(1 for b in rec.branches if b.status == "failed")
        if failed_branches:
            detail = f"{failed_branches}/{len(rec.branches)} branches failed " + detail
        ms = f"{rec.duration_ms:.1f}" if rec.duration_ms is not None else "-"
        # Names from the DAG file are cleaned like a target's strings: a file may come from anyone.
        rows.append((clean(rec.node, None), clean(rec.module_type, None), rec.status, ms,
                     clean(detail.strip(), 100)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts().items()))
    lines.append("")
    lines.append(f"scan {clean(result.scan_id)} {result.status} in {result.duration_ms / 1000:.2f}s: "
                 f"{counts}")
    if result.error:
        lines.append(f"reason: {clean(result.error, None)}")
    for failure in result.hook_errors:
        lines.append(f"plugin '{clean(failure['plugin'])}' failed in {failure['hook']}: "
                     f"{clean(failure['error'], 200)}")
    return "\n".join(lines)
