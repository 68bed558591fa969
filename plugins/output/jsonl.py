"""The ``jsonl`` output format: one JSON object a line, ``kind`` first, flushed as found.

Findings (``host``, ``port``, ``banner``…) are written the moment a module emits them,
``node`` lines as each node ends, and one ``scan`` line last, so an interrupted scan
keeps every line it had.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import IO, Any

from pentora import OutputFormat, Registry, hookimpl


def record_dict(kind: str, record: Any) -> dict[str, Any]:
    """``{"kind": kind, **fields}`` for a record dataclass, a dict or an object with to_dict()."""
    if hasattr(record, "to_dict"):
        data = record.to_dict()
    elif dataclasses.is_dataclass(record) and not isinstance(record, type):
        data = dataclasses.asdict(record)
    elif isinstance(record, dict):
        data = dict(record)
    else:
        data = {"value": record}
    data.pop("kind", None)
    return {"kind": kind, **data}


def scan_facts(scan: Any) -> dict[str, Any]:
    """What the ``scan`` line adds to the result: the vars and the DAG's shape (``graph``:
    each node's id, module type and dependencies), so a report can draw the DAG later."""
    nodes = [{"node": n.instance_id, "module_type": n.module_type, "depends_on": list(n.depends_on)}
             for n in scan.dag.nodes]
    return {"vars": dict(scan.vars), "graph": {"nodes": nodes}}


def scan_line(result: Any, facts: dict[str, Any] | None) -> dict[str, Any]:
    """The last JSONL line: the scan result without its node records (each has its own line)."""
    data = result.to_dict()
    data.pop("nodes", None)
    return {"kind": "scan", **data, **(facts or {})}


class JsonlWriter:
    facts: dict[str, Any] | None = None

    def __init__(self, target: str | IO[str]) -> None:
        if isinstance(target, str):
            self.stream: IO[str] = sys.stdout if target == "-" else open(  # noqa: SIM115
                target, "w", encoding="utf-8", buffering=1)
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
                      open=JsonlWriter, extensions=(".jsonl", ".ndjson"))


@hookimpl
def pentora_register_output_formats(registry: Registry) -> None:
    registry.register_output_format(FORMAT)
