"""Report formats: ``json``, ``csv``, ``md``, nmap ``xml`` and ``html``, and ``pentora report``.

Each format is an ``OutputFormat`` record registered through
``pentora_register_output_formats`` (``-o FILE --format F``, or the file's extension),
exactly as a third-party package adds its own. They share one report model
(``_model.Report``), built from the records a scan streams or from a JSONL file. The
``pentora report`` command is added through ``pentora_cli_commands``.
"""

from __future__ import annotations

from typing import Any

from pentora_plugins.output.formats import (
    csv_report,
    html_report,
    json_report,
    md_report,
    report_cmd,
    xml_report,
)

from pentora import hookimpl

FORMATS = (json_report.FORMAT, csv_report.FORMAT, md_report.FORMAT, xml_report.FORMAT,
           html_report.FORMAT)


@hookimpl
def pentora_register_output_formats(registry: Any) -> None:
    for fmt in FORMATS:
        registry.register_output_format(fmt)


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    report_cmd.add_parser(subparsers, common)
