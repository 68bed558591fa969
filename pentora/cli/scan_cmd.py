"""``pentora scan``: run a scan profile or DAG against targets."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import PentoraError
from ..parse import load_dag
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    list_profiles,
    load_dag_arg,
    make_orchestrator,
    parse_sets,
    plugin_options,
    profile_path,
)
from .dag_cmds import install_signal_handlers, summary
from .outputs import open_outputs

DEFAULT_PROFILES = ("standard", "service-scan", "port-scan")


class _PortsOrPlugin(argparse.Action):
    """``-p`` is a port spec (``-p 1-1000``) unless it reads ``no:NAME`` (disable a plugin)."""

    def __call__(self, parser: Any, ns: argparse.Namespace, value: Any, option: Any = None) -> None:
        if str(value).startswith("no:"):
            ns.plugin_flags = [*getattr(ns, "plugin_flags", []), value]
        else:
            ns.ports = value


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("scan", parents=[plugin_options(plugin_flag=False)],
                       help="scan targets with a profile or a DAG")
    p.add_argument("--targets", "-t", required=True, metavar="SPEC",
                   help="addresses, CIDRs, ranges, hostnames, or @FILE")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--profile", metavar="NAME", help="built-in profile (see `pentora profiles`)")
    src.add_argument("--dag", metavar="FILE", help="a custom DAG file")
    p.add_argument("-p", dest="ports", action=_PortsOrPlugin, metavar="PORTS|no:PLUGIN",
                   help="ports (1-1000, 22,80, -, top-100); or no:NAME to disable a plugin")
    p.add_argument("--ports", dest="ports", metavar="PORTS")
    p.add_argument("-o", "--output", dest="outputs", action="append", default=[], metavar="FILE",
                   help="write results to FILE (repeatable); format from --format or the extension")
    p.add_argument("--format", dest="output_format", metavar="FORMAT",
                   help="output format of -o files (jsonl, …)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a DAG var (repeatable)")
    p.add_argument("--progress", action="store_true", help="show progress on stderr")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary on stdout")
    p.set_defaults(func=cmd_scan, plugin_flags=[])


def _choose_dag(orch: Any, args: argparse.Namespace) -> Any:
    if args.dag:
        return load_dag_arg(orch, args.dag)
    if args.profile:
        path = profile_path(orch, args.profile)
        if path is None:
            raise CliError(f"no profile named '{args.profile}'; profiles: "
                           + (", ".join(list_profiles(orch)) or "none installed"))
        return load_dag(path)
    for name in DEFAULT_PROFILES:
        path = profile_path(orch, name)
        if path is not None:
            return load_dag(path)
    raise CliError("no scan profile is installed; pass --dag FILE")


def cmd_scan(args: argparse.Namespace) -> int:
    orch = make_orchestrator(args)
    orch.load_dag(_choose_dag(orch, args))
    dag = orch.dag
    assert dag is not None
    variables = {"targets": args.targets}
    if args.ports is not None:
        variables["ports"] = args.ports
    variables.update(parse_sets(args.set))
    undeclared = [k for k in ("targets", "ports") if k in variables and k not in dag.vars]
    if "targets" in undeclared:
        raise CliError(f"DAG '{dag.name}' declares no 'targets' var, so --targets cannot reach it; "
                       "add `vars: {targets: ...}` and use ${targets} in its target_parser config")
    if "ports" in undeclared:
        raise CliError(f"DAG '{dag.name}' declares no 'ports' var, so -p/--ports cannot reach it")
    orch.validate(vars={**dag.vars, **variables})
    sink = open_outputs(orch, args.outputs, args.output_format)
    install_signal_handlers(orch)
    result = None
    try:
        result = orch.execute(vars=variables, options={"progress": args.progress})
    finally:
        if sink is not None:
            sink.close(result)
    if not args.quiet:
        writer = _summary_writer(orch)
        if writer is not None:
            writer.close(result)
        else:
            sys.stdout.write(summary(result) + "\n")
    for path in args.outputs:
        sys.stderr.write(f"results written to {path}\n")
    return EXIT_OK if result.ok else EXIT_FAILED


def _summary_writer(orch: Any) -> Any:
    fmt = orch.registry.output_formats.get("summary")
    if fmt is None:
        return None
    try:
        return fmt.open(sys.stdout)
    except PentoraError:
        return None
