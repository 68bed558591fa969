"""``json_reporter``: the JSONL report as a DAG node.

The file is opened when the scan starts and every record is written the moment a
module emits it, node records as nodes end, and the ``scan`` record last — flushed
line by line, so an interrupted scan keeps everything found. The lines go to a
temporary file beside it (``.NAME.XXXXXXXX.partial``), renamed over it when the scan
ends: a scan that dies first leaves the earlier file as it was. The node itself is
``always_run``: it runs after upstream failures and records the report's totals.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from pentora_plugins.output._streams import MODULE_TYPE, STATE
from pentora_plugins.output.jsonl import JsonlWriter

from pentora import Module, ModuleError, NodeContext


class JsonReporter(Module):
    """Write every record of the scan as JSON Lines to ``output``."""

    module_type = MODULE_TYPE
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


class CountingWriter(JsonlWriter):
    """The JSONL writer of one json_reporter node's file, counting its lines (the node's
    result): opened by ``output.json_reporter`` when the scan starts."""

    lines = 0

    def write(self, obj: dict[str, Any], now: bool = True) -> None:
        super().write(obj, now)
        self.lines += 1
