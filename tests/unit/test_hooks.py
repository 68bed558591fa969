"""One test per hook of ``pentora/_hookspecs.py``, named after it, checking what its
reference in docs/writing-plugins.md promises: when it is called, with what, and how the
results of its implementations combine. Built on the general-purpose ``noop``, ``set``
and ``sleep`` modules, the built-in retry policies, and a few failing modules defined here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pentora_plugins.engine
import pytest
from pentora_plugins.engine import modules as engine_modules

from pentora import (
    DagBuilder,
    Module,
    NodeContext,
    NodeRestore,
    Orchestrator,
    OutputFormat,
    PluginError,
    RetryPolicy,
    TransientError,
    get_plugin_manager,
    hookimpl,
)
from pentora.cli._common import list_profiles, profile_path
from pentora.cli._main import build_parser
from pentora.cli._outputs import resolve_outputs


class BoomError(Exception):
    pass


class Fails(Module):
    """Fails every attempt."""

    module_type = "fails"

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        raise BoomError("no luck")


class Flaky(Module):
    """Fails with a transient error until ``config['succeed_on']`` attempts were made."""

    module_type = "flaky"
    config_schema = {"succeed_on": int}
    attempts: dict[str, int] = {}

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        n = Flaky.attempts[ctx.node_id] = Flaky.attempts.get(ctx.node_id, 0) + 1
        if n < config["succeed_on"]:
            raise TransientError(f"attempt {n} failed")
        return {"flaky_done": n}


class Finds(Module):
    """Emits two findings, checkpointing each as its own item, and sets ``found``."""

    module_type = "finds"
    produces = ("found",)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        found = []
        for host in ("127.0.0.1", "127.0.0.2"):
            if host in ctx.done_items():
                continue
            record = {"kind": "host", "address": host}
            ctx.emit(record)
            ctx.checkpoint(host, [record])
            found.append(host)
        return {"found": found}


class TestModules:
    pentora_plugin_name = "test-modules"

    @hookimpl
    def pentora_register_modules(self, registry: Any) -> None:
        for cls in (Fails, Flaky, Finds):
            registry.register(cls)


def orch(*plugins: Any, sleep: Any = None) -> Orchestrator:
    kw = {"sleep": sleep} if sleep else {}
    return Orchestrator(plugins=[pentora_plugins.engine, TestModules(), *plugins], autoload=False, **kw)


def run(o: Orchestrator, builder: DagBuilder, **kw: Any) -> Any:
    o.load_dag(builder.build())
    return o.execute(**kw)


class Events:
    """Every lifecycle notification, as (hook, node id or None)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def of(self, hook: str) -> list[str | None]:
        return [n for h, n in self.seen if h == hook]

    @hookimpl
    def pentora_scan_start(self, scan: Any) -> None:
        self.seen.append(("scan_start", None))

    @hookimpl
    def pentora_scan_complete(self, scan: Any, result: Any) -> None:
        self.seen.append(("scan_complete", None))

    @hookimpl
    def pentora_node_start(self, node: Any) -> None:
        self.seen.append(("start", node.instance_id))

    @hookimpl
    def pentora_node_complete(self, node: Any) -> None:
        self.seen.append(("complete", node.instance_id))

    @hookimpl
    def pentora_node_failed(self, node: Any) -> None:
        self.seen.append(("failed", node.instance_id))

    @hookimpl
    def pentora_node_skipped(self, node: Any) -> None:
        self.seen.append(("skipped", node.instance_id))

    @hookimpl
    def pentora_node_cancelled(self, node: Any) -> None:
        self.seen.append(("cancelled", node.instance_id))


@pytest.fixture(autouse=True)
def _fresh_flaky() -> None:
    Flaky.attempts.clear()


# -- registry ---------------------------------------------------------------------------------


