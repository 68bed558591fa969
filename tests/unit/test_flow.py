"""Conditions, dynamic fan-out, hook order, contained hook failures."""

from __future__ import annotations

from typing import Any

import pytest

from pentora import Condition, ConditionError, DagBuilder, Module, NodeContext, hookimpl
from tests.conftest import make_orch


class Ports(Module):
    module_type = "ports"
    produces = ("open_ports",)
    config_schema = {"ports": list}

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        return {"open_ports": [{"host": "127.0.0.1", "port": p} for p in config["ports"]]}


class Banner(Module):
    module_type = "banner"
    requires = ("open_ports",)
    produces = ("banners",)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        (port,) = ctx.get("open_ports")  # a branch sees just its own item
        if port["port"] == 22:
            raise ConnectionResetError("reset while reading banner")
        return {"banners": [{"port": port["port"], "data": f"banner-{port['port']}"}]}


class Fingerprint(Module):
    module_type = "fingerprint"
    requires = ("banners",)
    produces = ("service_fingerprints",)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        return {"service_fingerprints": [{"port": b["port"], "service": "http"}
                                         for b in ctx.get("banners")]}


class Noop(Module):
    module_type = "noop"

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        return None


def test_fanout_banner_22_fails_fingerprint_80_succeeds():
    dag = (DagBuilder()
           .add_node("port_scan", "ports", config={"ports": [22, 80, 443]})
           .add_node("banner", "banner", ["port_scan"], for_each="open_ports")
           .add_node("fingerprint", "fingerprint", ["banner"], for_each="banners")
           .build())
    orch = make_orch(Ports, Banner, Fingerprint)
    orch.load_dag(dag)
    result = orch.execute()
    banner = result.nodes["banner"]
    assert banner.status == "completed"
    by_port = {b.item["port"]: b for b in banner.branches}
    assert by_port[22].status == "failed" and "reset" in by_port[22].error
    assert by_port[80].status == "completed" and by_port[443].status == "completed"
    assert result.nodes["fingerprint"].status == "completed"
    assert result.context.get("service_fingerprints") == [
        {"port": 80, "service": "http"}, {"port": 443, "service": "http"}]
    assert result.nodes["banner"].progress == (3, 3)


def test_fan_out_all_branches_failed_fails_the_node():
    dag = (DagBuilder().engine(fail_fast=False)
           .add_node("port_scan", "ports", config={"ports": [22]})
           .add_node("banner", "banner", ["port_scan"], for_each="open_ports").build())
    orch = make_orch(Ports, Banner)
    orch.load_dag(dag)
    rec = orch.execute().nodes["banner"]
    assert rec.status == "failed" and "all 1 branches failed" in rec.error


def test_fan_out_over_empty_list_completes():
    dag = (DagBuilder().add_node("port_scan", "ports", config={"ports": []})
           .add_node("banner", "banner", ["port_scan"], for_each="open_ports").build())
    orch = make_orch(Ports, Banner)
    orch.load_dag(dag)
    result = orch.execute()
    assert result.ok and result.nodes["banner"].branches == []


@pytest.mark.parametrize("condition, vars, expected", [
    ("${vuln_enabled}", {"vuln_enabled": True}, "completed"),
    ("${vuln_enabled}", {"vuln_enabled": False}, "skipped"),
    ("len(open_ports) > 0", {}, "completed"),
    ("len(open_ports) > 5", {}, "skipped"),
    ("${vuln_enabled} and len(open_ports) >= 2", {"vuln_enabled": True}, "completed"),
    ("not ${vuln_enabled} or mode == 'deep'", {"vuln_enabled": True, "mode": "fast"}, "skipped"),
    ("mode in ['deep', 'full']", {"mode": "full"}, "completed"),
])
def test_conditions(condition, vars, expected):
    dag = (DagBuilder().vars(vuln_enabled=False, mode="fast")
           .add_node("port_scan", "ports", config={"ports": [22, 80]})
           .add_node("vuln", "noop", ["port_scan"], condition=condition)
           .add_node("after", "noop", ["vuln"]).build())
    orch = make_orch(Ports, Noop)
    orch.load_dag(dag)
    result = orch.execute(vars=vars)
    assert result.nodes["vuln"].status == expected
    if expected == "skipped":
        assert result.nodes["vuln"].reason == f"condition {condition!r} is false"
        assert result.nodes["after"].status == "skipped"


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "open_ports.__class__", "x[0]", "(lambda: 1)()",
    "exec('1')", "[x for x in y]", "a if b else c", "'a' * 10", "f'{x}'",
])
def test_conditions_refuse_anything_but_the_whitelist(text):
    with pytest.raises(ConditionError):
        c = Condition(text)
        c.evaluate(lambda name: "text")


def test_a_condition_python_warns_about_prints_nothing(capfd):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a SyntaxWarning escaping the parser would raise here
        assert Condition("1and x").names == {"x"}
    assert capfd.readouterr().err == ""


