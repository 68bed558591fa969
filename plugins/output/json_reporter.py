"""``json_reporter``: the JSONL report as a DAG node.

The file is opened when the scan starts and every record is written the moment a
module emits it, node records as nodes end, and the ``scan`` record last — flushed
line by line, so an interrupted scan keeps everything found. The node itself is
``always_run``: it runs after upstream failures and records the report's totals.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from pentora_plugins.output.jsonl import JsonlWriter

from pentora import Module, NodeContext, hookimpl
from pentora._errors import ModuleError
from pentora._sinks import RecordRouter


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
        writer = STREAMS.writers.get((ctx.scan.scan_id, ctx.node_id))
        if writer is None:
            if config["output"]:
                raise ModuleError(f"report file {config['output']!r} could not be opened", ctx.node_id)
            ctx.log.info("json_reporter has no output file configured; nothing written")
            return
        ctx.set(f"report:{ctx.node_id}", {"file": config["output"], "lines": writer.lines})


class _Counting(JsonlWriter):
    lines = 0

    def write(self, obj: dict[str, Any]) -> None:
        super().write(obj)
        self.lines += 1


class Streams(RecordRouter):
    """Opens each json_reporter node's file at scan start and feeds it as things happen."""

    def __init__(self) -> None:
        self.writers: dict[tuple[str, str], _Counting] = {}

    @hookimpl
    def pentora_register_modules(self, registry: Any) -> None:
        registry.register(JsonReporter)

    def writers_for(self, scan: Any) -> list[_Counting]:
        if not self.writers:  # the common case, on every node of every scan
            return []
        return [w for (sid, _), w in self.writers.items() if sid == scan.scan_id]

    @hookimpl
    def pentora_scan_start(self, scan: Any) -> None:
        from pentora._interpolate import interpolate

        for node in scan.dag.nodes:
            if node.module_type != JsonReporter.module_type:
                continue
            output = interpolate(node.config, scan.vars).get("output", "")
            if output:
                try:
                    self.writers[(scan.scan_id, node.instance_id)] = _Counting(output)
                except OSError as e:
                    ctx_log = f"cannot open report file {output!r}: {e.strerror}"
                    raise ModuleError(ctx_log, node.instance_id) from e
        super().pentora_scan_start(scan)  # the writers learn the DAG (drawn by `pentora report`)

    @hookimpl
    def pentora_scan_complete(self, scan: Any, result: Any) -> None:
        for key in [k for k in self.writers if k[0] == scan.scan_id]:
            self.writers.pop(key).close(result)


STREAMS = Streams()  # the plugin object, registered through the entry point
