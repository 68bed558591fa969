"""Report formats: ``json``, ``csv``, ``csv-findings``, ``md``, ``html``, nmap's ``xml``,
normal ``nmap`` and grepable ``gnmap`` outputs, and ``pentora report``.

Each format is an ``OutputFormat`` record registered by the ``output`` area through
``pentora_register_output_formats`` (``-o FILE``, its format from the extension, or ``-o FORMAT:FILE``),
exactly as a third-party package adds its own. They share one report model
(``Report``), built from the records a scan streams or from a JSONL file.
"""

from __future__ import annotations

from pentora_plugins.output.formats import (
    csv_report,
    html_report,
    json_report,
    md_report,
    nmap_text,
    xml_report,
)
from pentora_plugins.output.formats._model import Report

__all__ = ["FORMATS", "Report"]

FORMATS = (json_report.FORMAT, csv_report.FORMAT, csv_report.FINDINGS_FORMAT, md_report.FORMAT,
           xml_report.FORMAT, html_report.FORMAT, nmap_text.NORMAL, nmap_text.GREPABLE)
