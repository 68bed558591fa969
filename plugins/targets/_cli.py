"""``pentora scan``'s target options: ``-t``/``--targets``, and nmap's ``-iL``, ``--exclude``,
``--excludefile`` and ``-n``, turned into the ``targets`` and ``exclude`` vars."""

from __future__ import annotations

import argparse
from typing import Any

from pentora_plugins.kit.targetspec import TargetSpecError, exclusions, file_specs, iter_specs

from pentora.cli import EXIT_INVALID, EXIT_USAGE, CliError


def add_options(scan: argparse.ArgumentParser) -> None:
    scan.add_argument("--targets", "-t", metavar="SPEC",
                      help="addresses, CIDRs, ranges, hostnames, or @FILE (required unless "
                           "--resume or -iL)")
    g = scan.add_argument_group("targets (nmap-compatible)")
    g.add_argument("-iL", dest="input_list", metavar="FILE",
                   help="targets from FILE (- for standard input): whitespace or one a line, "
                        "# comments; with -t, both")
    g.add_argument("--exclude", dest="exclude", action="append", metavar="SPECS",
                   help="addresses, CIDRs or ranges never to scan, comma-separated (repeatable)")
    g.add_argument("--excludefile", dest="exclude_file", action="append", metavar="FILE",
                   help="exclusions from FILE, in the -iL format (repeatable)")
    g.add_argument("-n", dest="no_dns", action="store_true",
                   help="no reverse DNS (pentora never makes reverse lookups; target names "
                        "are still resolved, as with nmap)")


def scan_vars(args: argparse.Namespace, dag: Any, resuming: bool) -> dict[str, Any] | None:
    targets = _targets(args)
    exclude = _exclusions(args)
    if targets is None:
        if resuming:
            return {"exclude": exclude} if exclude else None
        raise CliError("the following arguments are required: --targets (or --resume SCAN_ID), "
                       "or -iL FILE", EXIT_USAGE)
    out: dict[str, Any] = {"targets": targets}
    if exclude:
        out["exclude"] = exclude
    if not resuming:
        if "targets" not in dag.vars and not _reads_scan_targets(dag):
            raise CliError(f"DAG '{dag.name}' declares no 'targets' var, so --targets cannot reach "
                           "it; add `vars: {targets: ...}` and use ${targets} in its target_parser "
                           "config")
        if exclude and "exclude" not in dag.vars:
            raise CliError(f"DAG '{dag.name}' declares no 'exclude' var, so --exclude/--excludefile "
                           "cannot reach it; add `vars: {exclude: []}` and use ${exclude} as its "
                           "target_parser's blocklists", EXIT_USAGE)
    return out


def _reads_scan_targets(dag: Any) -> bool:
    """Whether a target_parser of ``dag`` has no ``targets`` of its own: it reads --targets."""
    return any(node.module_type == "target_parser" and "targets" not in (node.config or {})
               for node in dag.nodes)


def _targets(args: argparse.Namespace) -> str | list[str] | None:
    given = getattr(args, "targets", None)
    listed = getattr(args, "input_list", None)
    if listed is None:
        return given
    # A file is read by target_parser, lazily (a big list is never held twice); standard
    # input can be read once only, so here, before the scan.
    if listed == "-":
        specs = _stdin_specs()
    else:
        _check_file("-iL", listed, exclusions_only=False)
        specs = [f"@{listed}"]
    return [given, *specs] if given is not None else specs


def _stdin_specs() -> list[str]:
    try:
        specs = [spec.text for spec in file_specs("-", "-iL -", what="target list", stdin=True)]
    except TargetSpecError as e:
        raise CliError(f"-iL -: {e}", EXIT_INVALID) from None
    if not specs:
        raise CliError("-iL -: standard input holds no target (one or more a line, # comments)",
                       EXIT_INVALID)
    return specs


def _check_file(option: str, path: str, exclusions_only: bool) -> None:
    """Read a list file once before the scan, so that its errors name the option that gave
    it (the scan reads it again, lazily)."""
    try:
        specs = file_specs(path, what="target list")
        for _ in exclusions(specs) if exclusions_only else specs:
            pass
    except TargetSpecError as e:
        raise CliError(f"{option} {path}: {e}", EXIT_INVALID) from None


def _exclusions(args: argparse.Namespace) -> list[str]:
    items = [part.strip() for text in getattr(args, "exclude", None) or () for part in text.split(",")]
    try:
        for _ in exclusions(iter_specs([i for i in items if i])):
            pass
    except TargetSpecError as e:
        raise CliError(f"--exclude: {e}", EXIT_USAGE) from None
    if not all(items):
        raise CliError(f"--exclude {','.join(items)}: an empty item; expected e.g. "
                       "10.0.0.1,10.0.1.0/24", EXIT_USAGE)
    files = getattr(args, "exclude_file", None) or []
    for path in files:
        _check_file("--excludefile", path, exclusions_only=True)
    return [*items, *(f"@{f}" for f in files)]
