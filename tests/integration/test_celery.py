"""Distributed scans for real: a private redis-server (Debian's) on 127.0.0.1, ``pentora
worker`` processes, ``pentora scan --executor celery``, one worker killed with SIGKILL
while it runs a shard, and the merged result compared with the same scan on one machine.

The scan is slowed down by the servers, not by the scanner: each listener on 127.0.0.1
waits a second before it speaks (an SSH banner), so banner grabbing takes a second per
shard and the kill lands while the worker is inside one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import free_port

pytest.importorskip("celery", reason="Celery is not installed (pip install 'pentora[celery]')")

BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
DELAY = 1.0          # seconds each listener waits before its banner
VISIBILITY = "3s"    # a killed worker's shard is back in the queue this soon (plus Celery's restore cycle)
READY_TIMEOUT = 60.0
SCAN_TIMEOUT = 240.0
BASE = [sys.executable, "-m", "pentora"]
SCAN = ["scan", "-t", "127.0.0.1", "--profile", "service-scan", "--set", "icmp=false", "-q"]


class Worker:
    def __init__(self, broker: str, name: str, log: Path, *extra: str,
                 visibility: str | None = VISIBILITY) -> None:
        self.name, self.log = name, log
        timeout = ["--visibility-timeout", visibility] if visibility else []
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*BASE, "worker", "--broker", broker, "--concurrency", "1", *timeout,
                 "--hostname", f"{name}@%h", "--log-level", "INFO", *extra],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_for("ready.", READY_TIMEOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited ({self.proc.returncode}):\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name}: no {needle!r} within {timeout:.0f}s:\n"
                                     + self.text())
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a warm shutdown waits for the shard it runs
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def workers(broker: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(name: str, *extra: str, visibility: str | None = VISIBILITY) -> Worker:
        started.append(Worker(broker, name, tmp_path / f"{name}.log", *extra, visibility=visibility))
        return started[-1]

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.kill(signal.SIGTERM)


@pytest.fixture
def slow_ports(tcp_server) -> str:
    def speak_late(conn: Any) -> None:
        time.sleep(DELAY)
        conn.sendall(BANNER)
        while conn.recv(4096):  # until the grabber hangs up
            pass
    return ",".join(str(tcp_server(handler=speak_late).port) for _ in range(12))


def findings(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What a scan found, by kind, without what differs from run to run (timings, probe order)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    fields = {"host": ("address", "alive"), "port": ("host", "port", "protocol", "state"),
              "service": ("host", "port", "service", "product", "version", "cpe"),
              "asset": ("host", "open_ports", "tags"),
              "vulnerability": ("host", "port", "id", "severity")}
    out: dict[str, list[tuple[Any, ...]]] = {}
    for kind, names in fields.items():
        out[kind] = sorted(tuple(json.dumps(r.get(n)) for n in names) for r in rows if r["kind"] == kind)
    return out


def run_scan(*argv: str, timeout: float = SCAN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BASE, *argv], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_killed_worker_loses_nothing_and_duplicates_nothing(broker, workers, slow_ports, tmp_path):
    local_out, dist_out = tmp_path / "local.jsonl", tmp_path / "dist.jsonl"
    done = run_scan(*SCAN, "-p", slow_ports, "-o", str(local_out))
    assert done.returncode == 0, done.stderr
    alone = findings(local_out)
    assert len(alone["port"]) == 12 and len(alone["service"]) == 12
    assert {row[2] for row in alone["service"]} == {'"ssh"'}

    victim, survivor = workers("victim"), workers("survivor")
    scan = subprocess.Popen([*BASE, *SCAN, "-p", slow_ports, "-o", str(dist_out), "--executor", "celery",
                             "--broker", broker, "--shards", "6", "--visibility-timeout", VISIBILITY,
                             "--progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim.wait_for("Task pentora.run_shard[", 60)  # it has taken a shard…
        time.sleep(DELAY / 2)                             # …and is inside it
        victim.kill()
        out, err = scan.communicate(timeout=SCAN_TIMEOUT)
    finally:
        if scan.poll() is None:
            scan.kill()
    assert scan.returncode == 0, err
    assert "succeeded" not in victim.text(), "the kill came too late to test a lost shard"
    assert survivor.text().count("succeeded in") >= 6, survivor.text()  # the lost shard ran again
    merged = findings(dist_out)
    assert merged == alone
    for kind, rows in merged.items():
        assert len(rows) == len(set(rows)), f"{kind} found twice"
    assert "shard 6/6" in err or "(6/6 done)" in err  # progress counted the shards


def leftovers(broker: str) -> dict[str, int]:
    """What the Redis transport still holds: messages taken but never acknowledged, and
    messages queued (one list per priority step, all named after the queue)."""
    import redis as redis_client

    client = redis_client.Redis.from_url(broker)
    queued = sum(int(client.llen(key)) for key in client.scan_iter(match="pentora.shards*")
                 if client.type(key) == b"list")
    return {"unacked": int(client.hlen("unacked")), "unacked_index": int(client.zcard("unacked_index")),
            "queued": queued}


def test_a_killed_worker_is_noticed_and_its_shard_sent_again_with_default_settings(
        broker, workers, slow_ports, tmp_path):
    """No tuning: the workers and the scan keep the one-hour visibility timeout; the scan
    notices the dead worker by itself, and leaves nothing behind that could run later."""
    local_out, dist_out = tmp_path / "local.jsonl", tmp_path / "dist.jsonl"
    done = run_scan(*SCAN, "-p", slow_ports, "-o", str(local_out))
    assert done.returncode == 0, done.stderr
    alone = findings(local_out)

    victim, survivor = workers("victim", visibility=None), workers("survivor", visibility=None)
    scan = subprocess.Popen([*BASE, *SCAN, "-p", slow_ports, "-o", str(dist_out), "--executor", "celery",
                             "--broker", broker, "--shards", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim.wait_for("Task pentora.run_shard[", 60)
        time.sleep(DELAY / 2)
        victim.kill()
        out, err = scan.communicate(timeout=120)  # a hang guard: the visibility timeout is 1 h
    finally:
        if scan.poll() is None:
            scan.kill()
    assert scan.returncode == 0, err
    assert "succeeded" not in victim.text(), "the kill came too late to test a lost shard"
    warning = re.search(r"worker (victim@\S+) is gone while holding shard (\d)/6: .*sending it again", err)
    assert warning, err
    assert findings(dist_out) == alone

    # Nothing of the scan is left in Redis: the dead worker's message is neither unacked
    # (it would come back when the visibility timeout passes) nor queued.
    assert leftovers(broker) == {"unacked": 0, "unacked_index": 0, "queued": 0}
    survivor.kill(signal.SIGTERM)  # the fresh worker alone takes what is left
    # A worker that gives back unacknowledged messages after a second finds none to run.
    fresh = workers("fresh", visibility="1s")
    time.sleep(5)  # five of its restore sweeps (one a second)
    assert "pentora.run_shard[" not in fresh.text(), fresh.text()

    # A shard of the finished scan sent anyway (a message restored in a race, a copy) is
    # dropped by the worker, by the scan's done marker in the backend.
    import redis as redis_client
    from pentora_plugins.distributed.app import TASK, make_app

    markers = [k.decode() for k in redis_client.Redis.from_url(broker).scan_iter(match="pentora-done-*")]
    runs = [k.removeprefix("pentora-done-") for k in markers if k.count("-") == 2]
    assert len(runs) == 1, markers
    late = make_app(broker).send_task(TASK, args=[{"dag": {"nodes": []}, "vars": {}, "shard": [1, 6, 0],
                                                   "disabled": [], "run": runs[0], "beat": 5}])
    fresh.wait_for(f"dropping shard 1/6 ({late.id}): its scan is over", 30)
    fresh.wait_for(f"Task pentora.run_shard[{late.id}] ignored", 30)
    assert late.state == "STARTED"  # it went no further: no result stored
    assert leftovers(broker) == {"unacked": 0, "unacked_index": 0, "queued": 0}  # and it was acknowledged


def test_a_cancelled_scan_leaves_no_shard_to_run_later(broker, workers, slow_ports, tmp_path):
    only = workers("only", visibility=None)
    scan = subprocess.Popen([*BASE, *SCAN, "-p", slow_ports, "--executor", "celery", "--broker", broker,
                             "--shards", "6"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        only.wait_for("Task pentora.run_shard[", 60)  # one shard runs, five wait in the queue
        # the scan may still be sending the last ones when the first starts: wait for them
        deadline = time.monotonic() + 30  # a hang guard
        while leftovers(broker)["queued"] < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leftovers(broker)["queued"] == 5
        scan.send_signal(signal.SIGTERM)                # cancels the scan
        out, err = scan.communicate(timeout=60)
    finally:
        if scan.poll() is None:
            scan.kill()
    assert scan.returncode != 0 and "Traceback" not in err, err
    assert leftovers(broker) == {"unacked": 0, "unacked_index": 0, "queued": 0}
    only.kill(signal.SIGTERM)
    fresh = workers("fresh", visibility="1s")
    time.sleep(5)  # five of its restore sweeps (one a second)
    assert "pentora.run_shard[" not in fresh.text(), fresh.text()
    assert only.text().count("Task pentora.run_shard[") <= 2  # received, then succeeded or ignored


def test_a_running_shard_of_a_cancelled_scan_stops_on_its_worker(broker, workers, tmp_path):
    """The worker reads the scan's done marker with each heartbeat (every 5 s): a shard
    of a scan that is over stops there, and stores no result."""
    dag = tmp_path / "long.yaml"
    dag.write_text("name: long\nvars: {targets: ''}\nnodes:\n"
                   "  - {instance_id: wait, module_type: sleep, config: {duration: 10m}}\n")
    only = workers("only", visibility=None)
    scan = subprocess.Popen([*BASE, "scan", "--dag", str(dag), "-t", "127.0.0.1", "-q", "--executor",
                             "celery", "--broker", broker, "--shards", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Running, not only received: a scan stopped before its shard starts has it dropped
        # (the other test), not stopped.
        while "running shard 1/1 (" not in only.text():
            assert scan.poll() is None, scan.communicate()[1]
            time.sleep(0.05)
        scan.send_signal(signal.SIGTERM)
        scan.communicate(timeout=60)
    finally:
        if scan.poll() is None:
            scan.kill()
    only.wait_for("stopped shard 1/1 (", 30)  # a hang guard: the shard would sleep 10 minutes
    assert "its scan is over" in only.text()
    only.wait_for("] ignored", 30)
    assert "succeeded in" not in only.text()


def test_a_worker_without_a_plugin_rejects_the_shard_naming_it(broker, workers, tmp_path):
    workers("lacking", "-p", "no:services")
    out = tmp_path / "out.jsonl"
    done = run_scan(*SCAN, "-p", str(free_port()), "-o", str(out), "--executor", "celery",
                    "--broker", broker, "--shards", "2")
    assert done.returncode == 3, done.stderr
    assert "'banner_grabber' (node 'banner_grab')" in done.stderr
    assert "not installed on this worker" in done.stderr
    assert "Traceback" not in done.stderr
    node = [json.loads(x) for x in out.read_text().splitlines() if '"node": "shards"' in x]
    assert node and node[0]["status"] == "failed" and "rejects shard" in node[0]["error"]


def test_a_shard_over_its_timeout_fails_clearly(broker, workers, slow_ports):
    workers("slowpoke")
    done = run_scan(*SCAN, "-p", slow_ports, "--executor", "celery", "--broker", broker,
                    "--shards", "2", "--shard-timeout", "300ms")
    assert done.returncode == 3, done.stderr
    assert "global timeout after 300ms" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_unreachable_broker_is_a_clear_error_not_a_hang(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    done = run_scan(*SCAN, "-p", "1", "--executor", "celery", "--broker", url, timeout=60)
    assert done.returncode == 1
    assert f"cannot reach the Celery broker at {url}" in done.stderr and "Traceback" not in done.stderr
    done = run_scan("worker", "--broker", url, timeout=60)
    assert done.returncode == 1
    assert f"cannot reach the Celery broker at {url}" in done.stderr


def test_no_worker_listening_is_a_clear_error(broker):
    done = run_scan(*SCAN, "-p", "1", "--executor", "celery", "--broker", broker, timeout=60)
    assert done.returncode == 1
    assert "no pentora worker answers on the broker" in done.stderr


def test_losing_every_worker_ends_the_scan_with_a_clear_error(broker, workers, slow_ports):
    only = workers("only")
    scan = subprocess.Popen([*BASE, *SCAN, "-p", slow_ports, "--executor", "celery", "--broker", broker,
                             "--shards", "2", "--visibility-timeout", VISIBILITY],  # pings 5s apart
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        only.wait_for("Task pentora.run_shard[", 60)
        only.kill()
        out, err = scan.communicate(timeout=SCAN_TIMEOUT)
    finally:
        if scan.poll() is None:
            scan.kill()
    assert scan.returncode == 3, err
    assert "have no worker: none answered 3 pings" in err and "Traceback" not in err
