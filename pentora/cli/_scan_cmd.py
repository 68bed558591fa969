"""``pentora scan``: run a scan profile or DAG against targets."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from .._condition import Condition
from .._errors import PentoraError
from .._interpolate import VAR_REFERENCE
from .._parse import load_dag
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    list_profiles,
    load_dag_arg,
    make_orchestrator,
    parse_sets,
    plugin_options,
    profile_path,
)
from ._dag_cmds import install_signal_handlers, summary
from ._outputs import open_outputs

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
    p.add_argument("--targets", "-t", metavar="SPEC",
                   help="addresses, CIDRs, ranges, hostnames, or @FILE (required unless --resume)")
    p.add_argument("--resume", metavar="SCAN_ID",
                   help="continue an interrupted scan from the scan store (`pentora scans list`)")
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
    variables = _resumed(orch, args) if args.resume else _new_scan(orch, args)
    dag = orch.dag
    assert dag is not None
    orch.validate(vars={**dag.vars, **variables})
    sink = open_outputs(orch, args.outputs, args.output_format)
    install_signal_handlers(orch)
    result, unwritten = None, None
    try:
        options = {"progress": args.progress, "resume": bool(args.resume)}
        # A plugin may run the scan another way (sharded, distributed); None: run it here.
        result = orch.pm.hook.pentora_scan_execute(orch=orch, args=args, variables=variables,
                                                   options=options)
        if result is None:
            result = orch.execute(vars=variables, options=options, scan_id=args.resume)
    finally:
        if sink is not None:
            try:
                sink.close(result)
            except CliError as e:  # an output could not be written (disk full): summary first
                if result is None:
                    raise
                unwritten = e
    if not args.quiet:
        writer = _summary_writer(orch)
        if writer is not None:
            writer.close(result)
        else:
            sys.stdout.write(summary(result) + "\n")
    if unwritten is not None:
        raise unwritten
    for path in args.outputs:
        sys.stderr.write(f"results written to {path}\n")
    return EXIT_OK if result.ok else EXIT_FAILED


def _resumed(orch: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The stored DAG (loaded into ``orch``) and vars of the scan ``--resume`` names."""
    given = [flag for flag, value in (("--targets", args.targets), ("--profile", args.profile),
                                      ("--dag", args.dag), ("--ports", args.ports),
                                      ("--set", args.set)) if value]
    if given:
        raise CliError(f"--resume runs the stored scan's own DAG, targets and vars; drop "
                       f"{', '.join(given)}", EXIT_USAGE)
    stored = orch.pm.hook.pentora_scan_resume(scan_id=args.resume)
    if stored is None:
        raise CliError(f"no stored scan '{args.resume}' to resume; see `pentora scans list` "
                       "(the scan store plugin must be enabled)")
    dag, variables = stored
    orch.load_dag(dag)
    return dict(variables)


def _new_scan(orch: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Load the chosen profile or DAG into ``orch``; the vars the command line sets."""
    if args.targets is None:
        raise CliError("the following arguments are required: --targets (or --resume SCAN_ID)",
                       EXIT_USAGE)
    orch.load_dag(_choose_dag(orch, args))
    dag = orch.dag
    assert dag is not None
    variables = {"targets": args.targets}
    if args.ports is not None:
        variables["ports"] = args.ports
    sets = parse_sets(args.set)
    unused = sorted(set(sets) - _names_used(dag))
    if unused:
        raise CliError(f"--set {unused[0]}: DAG '{dag.name}' has no var named '{unused[0]}' (its vars: "
                       f"{', '.join(sorted(dag.vars)) or 'none'}); a typo would otherwise go unnoticed")
    variables.update(sets)
    undeclared = [k for k in ("targets", "ports") if k in variables and k not in dag.vars]
    if "targets" in undeclared:
        raise CliError(f"DAG '{dag.name}' declares no 'targets' var, so --targets cannot reach it; "
                       "add `vars: {targets: ...}` and use ${targets} in its target_parser config")
    if "ports" in undeclared:
        raise CliError(f"DAG '{dag.name}' declares no 'ports' var, so -p/--ports cannot reach it")
    return variables


def _summary_writer(orch: Any) -> Any:
    fmt = orch.registry.output_formats.get("summary")
    if fmt is None:
        return None
    try:
        return fmt.open(sys.stdout)
    except PentoraError:
        return None


def _names_used(dag: Any) -> set[str]:
    """The names a ``--set`` can reach: declared vars, and names the conditions and
    ``${var}`` references in node configs use (a var may be left undeclared there)."""
    names = set(dag.vars)
    for node in dag.nodes:
        if node.condition:
            with contextlib.suppress(PentoraError):
                names |= Condition(node.condition).names
        names |= set(VAR_REFERENCE.findall(json.dumps(node.config, default=str)))
    return names
