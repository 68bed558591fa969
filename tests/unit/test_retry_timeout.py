"""Retries (policies as plugins, retry_on classes), node/global timeouts, cancellation."""

from __future__ import annotations

import threading
import time
from typing import Any

import gevent
import pytest

from pentora import DagBuilder, Module, NodeContext, RetryPolicy, TransientError
from tests.conftest import make_orch

# Test-only policies: the core needs no built-in plugin.
POLICIES = (
    RetryPolicy("exponential", "test", lambda n, spec, rng: min(spec.initial * 2 ** (n - 1),
                                                              spec.max or 1e9)),
    RetryPolicy("fixed", "test", lambda n, spec, rng: spec.initial),
)


class Flaky(Module):
    """Fails ``failures`` times with the configured error, then succeeds."""

    module_type = "flaky"
    config_schema = {"failures": int, "error": str}
    produces = ("ok",)
    calls: dict[str, int] = {}

    class MineError(Exception):
        pass

    transient_errors = (MineError,)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> dict[str, Any]:
        n = Flaky.calls[ctx.node_id] = Flaky.calls.get(ctx.node_id, 0) + 1
        if n <= config["failures"]:
            raise {
                "timeout": TimeoutError("timed out"),
                "refused": ConnectionRefusedError(111, "Connection refused"),
                "value": ValueError("bad value"),
                "transient": TransientError("try later"),
                "mine": Flaky.MineError("mine"),
            }[config["error"]]
        return {"ok": n}


def run_flaky(error: str, failures: int, retry: dict[str, Any], node_retry: Any = None):
    Flaky.calls.clear()
    sleeps: list[float] = []
    fields = {"retry": node_retry} if node_retry is not None else {}
    dag = (DagBuilder().engine(retry=retry)
           .add_node("n", "flaky", config={"failures": failures, "error": error}, **fields).build())
    orch = make_orch(Flaky, policies=POLICIES, sleep=sleeps.append)
    orch.load_dag(dag)
    return orch.execute().nodes["n"], sleeps


def test_exponential_backoff_waits_1_2_4():
    rec, sleeps = run_flaky("timeout", 3, {"enabled": True, "max_attempts": 4, "backoff": "exponential"})
    assert rec.status == "completed"
    assert sleeps == [1.0, 2.0, 4.0]
    assert rec.retry_attempts == 3 and rec.attempts == 4


def test_retries_exhausted_records_attempts():
    rec, sleeps = run_flaky("refused", 5, {"enabled": True, "max_attempts": 3, "backoff": "fixed",
                                           "initial": "250ms"})
    assert rec.status == "failed" and rec.attempts == 3 and rec.retry_attempts == 2
    assert sleeps == [0.25, 0.25]
    assert "Connection refused" in rec.error


def test_only_classes_in_retry_on_are_retried():
    rec, sleeps = run_flaky("value", 1, {"enabled": True, "retry_on": ["timeout", "network_error"]})
    assert rec.status == "failed" and rec.attempts == 1 and sleeps == []
    rec, _ = run_flaky("value", 1, {"enabled": True, "retry_on": ["any"], "backoff": "fixed"})
    assert rec.status == "completed"
    rec, _ = run_flaky("transient", 1, {"enabled": True, "retry_on": ["transient"], "backoff": "fixed"})
    assert rec.status == "completed"
    rec, _ = run_flaky("mine", 1, {"enabled": True, "retry_on": ["transient"], "backoff": "fixed"})
    assert rec.status == "completed"
    rec, _ = run_flaky("timeout", 1, {"enabled": True, "retry_on": ["network_error"]})
    assert rec.status == "failed"


def test_node_override_of_engine_retry():
    rec, sleeps = run_flaky("timeout", 1, {"enabled": False},
                            node_retry={"max_attempts": 2, "backoff": "fixed", "initial": "10ms"})
    assert rec.status == "completed" and sleeps == [0.01]
    rec, sleeps = run_flaky("timeout", 1, {"enabled": True, "backoff": "fixed"}, node_retry=False)
    assert rec.status == "failed" and sleeps == []


def test_backoff_cap_and_real_wait():
    rec, sleeps = run_flaky("timeout", 3, {"enabled": True, "max_attempts": 4, "initial": "1s",
                                           "max": "1.5s"})
    assert sleeps == [1.0, 1.5, 1.5]


