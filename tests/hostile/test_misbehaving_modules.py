"""Modules and hooks that misbehave inside the engine's process: they exit, raise
BaseExceptions, return the wrong thing, block or spin in the event loop, or swallow
every interruption. Each makes its own node (or its own hook call) fail, with the
reason on the record; the rest of the scan runs; the exit code says something failed;
the JSONL keeps everything, its ``scan`` line included; SIGINT, SIGTERM and the
timeouts act on a module that never yields.

The modules are in ``tests/hostile/misbehaving.py``, loaded with ``--hooks`` into a
real ``pentora scan`` process. Timings are hang guards only: a module that was not
interrupted would complete (30 s sleep) or run until the guard kills it, and the
statuses asserted say which happened.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

MODULES = str(ROOT / "tests" / "hostile" / "misbehaving.py")
HOOKS = str(ROOT / "tests" / "hostile" / "misbehaving_hooks.py")
GUARD = 60  # seconds: only a hang would take this long


def write_dag(tmp_path: Path, nodes: list[dict[str, Any]], **engine: Any) -> Path:
    dag = {"name": "misbehaving", "vars": {"targets": "127.0.0.1"},
           "engine": {"fail_fast": False, **engine}, "nodes": nodes}
    path = tmp_path / "dag.yaml"
    path.write_text(yaml.safe_dump(dag))
    return path


def scan_cmd(tmp_path: Path, dag: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pentora", "scan", "--dag", str(dag), "-t", "127.0.0.1",
            "--hooks", MODULES, "-o", str(tmp_path / "out.jsonl"),
            "--store", str(tmp_path / "store.db"), *extra]


def run_scan(tmp_path: Path, nodes: list[dict[str, Any]], *extra: str,
             **engine: Any) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run(scan_cmd(tmp_path, write_dag(tmp_path, nodes, **engine), *extra),
                          cwd=ROOT, capture_output=True, text=True, timeout=GUARD)
    return proc, read_jsonl(tmp_path / "out.jsonl")


def read_jsonl(path: Path) -> dict[str, Any]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {"nodes": {r["node"]: r for r in lines if r["kind"] == "node"},
            "scan": [r for r in lines if r["kind"] == "scan"]}


def node(name: str, module_type: str, **kw: Any) -> dict[str, Any]:
    return {"instance_id": name, "module_type": module_type, **kw}


@pytest.mark.parametrize(("module_type", "error_type"), [
    ("exits", "SystemExit"), ("raises_base", "BaseException"), ("exits_in_pool", "SystemExit")])
def test_a_module_that_exits_or_raises_a_base_exception_fails_its_node_only(
        tmp_path: Path, module_type: str, error_type: str) -> None:
    proc, out = run_scan(tmp_path, [node("bad", module_type), node("other", "noop"),
                                    node("after", "noop", depends_on=["other"])])
    assert proc.returncode == 3, proc.stderr
    bad = out["nodes"]["bad"]
    assert bad["status"] == "failed" and bad["error_type"] == error_type
    assert f"raised {error_type}" in bad["error"]
    assert out["nodes"]["other"]["status"] == out["nodes"]["after"]["status"] == "completed"
    assert len(out["scan"]) == 1 and out["scan"][0]["status"] == "completed"
    assert not out["scan"][0]["ok"]
    assert "Traceback" not in proc.stderr and "gevent" not in proc.stderr


@pytest.mark.parametrize(("module_type", "returned"), [("returns_list", "list"),
                                                       ("returns_lock", "lock")])
def test_a_module_returning_anything_but_a_mapping_fails(tmp_path: Path, module_type: str,
                                                         returned: str) -> None:
    proc, out = run_scan(tmp_path, [node("bad", module_type), node("other", "noop")])
    assert proc.returncode == 3, proc.stderr
    bad = out["nodes"]["bad"]
    assert bad["status"] == "failed" and f"returned {returned}" in bad["error"].lower()
    assert "mapping" in bad["error"]
    assert out["nodes"]["other"]["status"] == "completed"


def test_hooks_that_exit_or_raise_base_exceptions_fail_that_call_only(tmp_path: Path) -> None:
    proc, out = run_scan(tmp_path, [node("first", "noop"), node("second", "noop", depends_on=["first"]),
                                    node("third", "noop", depends_on=["second"])],
                         "--hooks", HOOKS)
    assert proc.returncode == 3, proc.stderr
    assert {n: r["status"] for n, r in out["nodes"].items()} == {
        "first": "completed", "second": "completed", "third": "completed"}
    scan = out["scan"][0]
    assert not scan["ok"]
    assert sorted((f["hook"], f["error_type"]) for f in scan["hook_errors"]) == [
        ("pentora_node_complete", "SystemExit"), ("pentora_node_start", "BaseException")]
    # The summary says which plugin failed where.
    assert "failed in pentora_node_complete: raised SystemExit(4)" in proc.stdout
    assert "misbehaving_hooks.py failed in pentora_node_start" in proc.stdout


@pytest.mark.parametrize("module_type", ["spins", "spins_in_pool", "blocks", "blocks_and_swallows"])
def test_a_node_that_blocks_the_event_loop_is_named_and_timed_out_not_its_neighbour(
        tmp_path: Path, module_type: str) -> None:
    proc, out = run_scan(tmp_path, [node("blocker", module_type), node("napper", "naps")],
                         node_timeout="3s")
    assert proc.returncode == 3, proc.stderr
    blocker, napper = out["nodes"]["blocker"], out["nodes"]["napper"]
    assert blocker["status"] == "failed", blocker
    assert blocker["error"].startswith("timeout after 3s") and "blocked the event loop" in blocker["error"]
    assert "misbehaving.py:" in blocker["error"]  # where it blocks
    assert any("blocked the event loop" in w for w in blocker["warnings"])
    assert "node 'blocker' (" in proc.stderr and "blocked the event loop" in proc.stderr
    # The innocent neighbour, whose own sleep expired while the loop was blocked, completes.
    assert napper["status"] == "completed" and not napper["warnings"]
    assert "abandoned" not in proc.stderr  # interrupted at its timeout, not given up on


def wait_for(path: Path, text: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + GUARD
    while text not in path.read_text(errors="replace"):
        assert proc.poll() is None, path.read_text()
        assert time.monotonic() < deadline, f"{text!r} never appeared: {path.read_text()}"
        time.sleep(0.1)


STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_scan_outlives_its_test() -> Iterator[None]:
    """A failed assertion must not leave a spinning scan behind (it would eat a core)."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_scan(tmp_path: Path, nodes: list[dict[str, Any]],
               **engine: Any) -> tuple[subprocess.Popen[str], Path]:
    err = tmp_path / "stderr.txt"
    with err.open("w") as f:
        proc = subprocess.Popen(scan_cmd(tmp_path, write_dag(tmp_path, nodes, **engine)),
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=f, text=True)
    STARTED.append(proc)
    return proc, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("module_type", ["spins", "blocks", "spins_in_pool"])
