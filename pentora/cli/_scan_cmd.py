"""``pentora scan``: run a scan profile or DAG against targets."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from .._errors import ValidationError
from .._log import logger
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    checked_sets,
    echo,
    list_profiles,
    load_dag_arg,
    make_orchestrator,
    plugin_options,
    profile_path,
)
from ._dag_cmds import install_signal_handlers, summary
from ._option_errors import option_errors
from ._outputs import add_output_options, check_outputs, open_outputs, output_targets


class _PluginFlagOrValue(argparse.Action):
    """``-p no:NAME`` disables a plugin; any other ``-p VALUE`` is kept in ``p_values`` for
    the plugin that gives ``-p`` a meaning (the port scanners read ports from it)."""

    def __call__(self, parser: Any, ns: argparse.Namespace, value: Any, option: Any = None) -> None:
        if str(value).startswith("no:"):
            ns.plugin_flags = [*getattr(ns, "plugin_flags", []), value]
        else:
            ns.p_values = [*(getattr(ns, "p_values", None) or []), value]


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """``pentora scan``: the core's options. Plugins add theirs (targets, ports, resume,
    the summary) through ``pentora_cli_commands`` and act on them through the
    ``pentora_cli_scan_*`` hooks."""
    p = sub.add_parser("scan", parents=[plugin_options(plugin_flag=False)],
                       help="scan targets with a profile or a DAG")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--profile", metavar="NAME", help="built-in profile (see `pentora profiles`)")
    src.add_argument("--dag", metavar="FILE", help="a custom DAG file")
    p.add_argument("-p", dest="p_values", action=_PluginFlagOrValue, metavar="VALUE|no:PLUGIN",
                   help="no:NAME disables the plugin NAME; other values go to plugins (ports)")
    add_output_options(p)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set a DAG var (repeatable)")
    p.add_argument("--progress", action="store_true", help="show progress on stderr")
    p.set_defaults(func=cmd_scan, cooperative=True, plugin_flags=[], p_values=None, scan_parser=p)


def _choose_dag(orch: Any, args: argparse.Namespace) -> Any:
    from .._parse import load_dag  # voluptuous and the planner: when a scan runs, not for --help

    if args.dag:
        return load_dag_arg(orch, args.dag)
    wanted = [answer for answer in orch.pm.hook.pentora_cli_scan_profile(args=args) if answer]
    if args.profile:
        for option, names in wanted:
            if args.profile not in names:
                raise CliError(f"{option} runs with the profiles {', '.join(names)}, not "
                               f"'{args.profile}': drop --profile or {option}", EXIT_USAGE)
        path = profile_path(orch, args.profile)
        if path is None:
            raise CliError(f"no profile named '{args.profile}'; profiles: "
                           + (", ".join(list_profiles(orch)) or "none installed"))
        return load_dag(path)
    if wanted:
        return load_dag(_profile_for(orch, wanted))
    for result in orch.pm.hook.pentora_default_profiles():
        for name in result:
            path = profile_path(orch, name)
            if path is not None:
                return load_dag(path)
    raise CliError("no scan profile is installed; pass --dag FILE")


def _profile_for(orch: Any, wanted: list[tuple[str, list[str]]]) -> Any:
    """The profile the options' answers (``pentora_cli_scan_profile``) agree on: the first
    of the shortest answer (the most specific) that every answer names and is installed."""
    shortest = min(wanted, key=lambda answer: len(answer[1]))
    for name in shortest[1]:
        path = profile_path(orch, name)
        if path is not None and all(name in names for _, names in wanted):
            return path
    options = " and ".join(option for option, _ in wanted)
    raise CliError(f"{options} ask for profiles that differ ("
                   + "; ".join(f"{option}: {', '.join(names)}" for option, names in wanted)
                   + "): drop one of them", EXIT_USAGE)


def cmd_scan(args: argparse.Namespace) -> int:
    orch = make_orchestrator(args)
    # Before anything is read, run or opened for writing (the store included): a bad -o
    # is a usage error, every one named at once.
    outputs = output_targets(orch.registry, args)
    args.outputs = [path for _, path in outputs]  # json:out.dat, -oX -: the paths alone from here
    check_outputs(args.outputs)
    loaded = orch.pm.hook.pentora_cli_scan_load(orch=orch, args=args)
    if loaded is not None:
        variables, scan_id = loaded
        refuse_scan_options(orch, args)
    else:
        variables, scan_id = new_scan(orch, args), None
    dag = orch.dag
    assert dag is not None
    try:
        orch.validate(vars={**dag.vars, **variables})
    except ValidationError as e:
        if loaded is not None:
            raise
        raise option_errors(e, dag, variables, getattr(args, "argv", [])) from None
    sink = open_outputs(orch, outputs)
    install_signal_handlers(orch)
    orch.on_scan_abandoned(functools.partial(_abandoned, sink, args.outputs))
    result, unwritten = None, None
    try:
        options = scan_options(orch, args, progress=args.progress, resume=loaded is not None)
        # A plugin may run the scan another way (sharded, distributed); None: run it here.
        result = orch.pm.hook.pentora_scan_execute(orch=orch, args=args, variables=variables,
                                                   options=options)
        if result is None:
            result = orch.execute(vars=variables, options=options, scan_id=scan_id)
    finally:
        if sink is not None:
            try:
                # No result: the run died (an error, a second SIGINT); no file is replaced.
                sink.close(result, commit=result is not None)
            except CliError as e:  # an output could not be written (disk full): summary first
                unwritten = e
    if orch.pm.hook.pentora_cli_scan_done.get_hookimpls():
        orch.pm.hook.pentora_cli_scan_done(args=args, orch=orch, result=result)
    else:  # no plugin prints a summary: the engine's own, node by node (stderr when -o - has stdout)
        echo(summary(result), err="-" in args.outputs)
    if unwritten is not None:
        raise unwritten
    for path in args.outputs:
        if path != "-":
            echo(f"results written to {path}", err=True)
    return scan_exit(orch, args, result, EXIT_OK if result.ok else EXIT_FAILED)


def scan_options(orch: Any, args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    """``options`` and, over them, those the plugins' own command-line options set
    (``pentora_cli_scan_options``): what ``orch.execute`` takes as ``options``."""
    merged = dict(options)
    for result in orch.pm.hook.pentora_cli_scan_options(args=args):
        merged.update(result or {})
    return merged


def scan_exit(orch: Any, args: argparse.Namespace, result: Any, code: int) -> int:
    """The command's exit status: the highest of ``code`` and the plugins' answers
    (``pentora_cli_scan_exit``, e.g. ``--fail-on``)."""
    answers = orch.pm.hook.pentora_cli_scan_exit(args=args, result=result)
    return max([code, *(int(a) for a in answers if a is not None)])


def _abandoned(sink: Any, outputs: list[str], result: Any) -> None:
    """The process is ending under a module that blocks the event loop (the engine's
    watchdog thread calls this): the outputs get the scan's end, as after a stop."""
    echo(summary(result))
    if sink is not None:
        sink.close(result)
    for path in outputs:
        echo(f"results written to {path}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()


def refuse_scan_options(orch: Any, args: argparse.Namespace) -> None:
    """A loaded (resumed) scan runs its own DAG and vars: options that would change them
    are refused, naming them (a usage error, before anything is read)."""
    given = [flag for flag, value in (("--profile", args.profile), ("--dag", args.dag),
                                      ("--set", args.set)) if value]
    for result in orch.pm.hook.pentora_cli_scan_vars(args=args, dag=None, resuming=True):
        given += [_flag_for(args, name) for name in (result or {})]
    if args.p_values:
        given.append("-p " + " -p ".join(args.p_values))
    if given:
        raise CliError(f"a resumed scan runs its own DAG, targets and vars; drop "
                       f"{', '.join(given)}", EXIT_USAGE)


def _flag_for(args: argparse.Namespace, var: str) -> str:
    """The option of ``pentora scan`` that sets the var ``var`` (the one its plugin added)."""
    for action in getattr(args.scan_parser, "_actions", ()):
        if action.dest == var and action.option_strings:
            return str(max(action.option_strings, key=len))
    return f"the option setting '{var}'"


def new_scan(orch: Any, args: argparse.Namespace, dag: Any = None) -> dict[str, Any]:
    """Load the chosen profile or DAG (``dag``, a ``Dag``, when given; else ``--profile``,
    ``--dag`` or the default profile) into ``orch``; the vars the options of ``args`` set
    (``pentora_cli_scan_vars``, ``--set``), refused as ``pentora scan`` refuses them
    (``CliError``). ``args``: a namespace of ``pentora scan``'s options."""
    orch.load_dag(dag if dag is not None else _choose_dag(orch, args))
    dag = orch.dag
    assert dag is not None
    variables: dict[str, Any] = {}
    for result in orch.pm.hook.pentora_cli_scan_vars(args=args, dag=dag, resuming=False):
        variables.update(result or {})
    if args.p_values:
        raise CliError(f"-p {args.p_values[0]}: no installed plugin takes -p values (only "
                       "-p no:NAME, which disables a plugin)", EXIT_USAGE)
    variables.update(checked_sets(dag, args.set))
    # What the options (nmap's -T4, -Pn, -sU… included) set, for a person to check.
    logger.debug("scan vars from the command line: {}", variables)
    return variables