def test_real_sleep_waits_the_backoff():
    Flaky.calls.clear()
    dag = (DagBuilder().engine(retry={"enabled": True, "backoff": "fixed", "initial": "100ms"})
           .add_node("n", "flaky", config={"failures": 2, "error": "timeout"}).build())
    orch = make_orch(Flaky, policies=POLICIES)
    orch.load_dag(dag)
    t0 = time.monotonic()
    rec = orch.execute().nodes["n"]
    assert rec.status == "completed" and time.monotonic() - t0 >= 0.2


class Sleeper(Module):
    module_type = "sleeper"
    alive: list[gevent.Greenlet] = []

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        Sleeper.alive.append(ctx.spawn(gevent.sleep, 60))  # a worker greenlet of the module
        Sleeper.alive.append(gevent.getcurrent())
        gevent.sleep(60)


class Report(Module):
    module_type = "report"
    always_run = True
    ran: list[str] = []

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        Report.ran.append(ctx.node_id)


def test_node_timeout_kills_the_node_and_its_greenlets():
    Sleeper.alive.clear()
    dag = DagBuilder().engine(node_timeout="100ms").add_node("slow", "sleeper").build()
    orch = make_orch(Sleeper)
    orch.load_dag(dag)
    t0 = time.monotonic()
    result = orch.execute()
    assert time.monotonic() - t0 < 2
    rec = result.nodes["slow"]
    assert rec.status == "failed" and rec.error == "timeout after 100ms"
    assert rec.error_type == "NodeTimeout"
    worker, node_greenlet = Sleeper.alive
    assert worker.dead
    gevent.sleep(0)
    assert node_greenlet.dead


def test_node_timeout_is_retried_as_timeout():
    dag = (DagBuilder().engine(retry={"enabled": True, "backoff": "fixed", "initial": 0})
           .add_node("slow", "sleeper", timeout="50ms", retry={"max_attempts": 2, "backoff": "fixed",
                                                               "initial": 0}).build())
    orch = make_orch(Sleeper, policies=POLICIES)
    orch.load_dag(dag)
    rec = orch.execute().nodes["slow"]
    assert rec.status == "failed" and rec.attempts == 2


def test_global_timeout_fails_running_nodes_and_runs_reporters():
    Report.ran.clear()
    dag = (DagBuilder().engine(global_timeout="200ms")
           .add_node("slow", "sleeper").add_node("after", "sleeper", ["slow"])
           .add_node("report", "report", ["after"]).build())
    orch = make_orch(Sleeper, Report)
    orch.load_dag(dag)
    t0 = time.monotonic()
    result = orch.execute()
    assert time.monotonic() - t0 < 1.5
    assert result.status == "timeout" and not result.ok
    assert result.nodes["slow"].status == "failed"
    assert result.nodes["slow"].error == "global timeout after 200ms"
    assert result.nodes["after"].status == "cancelled"
    assert result.nodes["report"].status == "completed" and Report.ran == ["report"]


def test_cancel_from_another_greenlet():
    Report.ran.clear()
    dag = DagBuilder().add_node("slow", "sleeper").add_node("report", "report", ["slow"]).build()
    orch = make_orch(Sleeper, Report)
    orch.load_dag(dag)
    gevent.spawn_later(0.1, orch.cancel)
    t0 = time.monotonic()
    result = orch.execute()
    assert time.monotonic() - t0 < 1.5
    assert result.status == "cancelled"
    assert result.nodes["slow"].status == "cancelled"
    assert Report.ran == ["report"]


def test_cancel_from_another_thread():
    dag = DagBuilder().add_node("slow", "sleeper").add_node("report", "report", ["slow"]).build()
    orch = make_orch(Sleeper, Report)
    orch.load_dag(dag)
    timer = threading.Timer(0.1, orch.cancel, kwargs={"reason": "stop from thread"})
    timer.start()
    t0 = time.monotonic()
    result = orch.execute()
    timer.join()
    assert time.monotonic() - t0 < 1.5
    assert result.status == "cancelled"
    assert result.nodes["slow"].reason == "stop from thread"


@pytest.mark.parametrize("jitter", [0.0, 0.5])
def test_builtin_retry_policies(jitter):
    import random

    from pentora_plugins.engine.retry import exponential, fixed, none

    from pentora import RetrySpec

    rng = random.Random(1)
    spec = RetrySpec(enabled=True, initial=1.0, max=3.0, jitter=jitter)
    delays = [exponential(n, spec, rng) for n in (1, 2, 3, 4)]
    if jitter:
        for got, base in zip(delays, [1, 2, 3, 3]):
            assert base * 0.5 <= got <= base * 1.5
    else:
        assert delays == [1.0, 2.0, 3.0, 3.0]
    assert none(3, spec, rng) == 0.0
    assert fixed(5, RetrySpec(initial=2.0), rng) == 2.0
