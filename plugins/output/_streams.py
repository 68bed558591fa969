"""The ``output.json_reporter`` plugin: the files of the scan's ``json_reporter`` nodes,
opened when the scan starts and fed every record as it is found."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pentora import ModuleError, RecordRouter, hookimpl, interpolate

# The plugin is registered whenever pentora starts: the writer (with the module type, the
# records and voluptuous) and the CLI's output checks are imported when a scan has a
# json_reporter node to feed.

STATE = "output.json_reporter"  # the scan's open report files, by node: scan.state[STATE]
MODULE_TYPE = "json_reporter"  # the nodes whose files it opens


class Streams(RecordRouter):
    """Opens each json_reporter node's file at scan start and feeds it as things happen.

    The open files belong to the scan (``scan.state``), so one plugin manager may run
    several scans at once."""

    def writers_for(self, scan: Any) -> Iterable[Any]:
        writers = scan.state.get(STATE)
        return writers.values() if writers else ()  # the common case: no json_reporter node

    @hookimpl
    def pentora_scan_start(self, scan: Any) -> None:
        writers: dict[str, Any] = {}
        for node in scan.dag.nodes:
            if node.module_type != MODULE_TYPE:
                continue
            output = interpolate(node.config, scan.vars).get("output", "")
            if output:
                from pentora_plugins.output.json_reporter import CountingWriter

                from pentora.cli import output_problems

                problems = output_problems([output], option="output")
                if problems:  # a directory or a FIFO would fail only at the final rename
                    raise ModuleError(f"cannot write the report: {problems[0]}", node.instance_id)
                try:
                    writers[node.instance_id] = CountingWriter(output)
                except OSError as e:
                    raise ModuleError(f"cannot open report file {output!r}: {e.strerror}",
                                      node.instance_id) from e
        if writers:
            scan.state[STATE] = writers
        super().pentora_scan_start(scan)  # the writers learn the DAG (drawn by `pentora report`)

    @hookimpl
    def pentora_scan_idle(self, scan: Any) -> object | None:
        return None if scan.state.get(STATE) else self  # no report file to feed in this scan

    @hookimpl
    def pentora_scan_complete(self, scan: Any, result: Any) -> None:
        for writer in scan.state.pop(STATE, {}).values():
            writer.close(result)

