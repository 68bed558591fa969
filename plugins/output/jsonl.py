"""The ``jsonl`` output format: one JSON object a line, ``kind`` first, written as found.

Findings (``host``, ``port``, ``banner``…) are written the moment a module emits them,
``node`` lines as each node ends, and one ``scan`` line last, so an interrupted scan
keeps every line it had. Lines reach the file at most FLUSH_AFTER seconds after they are
written (``node`` and ``scan`` lines at once): a flush per line was a system call per
record, and each one handed the interpreter lock to the store's writer thread, which made
a sweep's hundred thousand records take seconds of the event loop.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

from pentora_plugins.kit.records import record_dict

from pentora import AtomicOutput, OutputFormat, atomic_output

COMMAND_LINE = "command_line"  # the scan option (and scan line field) holding it
FLUSH_AFTER = 0.2  # seconds a written line may wait in the buffer
# json.dumps with an option builds an encoder per call: a sweep writes tens of thousands of lines
_LINE = json.JSONEncoder(default=str)


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
            # until then the lines go to a temporary file beside it.
            self.stream: IO[str] = sys.stdout if target == "-" else atomic_output(  # type: ignore[assignment]
                target, line_buffering=False)
            self.owned = target != "-"
        else:
            self.stream, self.owned = target, False
        if isinstance(self.stream, AtomicOutput):  # the CLI's -o file, opened line-buffered
            self.stream.stream.reconfigure(line_buffering=False)  # type: ignore[attr-defined]
        self._flush_due: Any = None  # the timer that flushes the lines written since the last flush

    def write(self, obj: dict[str, Any], now: bool = True) -> None:
        # ASCII only: raw U+0085/U+2028 from a banner would split the line for many readers
        self.stream.write(_LINE.encode(obj) + "\n")
        if now:
            self.flush()
        elif self._flush_due is None:
            import gevent  # here: the format is registered by every command, --help included

            self._flush_due = gevent.spawn_later(FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        due, self._flush_due = self._flush_due, None
        if due is not None and due is not sys.modules["gevent"].getcurrent():
            due.kill(block=False)  # a timer exists: gevent was imported to start it
        if not getattr(self.stream, "closed", False):
            self.stream.flush()

    def record(self, kind: str, record: Any) -> None:
        # findings wait for the timer; a node's end is news at once
        self.write(record_dict(kind, record), now=kind == "node")

    def start(self, scan: Any) -> None:
        self.facts = scan_facts(scan)

    def close(self, result: Any) -> None:
        if result is not None:
            self.write(scan_line(result, self.facts))
        else:
            self.flush()
        if self.owned:
            self.stream.close()


FORMAT = OutputFormat("jsonl", "JSON Lines: one record a line, kind first, written as found",
                      open=JsonlWriter, extensions=(".jsonl", ".ndjson"), takes_stream=True)
