"""The ``jsonl`` output format: one JSON object a line, ``kind`` first, flushed as found.

Findings (``host``, ``port``, ``banner``…) are written the moment a module emits them,
``node`` lines as each node ends, and one ``scan`` line last, so an interrupted scan
keeps every line it had.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from pentora_plugins.kit.records import record_dict

from pentora import OutputFormat, atomic_output

COMMAND_LINE = "command_line"  # the scan option (and scan line field) holding it


def scan_facts(scan: Any) -> dict[str, Any]:
    """What the ``scan`` line adds to the result: the vars, the DAG's shape (``graph``:
    each node's id, module type and dependencies), so a report can draw the DAG later, and
    the command line that ran it (``command_line``) when the CLI ran it."""
    nodes = [{"node": n.instance_id, "module_type": n.module_type, "depends_on": list(n.depends_on)}
             for n in scan.dag.nodes]
    facts: dict[str, Any] = {"vars": dict(scan.vars), "graph": {"nodes": nodes}}
    command = (scan.options or {}).get(COMMAND_LINE)
    if isinstance(command, str):  # the command line, for reports that show it (nmap's args)
        facts[COMMAND_LINE] = command
    return facts


def scan_line(result: Any, facts: dict[str, Any] | None) -> dict[str, Any]:
    """The last JSONL line: the scan result without its node records (each has its own line)."""
    data = result.to_dict()
    data.pop("nodes", None)
    return {"kind": "scan", **data, **(facts or {})}


class JsonlWriter:
    facts: dict[str, Any] | None = None

    def __init__(self, target: str | IO[str]) -> None:
        if isinstance(target, str):
            # A path of its own (json_reporter's file) is replaced whole when the scan ends;
            # until then the lines go, flushed one by one, to a temporary file beside it.
            self.stream: IO[str] = sys.stdout if target == "-" else atomic_output(target)  # type: ignore[assignment]
            self.owned = target != "-"
        else:
            self.stream, self.owned = target, False

    def write(self, obj: dict[str, Any]) -> None:
        # ASCII only: raw U+0085/U+2028 from a banner would split the line for many readers
        self.stream.write(json.dumps(obj, default=str) + "\n")
        self.stream.flush()

    def record(self, kind: str, record: Any) -> None:
        self.write(record_dict(kind, record))

    def start(self, scan: Any) -> None:
        self.facts = scan_facts(scan)

    def close(self, result: Any) -> None:
        if result is not None:
            self.write(scan_line(result, self.facts))
        if self.owned:
            self.stream.close()


FORMAT = OutputFormat("jsonl", "JSON Lines: one record a line, kind first, written as found",
                      open=JsonlWriter, extensions=(".jsonl", ".ndjson"), takes_stream=True)
