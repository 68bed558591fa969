"""``json_reporter``: the JSONL report as a DAG node.

The file is opened when the scan starts and every record is written the moment a
module emits it, node records as nodes end, and the ``scan`` record last — flushed
line by line, so an interrupted scan keeps everything found. The lines go to a
temporary file beside it (``.NAME.XXXXXXXX.partial``), renamed over it when the scan
ends: a scan that dies first leaves the earlier file as it was. The node itself is
``always_run``: it runs after upstream failures and records the report's totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import voluptuous as vol
from pentora_plugins.output.jsonl import JsonlWriter

from pentora import Module, ModuleError, NodeContext, RecordRouter, hookimpl, interpolate
from pentora.cli import output_problems

STATE = "output.json_reporter"  # the scan's open report files, by node: scan.state[STATE]


class JsonReporter(Module):
    """Write every record of the scan as JSON Lines to ``output``."""

    module_type = "json_reporter"
    description = "JSONL report, streamed as records are found (always runs)"
    always_run = True
    config_schema = {
        vol.Optional("output", default="", description="file to write ('-' for stdout, '' for none)"):
            str,
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        writer = ctx.scan.state.get(STATE, {}).get(ctx.node_id)
        if writer is None:
            if config["output"]:
                raise ModuleError(f"report file {config['output']!r} could not be opened", ctx.node_id)
            ctx.log.info("json_reporter has no output file configured; nothing written")
            return
        ctx.set(f"report:{ctx.node_id}", {"file": config["output"], "lines": writer.lines})


class _Counting(JsonlWriter):
    lines = 0

    def write(self, obj: dict[str, Any], now: bool = True) -> None:
        super().write(obj, now)
        self.lines += 1


class Streams(RecordRouter):
    """Opens each json_reporter node's file at scan start and feeds it as things happen.

    The open files belong to the scan (``scan.state``), so one plugin manager may run
    several scans at once."""

    def writers_for(self, scan: Any) -> Iterable[_Counting]:
        writers = scan.state.get(STATE)
        return writers.values() if writers else ()  # the common case: no json_reporter node

    @hookimpl
    def pentora_scan_start(self, scan: Any) -> None:
        writers: dict[str, _Counting] = {}
        for node in scan.dag.nodes:
            if node.module_type != JsonReporter.module_type:
                continue
            output = interpolate(node.config, scan.vars).get("output", "")
            if output:
                problems = output_problems([output], option="output")
                if problems:  # a directory or a FIFO would fail only at the final rename
                    raise ModuleError(f"cannot write the report: {problems[0]}", node.instance_id)
                try:
                    writers[node.instance_id] = _Counting(output)
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
