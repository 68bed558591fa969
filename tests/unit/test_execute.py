"""Executor semantics: ready queue, concurrency bounds, failures, reporters, determinism."""

from __future__ import annotations

import random
import time
from typing import Any

import gevent
import pytest
import voluptuous as vol

from pentora import DagBuilder, Module, NodeContext
from tests.conftest import make_orch

EVENTS: list[tuple[str, str, float]] = []


def mark(kind: str, node: str) -> None:
    EVENTS.append((kind, node, time.monotonic()))


@pytest.fixture(autouse=True)
def _clear_events():
    EVENTS.clear()
    yield
    EVENTS.clear()


class Sleepy(Module):
    module_type = "sleepy"
    config_schema = {"seconds": vol.Coerce(float)}

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        mark("start", ctx.node_id)
        try:
            gevent.sleep(config.get("seconds", 0))
        finally:
            mark("end", ctx.node_id)


class Boom(Module):
    module_type = "boom"

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        mark("start", ctx.node_id)
        raise RuntimeError(f"boom in {ctx.node_id}")


class Reporter(Module):
    module_type = "reporter"
    always_run = True
    seen: list[dict[str, Any]] = []

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        Reporter.seen.append({
            "keys": ctx.keys(),
            "records": {k: (r.status, r.error) for k, r in ctx.node_records().items()},
        })


class Producer(Module):
    module_type = "producer"
    produces = ("items",)
    config_schema = {"items": list}

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        return {"items": list(config["items"])}


def test_no_layer_barrier():
    """A node starts when its own dependencies end, not when its whole layer ends."""
    dag = (DagBuilder()
           .add_node("a", "sleepy", config={"seconds": 0})
           .add_node("slow", "sleepy", ["a"], {"seconds": 0.3})
           .add_node("fast", "sleepy", ["a"], {"seconds": 0})
           .add_node("after_fast", "sleepy", ["fast"], {"seconds": 0})
           .build())
    orch = make_orch(Sleepy)
    orch.load_dag(dag)
    result = orch.execute()
    assert result.ok
    t = {(k, n): ts for k, n, ts in EVENTS}
    assert t[("start", "after_fast")] < t[("end", "slow")]


def test_max_parallel_nodes_bound():
    b = DagBuilder().engine(max_parallel_nodes=3)
    for i in range(12):
        b.add_node(f"n{i}", "sleepy", config={"seconds": 0.02})
    orch = make_orch(Sleepy)
    orch.load_dag(b.build())
    assert orch.execute().ok
    running = peak = 0
    for kind, _, _ in sorted(EVENTS, key=lambda e: e[2]):
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 3


def test_ready_ties_follow_definition_order():
    b = DagBuilder().engine(max_parallel_nodes=1)
    names = ["zeta", "alpha", "mid", "beta"]
    for n in names:
        b.add_node(n, "sleepy", config={"seconds": 0})
    orch = make_orch(Sleepy)
    orch.load_dag(b.build())
    orch.execute()
    assert [n for k, n, _ in EVENTS if k == "start"] == names


class Pooled(Module):
    module_type = "pooled"
    peak = 0

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        active = [0]

        def work(i: int) -> int:
            active[0] += 1
            Pooled.peak = max(Pooled.peak, active[0])
            gevent.sleep(random.random() * 0.01)
            active[0] -= 1
            return i * i

        return {"squares": ctx.map(work, range(50))}


def test_max_parallel_targets_bounds_module_pool_and_keeps_order():
    Pooled.peak = 0
    orch = make_orch(Pooled)
    orch.load_dag(DagBuilder().engine(max_parallel_targets=7).add_node("p", "pooled").build())
    result = orch.execute()
    assert result.context.get("squares") == [i * i for i in range(50)]
    assert Pooled.peak == 7


def test_fail_fast_kills_a_sleeping_sibling_and_cancels_the_rest():
    dag = (DagBuilder()
           .add_node("sleeper", "sleepy", config={"seconds": 30})
           .add_node("bad", "boom")
           .add_node("after_sleeper", "sleepy", ["sleeper"], {"seconds": 0})
           .build())
    orch = make_orch(Sleepy, Boom)
    orch.load_dag(dag)
    started = time.monotonic()
    result = orch.execute()
    assert time.monotonic() - started < 5
    assert result.status == "failed" and not result.ok
    assert result.nodes["bad"].status == "failed"
    assert result.nodes["sleeper"].status == "cancelled"
    assert result.nodes["after_sleeper"].status == "cancelled"
    # The sleeper's greenlet really died: its finally block ran at kill time.
    assert ("end", "sleeper") in [(k, n) for k, n, _ in EVENTS]
    assert "fail-fast" in result.nodes["sleeper"].reason