def test_pentora_register_modules_adds_types_attributed_to_the_plugin() -> None:
    class Answer(Module):
        module_type = "answer"
        produces = ("answer",)

        def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
            return {"answer": 42}

    class Mine:
        pentora_plugin_name = "mine"

        @hookimpl
        def pentora_register_modules(self, registry: Any) -> None:
            registry.register(Answer)

    o = orch(Mine())
    assert o.registry.modules["answer"].provider == "mine"
    assert o.registry.modules["noop"].cls is engine_modules.Noop
    result = run(o, DagBuilder().add_node("a", "answer").add_node("b", "noop", ["a"]))
    assert result.ok and result.context.get("answer") == 42

    class Broken:
        pentora_plugin_name = "broken"

        @hookimpl
        def pentora_register_modules(self, registry: Any) -> None:
            raise RuntimeError("cannot register")

    with pytest.raises(PluginError, match="plugin 'broken' failed in pentora_register_modules"):
        orch(Broken())


def test_pentora_register_retry_policies_policy_gives_the_delays() -> None:
    class Linear:
        @hookimpl
        def pentora_register_retry_policies(self, registry: Any) -> None:
            registry.register_retry_policy(RetryPolicy(
                "linear", "n × initial", lambda n, spec, rng: n * spec.initial))

    slept: list[float] = []
    o = orch(Linear(), sleep=slept.append)
    assert o.registry.retry_policies["linear"].provider.endswith("Linear")
    result = run(o, DagBuilder().add_node(
        "f", "flaky", config={"succeed_on": 4},
        retry={"max_attempts": 4, "backoff": "linear", "initial": "500ms", "retry_on": ["transient"]}))
    assert result.ok and result.nodes["f"].attempts == 4
    assert slept == [0.5, 1.0, 1.5]


def test_pentora_register_output_formats_format_is_found_by_name_and_extension(tmp_path: Path) -> None:
    opened: list[Any] = []

    class Writer:
        def __init__(self, path: str) -> None:
            self.path, self.records, self.closed = path, [], False
            opened.append(self)

        def record(self, kind: str, data: Any) -> None:
            self.records.append(kind)

        def close(self, result: Any) -> None:
            self.closed = True

    class Ports:
        pentora_plugin_name = "ports-format"

        @hookimpl
        def pentora_register_output_formats(self, registry: Any) -> None:
            registry.register_output_format(OutputFormat("ports", "host:port lines", open=Writer,
                                                         extensions=(".ports",)))

    o = orch(Ports())
    fmt = o.registry.output_formats["ports"]
    assert fmt.provider == "ports-format"
    target = str(tmp_path / "scan.ports")
    assert resolve_outputs(o.registry, [target], None) == [("ports", target)]
    assert resolve_outputs(o.registry, ["-"], "ports") == [("ports", "-")]
    writer = fmt.open(target)
    writer.record("port", {"host": "127.0.0.1", "port": 22})
    writer.close(None)
    assert opened == [writer] and writer.records == ["port"] and writer.closed


def test_pentora_profile_dirs_lists_are_concatenated_first_match_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for d, names in ((first, ("quick", "shared")), (second, ("shared", "slow"))):
        d.mkdir()
        for name in names:
            (d / f"{name}.yaml").write_text(
                f"name: {name}\nnodes:\n  - {{instance_id: a, module_type: noop}}\n")

    class First:
        @hookimpl
        def pentora_profile_dirs(self) -> list[str]:
            return [str(first)]

    class Second:
        @hookimpl
        def pentora_profile_dirs(self) -> list[str]:
            return [str(second)]

    o = Orchestrator(plugins=[First(), Second()], autoload=False)  # no built-in profiles
    assert set(list_profiles(o)) == {"quick", "shared", "slow"}
    shared = profile_path(o, "shared")
    assert shared is not None and shared.parent in (first, second)
    assert profile_path(o, "nosuch") is None


def test_pentora_cli_commands_adds_a_subcommand_and_a_broken_plugin_loses_only_its_own() -> None:
    class Hello:
        @hookimpl
        def pentora_cli_commands(self, subparsers: Any, common: argparse.ArgumentParser) -> None:
            p = subparsers.add_parser("hello", parents=[common], help="say hello")
            p.add_argument("--name", default="world")
            p.set_defaults(func=lambda args: 0 if args.name == "tester" else 1)
            subparsers.choices["scan"].add_argument("--hello-flag", action="store_true")

    class Broken:
        @hookimpl
        def pentora_cli_commands(self, subparsers: Any, common: argparse.ArgumentParser) -> None:
            raise RuntimeError("no commands today")

    parser = build_parser(get_plugin_manager([Hello(), Broken()], autoload=False))
    args = parser.parse_args(["hello", "--name", "tester"])
    assert args.func(args) == 0
    assert parser.parse_args(["scan", "--hello-flag"]).hello_flag is True