def test_condition_arithmetic_and_constants():
    c = Condition("count * 2 + 1 > 4 and enabled == true and none_value == null")
    values = {"count": 2, "enabled": True, "none_value": None}
    assert c.evaluate(values.__getitem__) is True
    assert c.names == {"count", "enabled", "none_value"}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def pentora_scan_start(self, scan):
        self.calls.append(("scan_start", scan.dag.name))

    @hookimpl
    def pentora_scan_complete(self, scan, result):
        self.calls.append(("scan_complete", result.status))

    @hookimpl
    def pentora_node_start(self, node, record):
        self.calls.append(("start", node.instance_id))

    @hookimpl
    def pentora_node_complete(self, node, record):
        self.calls.append(("complete", node.instance_id))

    @hookimpl
    def pentora_node_failed(self, node, record):
        self.calls.append(("failed", node.instance_id))

    @hookimpl
    def pentora_node_skipped(self, node, record):
        self.calls.append(("skipped", node.instance_id))

    @hookimpl
    def pentora_node_cancelled(self, node, record):
        self.calls.append(("cancelled", node.instance_id))

    @hookimpl
    def pentora_node_retry(self, node, record, error, delay):
        self.calls.append(("retry", node.instance_id))

    @hookimpl
    def pentora_node_progress(self, node, done, total):
        self.calls.append(("progress", f"{node.instance_id} {done}/{total}"))


class Bad(Module):
    module_type = "bad"

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        ctx.progress(1, 2)
        raise RuntimeError("bad")


class Report(Module):
    module_type = "report"
    always_run = True

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        return None


def test_exact_hook_order_with_a_failure_and_a_skip():
    rec = Recorder()
    dag = (DagBuilder("order").engine(fail_fast=False, max_parallel_nodes=1)
           .add_node("a", "noop")
           .add_node("b", "bad", ["a"])
           .add_node("c", "noop", ["b"])
           .add_node("d", "noop", ["a"], condition="false")
           .add_node("r", "report", ["c", "d"]).build())
    orch = make_orch(Noop, Bad, Report, plugins=(rec,))
    orch.load_dag(dag)
    orch.execute()
    assert rec.calls == [
        ("scan_start", "order"),
        ("start", "a"), ("complete", "a"),
        ("start", "b"), ("progress", "b 1/2"), ("failed", "b"),
        ("skipped", "c"),
        ("skipped", "d"),
        ("start", "r"), ("complete", "r"),
        ("scan_complete", "completed"),
    ]


class Broken:
    @hookimpl
    def pentora_node_start(self, node):
        raise ValueError("plugin bug")

    @hookimpl
    def pentora_scan_complete(self, result):
        raise KeyError("another plugin bug")


def test_broken_hook_is_contained(log_messages):
    rec = Recorder()
    orch = make_orch(Noop, plugins=(Broken(), rec))
    orch.load_dag(DagBuilder().add_node("a", "noop").build())
    result = orch.execute()
    # The scan goes on (the node completed, other plugins heard of it), but a plugin that
    # failed is on the result, which is not ok: the CLI exits 3.
    assert result.status == "completed" and ("complete", "a") in rec.calls
    assert not result.ok
    assert [(f["hook"], f["error_type"]) for f in result.hook_errors] == [
        ("pentora_node_start", "ValueError"), ("pentora_scan_complete", "KeyError")]
    assert result.to_dict()["hook_errors"][0]["plugin"].endswith("Broken")
    assert any(m.startswith("ERROR") and "plugin bug" in m and "pentora_node_start" in m
               for m in log_messages)


def test_every_hookspec_has_a_caller():
    """Every pentora_* hook spec is exercised somewhere: this lists them against the tests."""
    import pathlib

    import pentora._hookspecs as specs

    names = [n for n in dir(specs) if n.startswith("pentora_")]
    text = "".join(p.read_text() for p in pathlib.Path(__file__).parent.parent.rglob("test_*.py"))
    missing = [n for n in names if n not in text and n.removeprefix("pentora_") not in text]
    assert not missing, f"hook specs with no test: {missing}"


@pytest.mark.parametrize("rule, expected", [
    ("all_success", "skipped"), ("one_success", "completed"), ("all_done", "completed")])
def test_trigger_rules(rule, expected):
    dag = (DagBuilder().engine(fail_fast=False)
           .add_node("ok", "noop").add_node("bad", "bad")
           .add_node("join", "noop", ["ok", "bad"], trigger_rule=rule).build())
    orch = make_orch(Noop, Bad)
    orch.load_dag(dag)
    result = orch.execute()
    assert result.nodes["join"].status == expected


def test_one_success_skips_when_every_upstream_failed():
    dag = (DagBuilder().engine(fail_fast=False)
           .add_node("bad1", "bad").add_node("bad2", "bad")
           .add_node("join", "noop", ["bad1", "bad2"], trigger_rule="one_success").build())
    orch = make_orch(Noop, Bad)
    orch.load_dag(dag)
    rec = orch.execute().nodes["join"]
    assert rec.status == "skipped" and "one_success" in rec.reason
