"""``pentora scan --resume SCAN_ID``: run a stored scan again under its own ID.

Whichever plugin knows the scan answers ``pentora_scan_resume`` with its DAG and vars (the
scan store does); the scan then runs with ``scan.options["resume"]`` true, and
``pentora_node_restore`` says what is already done.
"""

from __future__ import annotations

from typing import Any

from pentora import hookimpl
from pentora.cli import CliError


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    scan = subparsers.choices.get("scan")
    if scan is not None:
        scan.add_argument("--resume", metavar="SCAN_ID",
                          help="continue an interrupted scan from the scan store (`pentora scans list`)")


@hookimpl
def pentora_cli_scan_load(orch: Any, args: Any) -> tuple[dict[str, Any], str] | None:
    scan_id = getattr(args, "resume", None)
    if not scan_id:
        return None
    from pentora.cli import refuse_scan_options  # the scan command's code: once a scan runs

    refuse_scan_options(orch, args)
    stored = orch.pm.hook.pentora_scan_resume(scan_id=scan_id)
    if stored is None:
        raise CliError(f"no stored scan '{scan_id}' to resume; see `pentora scans list` "
                       "(the scan store plugin must be enabled)")
    dag, variables = stored
    orch.load_dag(dag)
    return dict(variables), scan_id