# -- scan ---------------------------------------------------------------------------------------


def test_pentora_scan_start_is_called_once_before_any_node() -> None:
    events = Events()
    result = run(orch(events), DagBuilder().add_node("a", "noop").add_node("b", "noop", ["a"]))
    assert result.ok
    assert events.seen[0] == ("scan_start", None)
    assert events.of("scan_start") == [None]

    class SeesTheScan:
        seen: list[Any] = []

        @hookimpl
        def pentora_scan_start(self, scan: Any) -> None:
            self.seen.append((scan.dag.name, dict(scan.vars), scan.context.keys(), scan.options))

    watcher = SeesTheScan()
    o = orch(watcher)
    o.load_dag(DagBuilder("named").vars(level=1).add_node("a", "noop").build())
    o.execute(vars={"level": 2}, options={"progress": False})
    assert watcher.seen == [("named", {"level": 2}, [], {"progress": False})]


def test_pentora_scan_complete_is_called_last_with_the_result_even_after_fail_fast() -> None:
    results: list[Any] = []

    class Last(Events):
        @hookimpl
        def pentora_scan_complete(self, scan: Any, result: Any) -> None:
            super().pentora_scan_complete(scan, result)
            results.append(result)

    events = Last()
    result = run(orch(events), DagBuilder().add_node("bad", "fails").add_node("after", "noop", ["bad"]))
    assert results == [result]
    assert result.status == "failed" and [r.node for r in result.failures()] == ["bad"]
    assert events.seen[-1] == ("scan_complete", None)
    assert all(r.status in ("failed", "cancelled") for r in result.nodes.values())


# -- node -------------------------------------------------------------------------------------


def test_pentora_node_start_is_called_for_every_attempt() -> None:
    attempts: list[tuple[str, int]] = []

    class Starts:
        @hookimpl
        def pentora_node_start(self, node: Any, record: Any) -> None:
            attempts.append((node.instance_id, record.attempts))

    result = run(orch(Starts(), sleep=lambda s: None), DagBuilder().add_node(
        "f", "flaky", config={"succeed_on": 3},
        retry={"max_attempts": 3, "backoff": "fixed", "initial": 0, "retry_on": ["transient"]}))
    assert result.ok and attempts == [("f", 1), ("f", 2), ("f", 3)]


def test_pentora_node_complete_sees_the_outputs_and_the_duration() -> None:
    seen: list[tuple[str, Any, float | None]] = []

    class Completes:
        @hookimpl
        def pentora_node_complete(self, scan: Any, node: Any, record: Any) -> None:
            seen.append((node.instance_id, scan.context.get("greeting", None), record.duration_ms))

    result = run(orch(Completes()), DagBuilder()
                 .add_node("greet", "set", config={"values": {"greeting": "hello"}})
                 .add_node("items", "set", ["greet"], config={"values": {"items": [1, 2, 3]}})
                 .add_node("each", "noop", ["items"], for_each="items"))
    assert result.ok
    assert [(n, g) for n, g, _ in seen] == [("greet", "hello"), ("items", "hello"), ("each", "hello")]
    assert all(d is not None and d >= 0 for _, _, d in seen)


def test_pentora_node_failed_after_the_last_retry_with_error_and_trace() -> None:
    failed: list[Any] = []
    starts: list[int] = []

    class Failures:
        @hookimpl
        def pentora_node_failed(self, node: Any, record: Any) -> None:
            failed.append((node.instance_id, record.error, record.error_type, record.stack_trace,
                           record.attempts))

        @hookimpl
        def pentora_node_start(self, record: Any) -> None:
            starts.append(record.attempts)

    result = run(orch(Failures(), sleep=lambda s: None), DagBuilder().engine(fail_fast=False).add_node(
        "bad", "fails", retry={"max_attempts": 2, "backoff": "fixed", "initial": 0, "retry_on": ["any"]}))
    assert not result.ok and starts == [1, 2]
    [(node, error, error_type, trace, attempts)] = failed
    assert (node, error, error_type, attempts) == ("bad", "no luck", "BoomError", 2)
    assert "raise BoomError" in trace


