"""A stored scan rendered in any output format, as ``pentora report`` renders a JSONL.

The stored records, then a ``node`` line per node and the ``scan`` line, are fed to the
registry's ``OutputFormat`` writers through the CLI's ``OutputSink`` (the path a live
scan's ``-o`` takes), into a temporary file that is read back whole.
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

from pentora.cli import OutputSink

CONTENT_TYPES = {"jsonl": "application/x-ndjson", "json": "application/json", "csv": "text/csv",
                 "md": "text/markdown", "xml": "application/xml", "html": "text/html"}
_CSP = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"')


def replay_lines(shown: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The JSONL lines of a stored scan: records, node lines, the scan line last."""
    scan = shown["scan"]
    nodes = [{"kind": "node", **n["record"]} for n in shown["nodes"] if n.get("record")]
    graph = {"nodes": [{"node": n["node"], "module_type": n["module_type"]}
                       for n in shown["nodes"]]}
    line = {"kind": "scan", "scan_id": scan["id"], "dag": scan["dag_name"],
            "status": scan["status"], "started_at": scan["started_at"],
            "finished_at": scan["finished_at"], "error": scan.get("error"),
            "vars": scan["vars"], "graph": graph}
    return [*records, *nodes, line]


def render(registry: Any, fmt: str, lines: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of the report in ``fmt`` (a key of ``CONTENT_TYPES``)."""
    fd, path = tempfile.mkstemp(prefix="pentora-report-", suffix=f".{fmt}")
    os.close(fd)
    try:
        sink = OutputSink(registry, [(fmt, path)])
        try:
            for line in lines:
                sink.feed(line["kind"], line)
        except BaseException:
            sink.close(None, commit=False)
            raise
        sink.close(None)
        with open(path, "rb") as f:
            body = f.read()
    finally:
        if os.path.exists(path):
            os.unlink(path)
    charset = "" if fmt in ("jsonl", "json") else "; charset=utf-8"
    headers = {"Content-Type": CONTENT_TYPES[fmt] + charset}
    if fmt == "html":
        found = _CSP.search(body.decode("utf-8", "replace"))
        if found:  # the page's own policy, as a header too (a header also covers frames)
            headers["Content-Security-Policy"] = found.group(1).replace("&#x27;", "'")
    return body, headers
