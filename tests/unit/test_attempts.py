"""A node's attempts: the contexts they run with, and the retry loop nodes and for_each
branches share."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pentora import DagBuilder, DataContext, Module, ModuleError, NodeContext
from pentora._attempts import run_module
from tests.conftest import make_orch


class Items(Module):
    module_type = "items"
    produces = ("items",)
    config_schema = {"items": list}

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        return {"items": list(config["items"])}


class Probe(Module):
    """Reports which module type its context says it runs as."""

    module_type = "probe"
    seen: list[Any] = []

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        Probe.seen.append(ctx.module_type)


def test_node_context_gets_module_type_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    constructed: list[tuple[str, Any]] = []
    init = NodeContext.__init__

    def spy(self: NodeContext, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        constructed.append((self.node_id, self.module_type))  # before anyone could set it later

    monkeypatch.setattr(NodeContext, "__init__", spy)
    Probe.seen.clear()
    dag = (DagBuilder().add_node("items", "items", config={"items": [1, 2]})
           .add_node("plain", "probe", ["items"])
           .add_node("fan", "probe", ["items"], for_each="items").build())
    orch = make_orch(Items, Probe)
    orch.load_dag(dag)
    assert orch.execute().ok
    types = orch.registry.modules
    # 'fan' makes three: its own, then one per branch.
    assert sorted(constructed, key=lambda c: c[0]) == [
        ("fan", types["probe"]), ("fan", types["probe"]), ("fan", types["probe"]),
        ("items", types["items"]), ("plain", types["probe"])]
    assert Probe.seen == [types["probe"]] * 3 and Probe.seen[0].cls is Probe


def _bare_context(**kwargs: Any) -> NodeContext:
    scan = SimpleNamespace(vars={}, context=DataContext())
    node = SimpleNamespace(instance_id="n", for_each=None)
    return NodeContext(scan, node, None, {}, (), 1, lambda ctx, done, total: None,  # type: ignore[arg-type]
                       **kwargs)


def test_a_context_made_without_module_type_has_none_and_cannot_run_a_module() -> None:
    ctx = _bare_context()
    assert ctx.module_type is None
    with pytest.raises(ModuleError, match="Node 'n': its NodeContext has no module_type"):
        run_module(ctx)