def test_pentora_node_skipped_for_a_false_condition_and_a_failed_upstream() -> None:
    reasons: dict[str, str] = {}

    class Skips:
        @hookimpl
        def pentora_node_skipped(self, node: Any, record: Any) -> None:
            reasons[node.instance_id] = record.reason

    result = run(orch(Skips()), DagBuilder().engine(fail_fast=False).vars(enabled=False)
                 .add_node("off", "noop", condition="${enabled}")
                 .add_node("bad", "fails")
                 .add_node("after_bad", "noop", ["bad"])
                 .add_node("after_off", "noop", ["off"])
                 .add_node("either", "noop", ["bad", "off"], trigger_rule="all_done"))
    assert reasons == {"off": "condition '${enabled}' is false",
                       "after_bad": "upstream 'bad' failed",
                       "after_off": "upstream 'off' skipped"}
    assert result.nodes["either"].status == "completed"


def test_pentora_node_cancelled_for_running_and_pending_nodes_on_fail_fast() -> None:
    cancelled: dict[str, str] = {}
    events = Events()

    class Cancels:
        @hookimpl
        def pentora_node_cancelled(self, node: Any, record: Any) -> None:
            cancelled[node.instance_id] = record.reason

    result = run(orch(Cancels(), events), DagBuilder()
                 .add_node("slow", "sleep", config={"duration": "5s", "steps": 50})
                 .add_node("bad", "fails")
                 .add_node("later", "noop", ["slow"]))
    assert result.status == "failed"
    assert set(cancelled) == {"slow", "later"}
    assert all(r.startswith("fail-fast: node 'bad' failed") for r in cancelled.values())
    assert events.of("start").count("later") == 0
    assert result.nodes["slow"].status == result.nodes["later"].status == "cancelled"


def test_pentora_node_retry_gets_the_error_and_the_delay_before_the_next_start() -> None:
    events: list[Any] = []

    class Retries:
        @hookimpl
        def pentora_node_retry(self, node: Any, record: Any, error: BaseException, delay: float) -> None:
            events.append(("retry", str(error), delay, record.retry_attempts))

        @hookimpl
        def pentora_node_start(self, record: Any) -> None:
            events.append(("start", record.attempts))

    slept: list[float] = []
    result = run(orch(Retries(), sleep=slept.append), DagBuilder().add_node(
        "f", "flaky", config={"succeed_on": 3},
        retry={"max_attempts": 3, "backoff": "fixed", "initial": "250ms", "retry_on": ["transient"]}))
    assert result.ok and result.nodes["f"].retry_attempts == 2
    assert events == [("start", 1), ("retry", "attempt 1 failed", 0.25, 1),
                      ("start", 2), ("retry", "attempt 2 failed", 0.25, 2), ("start", 3)]
    assert slept == [0.25, 0.25]


def test_pentora_node_progress_reports_each_step_and_fan_out_branches() -> None:
    progress: list[tuple[str, int, int | None]] = []

    class Progress:
        @hookimpl
        def pentora_node_progress(self, node: Any, done: int, total: int | None) -> None:
            progress.append((node.instance_id, done, total))

    result = run(orch(Progress()), DagBuilder()
                 .add_node("wait", "sleep", config={"duration": "30ms", "steps": 3})
                 .add_node("items", "set", config={"values": {"items": ["a", "b"]}})
                 .add_node("each", "noop", ["items"], for_each="items"))
    assert result.ok
    assert [p for p in progress if p[0] == "wait"] == [("wait", 1, 3), ("wait", 2, 3), ("wait", 3, 3)]
    assert [p for p in progress if p[0] == "each"] == [("each", 1, 2), ("each", 2, 2)]
    assert result.nodes["wait"].progress == (3, 3)


