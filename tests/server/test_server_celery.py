"""``pentora server --executor celery``: scans submitted over HTTP run as shards on real
``pentora worker`` processes through a private redis-server (Debian's) on 127.0.0.1, the
way ``pentora scan --executor celery`` runs them; the events, the store and cancel hold."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import stop
from .test_server_api import Api

pytest.importorskip("celery", reason="Celery is not installed (pip install 'pentora[celery]')")

QUEUE = "pentora.shards"  # the workers' queue (pentora_plugins.distributed.app.QUEUE)
READY_TIMEOUT = 60.0      # hang guards, not timing assertions


class Worker:
    def __init__(self, broker: str, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pentora", "worker", "--broker", broker, "--concurrency", "1",
                 "--hostname", f"{log.stem}@%h", "--log-level", "INFO"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.wait_for("ready.")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert self.proc.poll() is None, f"the worker exited:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {needle!r} from the worker:\n{self.text()}"
            time.sleep(0.05)

    def stop(self) -> None:
        stop(self.proc, grace=30)  # a warm shutdown waits for the worker's shard


@pytest.fixture
def workers(broker: str, tmp_path: Path) -> Iterator[Callable[[str], Worker]]:
    started: list[Worker] = []

    def start(name: str) -> Worker:
        started.append(Worker(broker, tmp_path / f"{name}.log"))
        return started[-1]

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def celery_api(tmp_path: Path, broker: str) -> Iterator[Api]:
    server = Api(tmp_path, "--executor", "celery", "--broker", broker, "--shards", "3")
    yield server
    server.stop()


def sse(text: bytes) -> list[dict[str, Any]]:
    out = []
    for block in text.decode().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        out.append({"id": int(fields["id"]), "event": fields["event"],
                    "data": json.loads(fields["data"])})
    return out


DAG = {"name": "celery-api", "vars": {"targets": "127.0.0.1", "ports": "1"},
       "nodes": [{"instance_id": "targets", "module_type": "target_parser",
                  "config": {"targets": "${targets}"}},
                 {"instance_id": "p", "module_type": "connect_scanner", "depends_on": ["targets"],
                  "config": {"ports": "${ports}", "input": "targets"}}]}


def test_a_scan_submitted_over_http_runs_on_the_workers_with_its_events_and_results(
        celery_api, workers, tcp_server, closed_tcp_port):
    first, second = workers("w1"), workers("w2")
    open_ports = sorted(tcp_server().port for _ in range(4))
    ports = ",".join(map(str, [*open_ports, closed_tcp_port]))
    scan_id = celery_api.scan({"targets": "127.0.0.1,127.0.0.2", "dag": DAG,
                               "vars": {"ports": ports}})
    shown = celery_api.wait(scan_id)
    assert shown["scan"]["status"] == "completed", celery_api.output()
    # The shards ran on the workers, not in the server.
    ran = first.text().count("running shard") + second.text().count("running shard")
    assert ran >= 3, first.text() + second.text()
    _, lines, _ = celery_api.call("GET", f"/scans/{scan_id}/results?format=jsonl",
                                  token=celery_api.tokens["read"])
    found = sorted((r["host"], r["port"]) for r in map(json.loads, lines.decode().splitlines())
                   if r["kind"] == "port" and r["state"] == "open")
    # 127.0.0.2 reaches the listeners bound to 127.0.0.1 only on some kernels: count 127.0.0.1's
    assert [p for h, p in found if h == "127.0.0.1"] == open_ports
    _, text, _ = celery_api.call("GET", f"/scans/{scan_id}/events", token=celery_api.tokens["read"],
                                 headers={"Last-Event-ID": "0"})
    events = sse(text)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    started = [e["data"]["node"] for e in events if e["event"] == "node_start"]
    assert started[0] == "shards" and {"targets", "p"} <= set(started), started
    assert {e["data"]["node"] for e in events if e["event"] == "node_complete"} >= {
        "shards", "targets", "p"}
    streamed = sorted(e["data"]["record"]["port"] for e in events if e["event"] == "record"
                      and e["data"]["kind"] == "port" and e["data"]["record"]["host"] == "127.0.0.1"
                      and e["data"]["record"]["state"] == "open")
    assert streamed == open_ports
    progress = [e["data"] for e in events if e["event"] == "node_progress"
                and e["data"]["node"] == "shards"]
    assert progress, "no progress from the dispatcher as the shards completed"
    assert events[-1]["event"] == "scan_end" and events[-1]["data"]["status"] == "completed"


SLOW = {"name": "celery-slow", "vars": {"targets": "127.0.0.1"},
        "nodes": [{"instance_id": "targets", "module_type": "target_parser",
                   "config": {"targets": "${targets}"}},
                  {"instance_id": "wait", "module_type": "sleep", "depends_on": ["targets"],
                   "config": {"duration": "120s"}}]}


def test_cancel_revokes_the_shards_and_the_workers_stop_them(celery_api, workers, broker):
    import redis as redis_client

    worker = workers("w1")  # one shard at a time: the other two wait in the queue
    scan_id = celery_api.scan({"dag": SLOW, "targets": "127.0.0.1"})
    worker.wait_for("running shard")
    status, answer, _ = celery_api.call("POST", f"/scans/{scan_id}/cancel",
                                        token=celery_api.tokens["scan"])
    assert status == 202, answer
    assert celery_api.wait(scan_id, until=("cancelled", "failed", "completed"))["scan"][
        "status"] == "cancelled"
    worker.wait_for("stopped shard")  # the running one, told by the scan's done marker
    assert redis_client.Redis.from_url(broker).llen(QUEUE) == 0  # the waiting ones, removed
    assert "running shard" not in worker.text().split("stopped shard", 1)[1]


def test_no_worker_fails_the_scan_with_the_reason_and_bad_options_exit_2(celery_api, tmp_path):
    scan_id = celery_api.scan({"targets": "127.0.0.1", "dag": DAG})
    shown = celery_api.wait(scan_id)
    assert shown["scan"]["status"] == "failed"
    assert "no pentora worker answers" in shown["scan"]["error"], shown
    for argv, needle in ((["--executor", "celery"], "--broker URL"),
                         (["--broker", "redis://127.0.0.1:1/0"], "--executor celery"),
                         (["--executor", "celery", "--broker", "nowhere"], "redis://"),
                         (["--executor", "celery", "--broker", "redis://127.0.0.1:1/0",
                           "-p", "no:distributed"], "distributed plugin")):
        proc = subprocess.run([sys.executable, "-m", "pentora", "server", "--state",
                               str(tmp_path / "s2"), *argv], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2 and needle in proc.stderr, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
