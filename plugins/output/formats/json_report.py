"""The ``json`` format: the whole scan as one JSON document.

``{"format": "pentora-report", "version": 1, "scan": {...}, "records": [...],
"min_quality": 70, "unverified": [...]}``: ``scan`` is the JSONL ``scan`` line without its
``kind`` (null for an interrupted scan), ``records`` every other JSONL line but the
unverified findings, sorted deterministically, and ``unverified`` those: the findings of
quality below ``min_quality`` (``--min-quality``), which a backport may have fixed. All
are described by ``pentora_plugins/data/pentora-records.schema.json``.
"""

from __future__ import annotations

import json
from typing import Any

from pentora_plugins.kit import quality
from pentora_plugins.output.formats._model import Report, ReportWriter

from pentora import OutputFormat

FORMAT_ID, VERSION = "pentora-report", 1


def document(report: Report) -> dict[str, Any]:
    scan = None
    if report.scan is not None:
        scan = {k: v for k, v in report.scan.items() if k != "kind"}
    verified: list[dict[str, Any]] = []
    unverified: list[dict[str, Any]] = []
    for r in report.records:
        counts = r.get("kind") != "vulnerability" or quality.is_verified(r, report.min_quality)
        (verified if counts else unverified).append(r)
    return {"format": FORMAT_ID, "version": VERSION, "scan": scan,
            "records": report.sorted_records(verified), "min_quality": report.min_quality,
            "unverified": report.sorted_records(unverified)}


class JsonWriter(ReportWriter):
    format_name = "json"

    def render(self, report: Report) -> str:
        # ASCII only, as the JSONL: raw U+2028 and friends confuse line-based tools
        return json.dumps(document(report), indent=2, default=str) + "\n"


FORMAT = OutputFormat("json", "one JSON document: the scan and every record (see the JSON Schema)",
                      open=JsonWriter, extensions=(".json",), takes_stream=True)
