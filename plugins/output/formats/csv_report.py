"""The ``csv`` format: one row per open port, for spreadsheets and scripts.

Columns: host, hostname, port, protocol, state, service, product, version, cpe, tls,
findings (the number of findings on that port). A cell that a spreadsheet would read
as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first) is prefixed with ``'``: a
banner must not become a formula in the analyst's spreadsheet (CSV injection).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from pentora_plugins.output.formats._model import Report, ReportWriter

from pentora import OutputFormat
from pentora import clean_text as clean

COLUMNS = ("host", "hostname", "port", "protocol", "state", "service", "product", "version", "cpe",
           "tls", "findings")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """A target string as a safe CSV cell: controls escaped, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    text = clean(value, 1000)
    return "'" + text if text.startswith(_FORMULA) else text


def rows(report: Report) -> list[list[str]]:
    hostnames = {h.address: h.hostname for h in report.hosts()}
    out = []
    for p in report.open_ports():
        out.append([cell(p.host), cell(hostnames.get(p.host)), str(p.port), cell(p.protocol),
                    cell(p.state), cell(p.service_name), cell(p.get("product")), cell(p.get("version")),
                    cell(p.get("cpe")), cell(bool(p.get("tls"))), str(p.findings)])
    return out


def render(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # RFC 4180
    writer.writerow(COLUMNS)
    writer.writerows(rows(report))
    return buf.getvalue()


class CsvWriter(ReportWriter):
    format_name = "csv"

    def render(self, report: Report) -> str:
        return render(report)


FORMAT = OutputFormat("csv", "CSV: one row per open port with service, product, version, findings",
                      open=CsvWriter, extensions=(".csv",), takes_stream=True)
