"""The ``csv`` formats, for spreadsheets and scripts.

``csv``: one row per open port. Columns: host, hostname, port, protocol, state, service,
product, version, cpe, tls, findings (the number of verified findings on that port:
quality ``--min-quality`` or more), unverified (the number of the others).

``csv-findings``: one row per finding, verified or not (a spreadsheet filters on
``verified``). Columns: host, port, id, severity, cvss, title, quality, method,
known_exploited, verified, evidence.

A cell that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``, tab, CR
first) is prefixed with ``'``: a banner must not become a formula in the analyst's
spreadsheet (CSV injection).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from pentora_plugins.kit import quality
from pentora_plugins.output.formats._model import Report, ReportWriter

from pentora import OutputFormat
from pentora import clean_text as clean

COLUMNS = ("host", "hostname", "port", "protocol", "state", "service", "product", "version", "cpe",
           "tls", "findings", "unverified")
FINDING_COLUMNS = ("host", "port", "id", "severity", "cvss", "title", "quality", "method",
                   "known_exploited", "verified", "evidence")
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
    unverified: dict[tuple[str, int], int] = {}
    for v in report.unverified():
        if v.get("port") is not None:
            where = (str(v.get("host")), int(v["port"]))
            unverified[where] = unverified.get(where, 0) + 1
    out = []
    for p in report.open_ports():
        out.append([cell(p.host), cell(hostnames.get(p.host)), str(p.port), cell(p.protocol),
                    cell(p.state), cell(p.service_name), cell(p.get("product")), cell(p.get("version")),
                    cell(p.get("cpe")), cell(bool(p.get("tls"))), str(p.findings),
                    str(unverified.get((p.host, p.port), 0))])
    return out


def finding_rows(report: Report) -> list[list[str]]:
    out = []
    for v in report.vulnerabilities():
        q = quality.quality_of(v)
        out.append([cell(v.get("host")), cell(v.get("port")), cell(v.get("id")), cell(v.get("severity")),
                    cell(v.get("cvss")), cell(v.get("title")), cell(q), cell(v.get("method")),
                    cell(v.get("known_exploited") is True),
                    cell(quality.is_verified(v, report.min_quality)), cell(v.get("evidence"))])
    return out


def _csv(header: tuple[str, ...], body: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # RFC 4180
    writer.writerow(header)
    writer.writerows(body)
    return buf.getvalue()


def render(report: Report) -> str:
    return _csv(COLUMNS, rows(report))


def render_findings(report: Report) -> str:
    return _csv(FINDING_COLUMNS, finding_rows(report))


class CsvWriter(ReportWriter):
    format_name = "csv"

    def render(self, report: Report) -> str:
        return render(report)


class CsvFindingsWriter(ReportWriter):
    format_name = "csv-findings"

    def render(self, report: Report) -> str:
        return render_findings(report)


FORMAT = OutputFormat("csv", "CSV: one row per open port with service, product, version, findings",
                      open=CsvWriter, extensions=(".csv",), takes_stream=True)
FINDINGS_FORMAT = OutputFormat(
    "csv-findings", "CSV: one row per finding with severity, quality, method, KEV and verified",
    open=CsvFindingsWriter, extensions=(), takes_stream=True)
