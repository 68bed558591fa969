"""Logging (loguru, text and JSON) and progress output."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import gevent

from pentora import DagBuilder, Module, NodeContext
from pentora._logging import configure
from tests.conftest import make_orch


class Steps(Module):
    module_type = "steps"

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        for i in range(1, 4):
            gevent.sleep(0.001)
            ctx.progress(i, 3)


class Bad(Module):
    module_type = "bad"

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        raise OSError("disk on fire")


def _logging_plugin():
    import pentora_plugins.engine.logging as plugin

    return plugin


def test_json_logs_carry_level_timestamp_component_node_message():
    stream = io.StringIO()
    configure("INFO", "json", stream=stream)
    try:
        orch = make_orch(Steps, Bad, plugins=(_logging_plugin(),))
        orch.load_dag(DagBuilder().engine(fail_fast=False).add_node("port_scan", "steps")
                      .add_node("bad", "bad").build())
        orch.execute()
    finally:
        configure("WARNING")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    started = [r for r in lines if r.get("node") == "port_scan" and "started" in r["message"]][0]
    assert set(started) >= {"level", "timestamp", "component", "node", "message"}
    assert started["level"] == "info" and started["component"] == "orchestrator"
    assert started["message"] == "Node execution started"
    done = [r for r in lines if r.get("node") == "port_scan" and "completed" in r["message"]][0]
    assert done["duration_ms"] > 0
    failed = [r for r in lines if r.get("node") == "bad" and r["level"] == "error"][0]
    assert "disk on fire" in failed["message"]


def test_text_logs_and_level_filter():
    stream = io.StringIO()
    configure("WARNING", "text", stream=stream)
    try:
        orch = make_orch(Steps, Bad, plugins=(_logging_plugin(),))
        orch.load_dag(DagBuilder().engine(fail_fast=False).add_node("ok", "steps")
                      .add_node("bad", "bad").build())
        orch.execute()
    finally:
        configure("WARNING")
    text = stream.getvalue()
    assert "Node execution started" not in text  # INFO filtered out
    assert "[bad] Node execution failed: disk on fire" in text


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_logs_on_a_tty_keep_their_colours_and_escape_what_they_quote():
    from loguru import logger

    stream = _Tty()
    configure("DEBUG", "text", stream=stream)
    try:
        logger.bind(node="n\x1b]0;title\x07", component="c\u202e").warning("got <red>{}</red>", "\x9b2J")
        try:
            raise ValueError("boom \x1b[2J")
        except ValueError as e:
            logger.opt(exception=e).debug("internal error")
    finally:
        configure("WARNING")
    text = stream.getvalue()
    assert "\x1b[33m\x1b[1mWARNING" in text  # loguru's own colours, on a terminal
    assert "c\\u202e" in text and "[n\\x1b]0;title\\x07]" in text
    assert "got <red>\\x9b2J</red>" in text  # markup in a message is text, not colour
    assert "ValueError: boom \\x1b[2J" in text and "Traceback (most recent call last)" in text
    for raw in ("\x1b]", "\x1b[2J", "\x9b", "\u202e"):
        assert raw not in text


def test_progress_plain_lines_when_not_a_tty():
    from pentora_plugins.engine.progress import Progress

    stream = io.StringIO()
    progress = Progress(stream)
    orch = make_orch(Steps, plugins=(progress,))
    orch.load_dag(DagBuilder().add_node("a", "steps").add_node("b", "steps", ["a"]).build())
    orch.execute(options={"progress": True})
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("progress: 0% 0/2 items, -/s, elapsed 0:00, eta -:--, nodes 0/2")
    # a's 3 steps done, b not started (one item until it counts its own): 3 of 4
    assert any(line.startswith("progress: 75% 3/4 items,") and "nodes 1/2" in line for line in lines)
    assert re.fullmatch(r"progress: 100% 6/6 items, [\d,]+/s, elapsed 0:00, eta 0:00, nodes 2/2",
                        lines[-1]), lines[-1]
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


class Slow(Module):
    module_type = "slow"

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        for i in range(1, 11):
            gevent.sleep(0.1)
            ctx.progress(i, 10)


def test_progress_plain_lines_come_periodically_during_a_long_node():
    from pentora_plugins.engine.progress import Progress

    stream = io.StringIO()
    orch = make_orch(Slow, plugins=(Progress(stream, plain_every=0.25),))
    orch.load_dag(DagBuilder().add_node("a", "slow").build())
    orch.execute(options={"progress": True})
    during = [line for line in stream.getvalue().splitlines() if "running: a " in line]
    assert len(during) >= 2, stream.getvalue()
    m = re.match(r"progress: (\d+)% (\d+)/10 items, ([\d,]+)/s, elapsed 0:0\d, eta 0:0\d, nodes 0/1, "
                 r"running: a \2/10$", during[-1])
    assert m and 0 < int(m.group(1)) < 100 and int(m.group(3)) > 0, during


def test_progress_redraws_in_place_on_a_tty():
    from pentora_plugins.engine.progress import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    progress = Progress(stream)
    orch = make_orch(Slow, plugins=(progress,))
    orch.load_dag(DagBuilder().add_node("a", "slow").build())
    orch.execute(options={"progress": True})
    out = stream.getvalue()
    assert out.count("\r\x1b[2K") >= 2 and out.endswith("\n\x1b[?25h")  # cursor shown again
    assert "100%" in out and "10/10" in out and "running: a " in out


def test_json_logs_print_whole_above_a_live_bar():
    from pentora_plugins.engine.progress import Progress

    stream = _Tty()
    configure("INFO", "json", stream=stream)
    try:
        orch = make_orch(Slow, plugins=(_logging_plugin(), Progress(stream)))
        orch.load_dag(DagBuilder().add_node("a", "slow").add_node("b", "slow", ["a"]).build())
        orch.execute(options={"progress": True})
    finally:
        configure("WARNING")
    out = stream.getvalue()
    assert out.count("\r\x1b[2K") >= 2  # the bar was redrawn
    # Each record on a line of its own once the bar's cursor movements are taken out:
    # not written after the bar, on its line.
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line) for line in re.split(r"[\r\n]", out)]
    records = [json.loads(line) for line in lines if '"level"' in line]
    assert any(r.get("node") == "b" and r["message"] == "Node execution started" for r in records)


class HalfThenFail(Module):
    module_type = "half_then_fail"

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        ctx.progress(0, 4)
        gevent.sleep(0.001)
        ctx.progress(2, 4)
        raise OSError("disk on fire")


def test_progress_of_a_failed_node_stays_as_far_as_it_came():
    from pentora_plugins.engine.progress import Progress

    stream = io.StringIO()
    orch = make_orch(Steps, HalfThenFail, plugins=(Progress(stream),))
    orch.load_dag(DagBuilder().engine(fail_fast=False).add_node("ok", "steps")
                  .add_node("half", "half_then_fail").build())
    orch.execute(options={"progress": True})
    last = stream.getvalue().splitlines()[-1]
    # 3 of ok's 3, 2 of half's 4: the scan ended, 5 of 7 items done
    assert last.startswith("progress: 71% 5/7 items,") and "eta 0:00, nodes 2/2" in last, last


def test_progress_is_silent_unless_asked():
    from pentora_plugins.engine.progress import Progress

    stream = io.StringIO()
    orch = make_orch(Steps, plugins=(Progress(stream),))
    orch.load_dag(DagBuilder().add_node("a", "steps").build())
    orch.execute()
    assert stream.getvalue() == ""


class Fan(Module):
    """A for_each module whose branch for item 2 fails."""

    module_type = "fan"
    config_schema = {"items": list}
    produces = ("items",)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any] | None:
        if ctx.node.for_each is None:
            return {"items": config["items"]}
        if ctx.item == 2:
            raise OSError("branch on fire")
        return None


def test_engine_parts_log_under_their_own_component():
    stream = io.StringIO()
    configure("INFO", "json", stream=stream)
    try:
        orch = make_orch(Fan, Bad)
        orch.load_dag(DagBuilder().add_node("items", "fan", config={"items": [1, 2]})
                      .add_node("fan", "fan", ["items"], for_each="items", config={"items": []})
                      .add_node("bad", "bad", ["fan"]).build())
        orch.execute()
    finally:
        configure("WARNING")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_component = {r["component"]: r["message"] for r in lines if r["level"] == "warning"}
    assert "branch 1 (2) failed: branch on fire" in by_component["fanout"]
    assert by_component["scheduler"].startswith("stopping scan: fail-fast: node 'bad' failed")
