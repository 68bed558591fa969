"""pentora-hello-plugin: the smallest useful third-party pentora plugin.

Registered through the ``pentora`` entry-point group (see ``pyproject.toml``), the same
path pentora's built-in plugins take; the module itself is the plugin object.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from loguru import logger

import pentora

__version__ = "0.3.0"


class HelloWorld(pentora.Module):
    """Writes a greeting into the DataContext."""

    module_type = "hello_world"
    produces = ("greeting",)
    config_schema = {
        vol.Optional("name", default="world", description="who to greet"): str,
        vol.Optional("punctuation", default="!", description="ends the greeting"):
            vol.In(["!", ".", "?"]),
        vol.Optional("repeat", default=1, description="how many times to say it"):
            vol.All(int, vol.Range(min=1, max=10)),
    }

    def run(self, ctx: pentora.NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        text = " ".join([f"Hello, {config['name']}{config['punctuation']}"] * config["repeat"])
        return {"greeting": text}


@pentora.hookimpl
def pentora_register_modules(registry: pentora.Registry) -> None:
    registry.register(HelloWorld)


@pentora.hookimpl
def pentora_node_complete(scan: pentora.ScanInfo, node: pentora.NodeSpec,
                          record: pentora.NodeRecord) -> None:
    if node.module_type == HelloWorld.module_type:
        logger.bind(component="hello", node=node.instance_id).info(
            "greeting: {}", scan.context.get("greeting", None))