def test_sigint_and_sigterm_stop_a_module_that_never_yields(tmp_path: Path, signum: int,
                                                            module_type: str) -> None:
    proc, err = start_scan(tmp_path, [node("done", "noop"),
                                      node("blocker", module_type, depends_on=["done"])])
    wait_for(err, "blocked the event loop", proc)
    proc.send_signal(signum)
    proc.wait(GUARD)
    assert proc.returncode == 3, err.read_text()
    out = read_jsonl(tmp_path / "out.jsonl")
    assert out["nodes"]["done"]["status"] == "completed"
    blocker = out["nodes"]["blocker"]
    assert blocker["status"] == "cancelled"
    assert blocker["reason"] == f"interrupted by {signal.Signals(signum).name}"
    assert out["scan"][0]["status"] == "cancelled"


@pytest.mark.parametrize("how", ["SIGTERM", "global_timeout"])
def test_a_module_that_cannot_be_interrupted_ends_the_process_keeping_what_was_found(
        tmp_path: Path, how: str) -> None:
    engine = {"global_timeout": "2s"} if how == "global_timeout" else {}
    proc, err = start_scan(tmp_path, [node("done", "naps"),
                                      node("stubborn", "stubborn", depends_on=["done"])], **engine)
    wait_for(err, "blocked the event loop", proc)
    if how == "SIGTERM":
        proc.send_signal(signal.SIGTERM)
    proc.wait(GUARD)
    stdout = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 3, err.read_text()
    assert "ending the process with what was found so far" in err.read_text()
    out = read_jsonl(tmp_path / "out.jsonl")
    assert out["nodes"]["done"]["status"] == "completed"
    stubborn = out["nodes"]["stubborn"]
    assert stubborn["status"] == "failed" and "could not be interrupted" in stubborn["error"]
    assert out["scan"][0]["status"] == "cancelled"
    assert "stubborn" in stdout  # the summary was printed
    # The store keeps the scan as interrupted, ready for --resume.
    listed = subprocess.run([sys.executable, "-m", "pentora", "scans", "list", "--store",
                             str(tmp_path / "store.db"), "--format", "json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=GUARD)
    assert listed.returncode == 0, listed.stderr
    scans = json.loads(listed.stdout)
    assert [s["status"] for s in scans] == ["interrupted"], scans


def test_a_reporter_after_a_stop_is_bound_by_its_own_timeout_only(tmp_path: Path) -> None:
    proc, err = start_scan(tmp_path, [node("blocker", "spins"),
                                      node("report", "slow_reporter", depends_on=["blocker"])])
    wait_for(err, "blocked the event loop", proc)
    proc.send_signal(signal.SIGINT)
    proc.wait(GUARD)
    assert proc.returncode == 3, err.read_text()
    out = read_jsonl(tmp_path / "out.jsonl")
    assert out["nodes"]["blocker"]["status"] == "cancelled"
    # The reporter blocked the loop for 2 s after the stop: named, but neither killed nor
    # abandoned (its reporter_timeout has not passed).
    report = out["nodes"]["report"]
    assert report["status"] == "completed", report
    assert "abandoned" not in err.read_text()


def test_a_second_sigint_ends_an_uninterruptible_module_at_once(tmp_path: Path) -> None:
    proc, err = start_scan(tmp_path, [node("done", "noop"),
                                      node("stubborn", "stubborn", depends_on=["done"])])
    wait_for(err, "blocked the event loop", proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(GUARD)
    assert proc.returncode == 130, err.read_text()
    out = read_jsonl(tmp_path / "out.jsonl")
    assert out["nodes"]["done"]["status"] == "completed"
    assert out["nodes"]["stubborn"]["status"] == "failed"