def test_continue_on_error_skips_dependents_transitively_and_runs_the_rest():
    Reporter.seen.clear()
    dag = (DagBuilder().engine(fail_fast=False)
           .add_node("root", "sleepy", config={"seconds": 0})
           .add_node("bad", "boom", ["root"])
           .add_node("child", "sleepy", ["bad"], {"seconds": 0})
           .add_node("grandchild", "sleepy", ["child"], {"seconds": 0})
           .add_node("other", "sleepy", ["root"], {"seconds": 0.05})
           .add_node("report", "reporter", ["grandchild", "other"])
           .build())
    orch = make_orch(Sleepy, Boom, Reporter)
    orch.load_dag(dag)
    result = orch.execute()
    status = {k: r.status for k, r in result.nodes.items()}
    assert status == {"root": "completed", "bad": "failed", "child": "skipped",
                      "grandchild": "skipped", "other": "completed", "report": "completed"}
    assert result.nodes["child"].reason == "upstream 'bad' failed"
    assert result.nodes["grandchild"].reason == "upstream 'child' skipped"
    # The reporter saw partial results and the error record.
    seen = Reporter.seen[-1]["records"]
    assert seen["bad"] == ("failed", "boom in bad")
    assert result.status == "completed" and not result.ok


def test_reporter_runs_after_fail_fast():
    Reporter.seen.clear()
    dag = (DagBuilder()
           .add_node("items", "producer", config={"items": [1, 2]})
           .add_node("bad", "boom", ["items"])
           .add_node("slow", "sleepy", ["items"], {"seconds": 10})
           .add_node("report", "reporter", ["bad", "slow"])
           .build())
    orch = make_orch(Sleepy, Boom, Reporter, Producer)
    orch.load_dag(dag)
    result = orch.execute()
    assert result.nodes["report"].status == "completed"
    assert result.nodes["slow"].status == "cancelled"
    assert "items" in Reporter.seen[-1]["keys"]


def test_failure_record_has_every_field():
    orch = make_orch(Boom)
    orch.load_dag(DagBuilder().add_node("port_scan", "boom").build())
    rec = orch.execute().nodes["port_scan"]
    d = rec.to_dict()
    assert d["node"] == "port_scan" and d["status"] == "failed"
    assert d["error"] == "boom in port_scan"
    assert "RuntimeError" in d["stack_trace"] and "Traceback" in d["stack_trace"]
    assert d["timestamp"].endswith("Z") and d["retry_attempts"] == 0
    assert d["duration_ms"] is not None


class Summer(Module):
    module_type = "summer"
    requires = ("items",)
    produces = ("total",)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        gevent.sleep(random.random() * 0.005)
        ctx.set("total", [sum(ctx.get("items"))])


def test_same_inputs_same_outputs_whatever_the_timing():
    outputs = set()
    for seed in range(5):
        random.seed(seed)
        dag = (DagBuilder()
               .add_node("items", "producer", config={"items": list(range(20))})
               .add_node("sum", "summer", ["items"], for_each="items")
               .build())
        orch = make_orch(Producer, Summer)
        orch.load_dag(dag)
        result = orch.execute()
        outputs.add(tuple(result.context.get("total")))
        assert list(result.nodes) == ["items", "sum"]
    assert outputs == {tuple(range(20))}


def test_missing_key_error_names_node_and_key():
    class Needy(Module):
        module_type = "needy"
        requires = ("banners",)

        def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
            ctx.get("banners")

    class Liar(Module):
        module_type = "liar"
        produces = ("banners",)

        def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
            return None  # promises banners, writes nothing

    orch = make_orch(Needy, Liar)
    orch.load_dag(DagBuilder().add_node("banner_grab", "liar")
                  .add_node("fingerprint", "needy", ["banner_grab"]).build())
    rec = orch.execute().nodes["fingerprint"]
    assert rec.error == "Node 'fingerprint' requires 'banners' but key not found in DataContext"


def test_status_and_callbacks():
    orch = make_orch(Sleepy, Boom)
    orch.load_dag(DagBuilder().engine(fail_fast=False).add_node("a", "sleepy", config={"seconds": 0.05})
                  .add_node("b", "boom", ["a"]).build())
    seen: list[tuple[str, str]] = []
    orch.on_node_start(lambda node, rec: seen.append(("start", node.instance_id)))
    orch.on_node_complete(lambda node, rec: seen.append(("complete", node.instance_id)))
    orch.on_node_failed(lambda node, rec: seen.append(("failed", node.instance_id)))
    snapshots = []
    watcher = gevent.spawn(lambda: (gevent.sleep(0.02), snapshots.append(orch.status())))
    orch.execute()
    watcher.join()
    assert seen == [("start", "a"), ("complete", "a"), ("start", "b"), ("failed", "b")]
    assert snapshots[0]["state"] == "running" and snapshots[0]["running"] == ["a"]
    final = orch.status()
    assert final["state"] == "finished" and final["percent"] == 100.0
    assert final["counts"] == {"completed": 1, "failed": 1}
