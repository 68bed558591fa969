"""Target parsing: ``target_parser``, and ``--targets`` on ``pentora scan``."""

from __future__ import annotations

from typing import Any

from pentora import hookimpl
from pentora.cli import EXIT_USAGE, CliError

# Names this area's parts had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"targets": "targets"}


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    from pentora_plugins.targets.target_parser import TargetParser
    for cls in (TargetParser,):
        registry.register(cls)


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    scan = subparsers.choices.get("scan")
    if scan is not None:
        scan.add_argument("--targets", "-t", metavar="SPEC",
                          help="addresses, CIDRs, ranges, hostnames, or @FILE (required unless --resume)")


@hookimpl
def pentora_cli_scan_vars(args: Any, dag: Any, resuming: bool) -> dict[str, Any] | None:
    targets = getattr(args, "targets", None)
    if targets is None:
        if resuming:
            return None
        raise CliError("the following arguments are required: --targets (or --resume SCAN_ID)",
                       EXIT_USAGE)
    if not resuming and "targets" not in dag.vars and not _reads_scan_targets(dag):
        raise CliError(f"DAG '{dag.name}' declares no 'targets' var, so --targets cannot reach it; "
                       "add `vars: {targets: ...}` and use ${targets} in its target_parser config")
    return {"targets": targets}


def _reads_scan_targets(dag: Any) -> bool:
    """Whether a target_parser of ``dag`` has no ``targets`` of its own: it reads --targets."""
    return any(node.module_type == "target_parser" and "targets" not in (node.config or {})
               for node in dag.nodes)