def test_pentora_record_streams_findings_and_a_raising_implementation_is_contained() -> None:
    seen: list[tuple[str, str, str]] = []

    class Collects:
        @hookimpl
        def pentora_record(self, node: Any, kind: str, record: Any) -> None:
            seen.append((node.instance_id, kind, record["address"]))

    class Raises:
        @hookimpl
        def pentora_record(self, kind: str) -> None:
            raise RuntimeError("broken output")

    result = run(orch(Collects(), Raises()), DagBuilder().add_node("find", "finds"))
    # The scan went on and completed; the failed plugin makes it not ok (exit 3).
    assert result.status == "completed" and result.context.get("found") == ["127.0.0.1", "127.0.0.2"]
    assert not result.ok and {f["error"] for f in result.hook_errors} == {"broken output"}
    assert seen == [("find", "host", "127.0.0.1"), ("find", "host", "127.0.0.2")]


def test_pentora_node_execute_wrapper_sees_every_attempt_and_can_replace_the_outcome() -> None:
    calls: list[tuple[str, int]] = []

    class Forgiving:
        @hookimpl(wrapper=True)
        def pentora_node_execute(self, scan: Any, node: Any, ctx: NodeContext) -> Any:
            calls.append((node.instance_id, ctx.record.attempts))
            try:
                return (yield)
            except BoomError:
                ctx.set("forgiven", node.instance_id)
                return None

    result = run(orch(Forgiving(), sleep=lambda s: None), DagBuilder()
                 .add_node("bad", "fails")
                 .add_node("f", "flaky", ["bad"], config={"succeed_on": 2},
                           retry={"max_attempts": 2, "backoff": "fixed", "initial": 0,
                                  "retry_on": ["transient"]}))
    assert result.ok
    assert result.context.get("forgiven") == "bad"
    assert calls == [("bad", 1), ("f", 1), ("f", 2)]


def test_pentora_node_checkpoint_per_item_then_the_outputs_before_complete() -> None:
    seen: list[Any] = []

    class Store:
        @hookimpl
        def pentora_node_checkpoint(self, node: Any, item: str | None, records: list[Any],
                                    outputs: dict[str, Any] | None) -> None:
            seen.append(("checkpoint", node.instance_id, item, [r["address"] for r in records], outputs))

        @hookimpl
        def pentora_node_complete(self, node: Any) -> None:
            seen.append(("complete", node.instance_id))

    result = run(orch(Store()), DagBuilder().add_node("find", "finds"))
    assert result.ok
    assert seen == [
        ("checkpoint", "find", "127.0.0.1", ["127.0.0.1"], None),
        ("checkpoint", "find", "127.0.0.2", ["127.0.0.2"], None),
        ("checkpoint", "find", None, [], {"found": ["127.0.0.1", "127.0.0.2"]}),
        ("complete", "find"),
    ]


def test_pentora_node_restore_completed_and_partial_nodes_in_a_resumed_scan() -> None:
    asked: list[str] = []
    events = Events()
    records: list[tuple[str, str]] = []

    class Saved:
        @hookimpl
        def pentora_node_restore(self, scan: Any, node: Any) -> NodeRestore | None:
            asked.append(node.instance_id)
            if node.instance_id == "stub":
                return NodeRestore(completed=True, outputs={"greeting": "saved"},
                                   records=[("host", {"kind": "host", "address": "127.0.0.9"})])
            if node.instance_id == "find":
                return NodeRestore(completed=False,
                                   items={"127.0.0.1": [{"kind": "host", "address": "127.0.0.1"}]})
            return None

        @hookimpl
        def pentora_record(self, node: Any, kind: str, record: Any) -> None:
            records.append((node.instance_id, record["address"]))

    def builder() -> DagBuilder:
        return (DagBuilder()
                .add_node("stub", "set", config={"values": {"greeting": "fresh"}})
                .add_node("find", "finds", ["stub"])
                .add_node("after", "noop", ["find"]))

    result = run(orch(Saved(), events), builder(), options={"resume": True})
    assert result.ok
    assert asked == ["stub", "find", "after"]
    assert result.context.get("greeting") == "saved"           # restored, not run again
    assert result.nodes["stub"].reason == "restored from an earlier run"
    assert "stub" not in events.of("start") and "stub" in events.of("complete")
    assert result.context.get("found") == ["127.0.0.2"]        # 127.0.0.1 was done before
    assert records == [("stub", "127.0.0.9"), ("find", "127.0.0.1"), ("find", "127.0.0.2")]

    asked.clear()
    result = run(orch(Saved()), builder())                        # not a resumed scan: never asked
    assert asked == [] and result.context.get("greeting") == "fresh"
