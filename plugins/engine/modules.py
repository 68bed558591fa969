"""General-purpose module types for any DAG: ``noop``, ``sleep`` and ``set``."""

from __future__ import annotations

from typing import Any

import gevent
from voluptuous import Optional, Required

from pentora import Module, NodeContext
from pentora.schema import Duration, PositiveInt


class Noop(Module):
    """Does nothing: a join point or a placeholder."""

    module_type = "noop"

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        return None


class Sleep(Module):
    """Waits a while, reporting progress: for demos and for testing timeouts."""

    module_type = "sleep"
    config_schema = {
        Optional("duration", default="1s", description="how long to wait"): Duration(),
        Optional("steps", default=10, description="progress updates while waiting"): PositiveInt(),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        step = config["duration"] / config["steps"]
        for i in range(config["steps"]):
            gevent.sleep(step)
            ctx.progress(i + 1, config["steps"])


class Set(Module):
    """Writes constant values into the DataContext (seeds a DAG, or stubs a stage)."""

    module_type = "set"
    config_schema = {
        Required("values", description="mapping of DataContext key to value"): {str: object},
    }

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (), tuple(config["values"])

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        return dict(config["values"])
MODULES = (Noop, Sleep, Set)
