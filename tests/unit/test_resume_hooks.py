"""The core's resume hooks, with no plugin: ``pentora_node_checkpoint`` (ctx.checkpoint and
node outputs), ``pentora_node_restore`` (completed and partly done nodes, retries), and
the order of lifecycle hooks for a restored node. ``pentora_scan_resume`` is exercised
through ``pentora scan --resume`` in tests/cli/test_scans_cli.py."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from voluptuous import Optional

from pentora import Module, NodeContext, RetryPolicy, TransientError, hookimpl
from pentora._nodectx import NodeRestore
from tests.conftest import make_orch


class Items(Module):
    """Handles each configured item once per run, checkpointing each."""

    module_type = "items"
    produces = ("handled",)
    config_schema = {Optional("items", default=[]): [str], Optional("fail_after", default=-1): int}
    ran: ClassVar[list[str]] = []

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        handled = [r["item"] for r in ctx.restored_records()]  # dict findings carry their kind
        for n, item in enumerate(i for i in config["items"] if i not in ctx.done_items()):
            if n == config["fail_after"] and ctx.record.attempts == 1:
                raise TransientError("flaky")
            Items.ran.append(item)
            record = {"kind": "thing", "item": item}
            ctx.emit(record)
            ctx.checkpoint(item, [record])
            handled.append(item)
        ctx.set("handled", handled)


class Reader(Module):
    module_type = "reader"
    requires = ("handled",)
    produces = ("count",)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        ctx.set("count", len(ctx.get("handled")))


class Hooks:
    """Records the resume-related hooks and answers restores from ``saved``."""

    def __init__(self, saved: dict[str, NodeRestore] | None = None) -> None:
        self.saved = saved or {}
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def pentora_node_checkpoint(self, node: Any, item: str | None, records: list[Any],
                                outputs: dict[str, Any] | None) -> None:
        self.calls.append(("checkpoint", node.instance_id, item, records, outputs))

    @hookimpl
    def pentora_node_restore(self, node: Any) -> NodeRestore | None:
        self.calls.append(("restore", node.instance_id))
        return self.saved.get(node.instance_id)

    @hookimpl
    def pentora_node_start(self, node: Any) -> None:
        self.calls.append(("start", node.instance_id))

    @hookimpl
    def pentora_node_complete(self, node: Any, record: Any) -> None:
        self.calls.append(("complete", node.instance_id, record.reason))

    @hookimpl
    def pentora_record(self, node: Any, kind: str, record: Any) -> None:
        self.calls.append(("record", node.instance_id, kind, record))


DAG = """
name: resume
nodes:
  - {instance_id: a, module_type: items, config: {items: [x, y, z]}}
  - {instance_id: b, module_type: reader, depends_on: [a]}
"""


def thing(item: str) -> dict[str, str]:
    return {"kind": "thing", "item": item}


@pytest.fixture(autouse=True)
def _fresh_runs() -> None:
    Items.ran.clear()


NOW = (RetryPolicy("fixed", "no wait", lambda n, spec, rng: 0.0),)


def run(hooks: Hooks, dag: str = DAG, resume: bool = True) -> Any:
    orch = make_orch(Items, Reader, plugins=(hooks,), policies=NOW)
    orch.load_dag(dag)
    return orch.execute(options={"resume": resume})


def test_checkpoint_hook_gets_each_item_then_the_node_outputs():
    hooks = Hooks()
    result = run(hooks)
    assert result.ok
    checkpoints = [c for c in hooks.calls if c[0] == "checkpoint"]
    assert checkpoints == [
        ("checkpoint", "a", "x", [{"kind": "thing", "item": "x"}], None),
        ("checkpoint", "a", "y", [{"kind": "thing", "item": "y"}], None),
        ("checkpoint", "a", "z", [{"kind": "thing", "item": "z"}], None),
        ("checkpoint", "a", None, [], {"handled": ["x", "y", "z"]}),
        ("checkpoint", "b", None, [], {"count": 3}),
    ]
    # the node's outputs are announced before its completion
    names = [c[:3] for c in hooks.calls if c[0] in ("checkpoint", "complete") and c[1] == "a"]
    assert names[-2:] == [("checkpoint", "a", None), ("complete", "a", None)]


def test_restore_of_a_completed_node_puts_outputs_back_without_running_it():
    saved = {"a": NodeRestore(completed=True, outputs={"handled": ["x", "y"]},
                              records=[("thing", thing("x")), ("thing", thing("y"))])}
    hooks = Hooks(saved)
    result = run(hooks)
    assert result.ok and Items.ran == []
    assert result.nodes["a"].status == "completed"
    assert result.nodes["a"].reason == "restored from an earlier run"
    assert result.context.get("count") == 2
    a_calls = [c for c in hooks.calls if c[1] == "a"]
    assert a_calls == [("restore", "a"), ("record", "a", "thing", {"kind": "thing", "item": "x"}),
                       ("record", "a", "thing", {"kind": "thing", "item": "y"}),
                       ("complete", "a", "restored from an earlier run")]  # no start


def test_restore_of_a_partial_node_skips_done_items_and_replays_their_findings():
    saved = {"a": NodeRestore(completed=False, items={"x": [{"kind": "thing", "item": "x"}]})}
    hooks = Hooks(saved)
    result = run(hooks)
    assert result.ok
    assert Items.ran == ["y", "z"]
    assert result.context.get("handled") == ["x", "y", "z"]
    a_calls = [c[:3] for c in hooks.calls if c[1] == "a" and c[0] in ("start", "record")]
    assert a_calls == [("start", "a"), ("record", "a", "thing"), ("record", "a", "thing"),
                       ("record", "a", "thing")]
    assert [c[3] for c in hooks.calls if c[0] == "record"] == [thing("x"), thing("y"), thing("z")]


def test_a_retry_continues_from_the_checkpoints_of_the_failed_attempt():
    dag = DAG.replace("items: [x, y, z]}", "items: [x, y, z], fail_after: 2}, "
                      "retry: {max_attempts: 2, backoff: fixed, retry_on: [transient]}")
    hooks = Hooks()
    result = run(hooks, dag)
    assert result.ok and result.nodes["a"].attempts == 2
    assert Items.ran == ["x", "y", "z"]  # x and y were not handled twice
    assert result.context.get("handled") == ["x", "y", "z"]


def test_reporters_are_never_restored():
    class Report(Module):
        module_type = "report"
        always_run = True

        def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
            ctx.set("reported", True)

    hooks = Hooks({"r": NodeRestore(completed=True, outputs={"reported": False})})
    orch = make_orch(Report, plugins=(hooks,))
    orch.load_dag("nodes: [{instance_id: r, module_type: report}]")
    result = orch.execute(options={"resume": True})
    assert result.context.get("reported") is True
    assert ("restore", "r") not in hooks.calls


def test_restore_is_asked_in_resumed_scans_only():
    hooks = Hooks({"a": NodeRestore(completed=True, outputs={"handled": []})})
    result = run(hooks, resume=False)
    assert result.ok and Items.ran == ["x", "y", "z"]
    assert not [c for c in hooks.calls if c[0] == "restore"]


def test_a_failing_restore_hook_runs_the_node_instead():
    class Broken(Hooks):
        @hookimpl
        def pentora_node_restore(self, node: Any) -> NodeRestore | None:
            raise RuntimeError("store unreadable")

    result = run(Broken())
    assert result.ok and Items.ran == ["x", "y", "z"]
