"""Outputs: JSONL, the terminal summary (and ``-q``), the report formats (json, csv, md, nmap
xml, html), the ``json_reporter`` module and ``pentora report``."""

from __future__ import annotations

import sys
from typing import Any

from pentora import hookimpl

# Names these had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"output_jsonl": "output", "output_table": "output", "formats": "output",
                        "reporters": "output.json_reporter"}


@hookimpl
def pentora_plugin_added(pm: Any) -> None:
    from pentora_plugins.output.json_reporter import Streams

    pm.register(Streams(), name="output.json_reporter")


@hookimpl
def pentora_register_output_formats(registry: Any) -> None:
    from pentora_plugins.output import jsonl, summary
    from pentora_plugins.output.formats import FORMATS

    for fmt in (jsonl.FORMAT, summary.FORMAT, *FORMATS):
        registry.register_output_format(fmt)


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    from pentora_plugins.output.json_reporter import JsonReporter

    registry.register(JsonReporter)


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    from pentora_plugins.output.formats import report_cmd

    report_cmd.add_parser(subparsers, common)
    scan = subparsers.choices.get("scan")
    if scan is not None:
        scan.add_argument("--quiet", "-q", action="store_true", help="no summary on stdout")


@hookimpl
def pentora_cli_scan_done(args: Any, orch: Any, result: Any) -> None:
    """The summary table on stdout once the scan is over (not with ``-q``)."""
    if getattr(args, "quiet", False):
        return
    from pentora_plugins.output.summary import SummaryWriter

    SummaryWriter(sys.stdout).close(result)
