"""A node's attempts: the contexts they run with, and the retry loop nodes and for_each
branches share."""

from __future__ import annotations

import io
import json
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest

from pentora import DagBuilder, DataContext, Module, ModuleError, NodeContext, RetryPolicy, hookimpl
from pentora._attempts import run_module
from pentora._logging import configure
from tests.conftest import make_orch

FIXED = RetryPolicy("fixed", "test", lambda n, spec, rng: spec.initial)


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


class FlakyBranch(Module):
    """Per item: fails (ConnectionResetError) as many times as ``failures`` says, then
    echoes the item. What a failed attempt wrote must not reach the merged outputs."""

    module_type = "flaky_branch"
    requires = ("items",)
    produces = ("echo",)
    config_schema = {"failures": {str: int}}
    calls: Counter[str] = Counter()

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        (item,) = ctx.get("items")
        FlakyBranch.calls[item] += 1
        if FlakyBranch.calls[item] <= config["failures"].get(item, 0):
            ctx.set("echo", [f"partial {item}"])
            raise ConnectionResetError(f"reset on {item}")
        return {"echo": [item]}


class Hooks:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def pentora_node_start(self, node, record):  # type: ignore[no-untyped-def]
        self.calls.append(("start", node.instance_id))

    @hookimpl
    def pentora_node_retry(self, scan, node, record, error, delay):  # type: ignore[no-untyped-def]
        self.calls.append(("retry", node.instance_id, record, error, delay))

    @hookimpl
    def pentora_node_complete(self, node, record):  # type: ignore[no-untyped-def]
        self.calls.append(("complete", node.instance_id))

    @hookimpl
    def pentora_node_failed(self, node, record):  # type: ignore[no-untyped-def]
        self.calls.append(("failed", node.instance_id))


def run_fan(failures: dict[str, int], max_attempts: int = 3) -> tuple[Any, Hooks, list[float]]:
    FlakyBranch.calls.clear()
    hooks, sleeps = Hooks(), []
    dag = (DagBuilder().engine(fail_fast=False, retry={
               "enabled": True, "max_attempts": max_attempts, "backoff": "fixed", "initial": "250ms"})
           .add_node("items", "items", config={"items": ["a", "b", "c"]})
           .add_node("fan", "flaky_branch", ["items"], for_each="items",
                     config={"failures": failures}).build())
    orch = make_orch(Items, FlakyBranch, plugins=(hooks,), policies=(FIXED,), sleep=sleeps.append)
    orch.load_dag(dag)
    return orch.execute(), hooks, sleeps


def test_a_branch_retried_once_fires_the_retry_hook_once_with_the_nodes_record():
    result, hooks, sleeps = run_fan({"b": 1})
    rec = result.nodes["fan"]
    assert rec.status == "completed" and [b.status for b in rec.branches] == ["completed"] * 3
    retries = [c for c in hooks.calls if c[0] == "retry"]
    assert len(retries) == 1
    _, node_id, record, error, delay = retries[0]
    assert node_id == "fan" and record is rec
    assert isinstance(error, ConnectionResetError) and str(error) == "reset on b"
    assert delay == 0.25 and sleeps == [0.25]
    # The node itself ran once; its record counts the branch's retry.
    assert (rec.attempts, rec.retry_attempts) == (1, 1)
    fan_calls = [c[0] for c in hooks.calls if c[1] == "fan"]
    assert fan_calls == ["start", "retry", "complete"]
    assert result.context.get("echo") == ["a", "b", "c"]  # the failed attempt's output is gone


def test_a_branch_out_of_retries_fires_one_hook_per_retry_then_fails_alone():
    result, hooks, sleeps = run_fan({"b": 5}, max_attempts=3)
    rec = result.nodes["fan"]
    assert rec.status == "completed" and rec.retry_attempts == 2 and sleeps == [0.25, 0.25]
    assert [c[0] for c in hooks.calls if c[1] == "fan"] == ["start", "retry", "retry", "complete"]
    assert [b.status for b in rec.branches] == ["completed", "failed", "completed"]
    assert rec.branches[1].error == "reset on b" and "ConnectionResetError" in rec.branches[1].stack_trace
    assert result.context.get("echo") == ["a", "c"]


def test_a_retry_is_logged_by_attempts_naming_the_branch_and_its_attempt():
    stream = io.StringIO()
    configure("DEBUG", "json", stream=stream)
    try:
        run_fan({"b": 1})
    finally:
        configure("WARNING")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["level"], r["message"]) for r in lines if r["component"] == "attempts"] == [
        ("debug", "node 'fan' branch 1 attempt 1 failed (ConnectionResetError: reset on b); "
                  "retrying in 0.25s")]
