"""What serving costs a scan: the same scan alone and under ``pentora server`` under load.

The scan: a TCP connect scan (``connect_scanner``, as ``-sT``) of ``--targets`` (default
127.0.0.0/26) on ``--ports`` (default 1-20000), a few seconds of work on loopback. It runs
first with ``pentora scan`` alone, then submitted to ``pentora server`` while
``--clients`` Server-Sent-Events clients (default 200, one greenlet each, all in this
process) follow it from its first event (``Last-Event-ID: 0``) and ``--reads`` API reads
a second (default 50) alternate ``GET /scans`` and ``GET /scans/{id}``. Each duration is
the scan's own, from the store (started_at to finished_at), so process start-up is left
out of both; each side runs ``--repeat`` times and the median is kept.

Printed: both durations and their ratio (the goal: at most 1.2), the events each SSE
client got (every one of them, ids 1…N in order, the same sequence for all clients),
the reads done and their latency.

Run it as: ``.venv/bin/python tests/benchmarks/bench_server.py``. Traffic stays on
127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.pool
import yaml
from gevent import socket

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pentora.testing import free_port  # noqa: E402

PENTORA = str(Path(sys.executable).with_name("pentora"))
DAG = """
name: bench-server
vars: {targets: "127.0.0.1", ports: "1"}
nodes:
  - {instance_id: targets, module_type: target_parser, config: {targets: "${targets}"}}
  - {instance_id: ports, module_type: connect_scanner, depends_on: [targets],
     config: {input: targets, ports: "${ports}"}}
"""


def _seconds(scan: dict[str, Any]) -> float:
    start, end = (datetime.fromisoformat(scan[k].replace("Z", "+00:00"))
                  for k in ("started_at", "finished_at"))
    return (end - start).total_seconds()


def alone(work: Path, dag: Path, targets: str, ports: str) -> float:
    store = work / "alone.db"
    subprocess.run([PENTORA, "scan", "--dag", str(dag), "--targets", targets, "--set",
                    f"ports={ports}", "--store", str(store), "-q"],
                   check=True, cwd=work, capture_output=True)
    listed = subprocess.run([PENTORA, "scans", "list", "--store", str(store), "--format", "json"],
                            check=True, capture_output=True, text=True).stdout
    return _seconds(json.loads(listed)[0])


class Server:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        state = work / "state"
        (work / "server.yaml").write_text(f"store: {work / 'server.db'}\nmax_scans: 1\n")
        self.token = subprocess.run(
            [PENTORA, "server", "token", "create", "--scope", "scan", "--state", str(state)],
            check=True, capture_output=True, text=True).stdout.strip()
        self.log = (work / "server.log").open("w")
        self.proc = subprocess.Popen(
            [PENTORA, "server", "--bind", f"127.0.0.1:{self.port}", "--state", str(state),
             "--config", str(work / "server.yaml")], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.api("GET", "/health")
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"the server did not start; see {work / 'server.log'}")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def get(self, path: str, extra: str = "") -> bytes:
        """A GET over a gevent socket, HTTP/1.0: the answer ends when the server closes."""
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=120)
        try:
            conn.sendall(f"GET /api/v1{path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: "
                         f"Bearer {self.token}\r\n{extra}\r\n".encode())
            chunks = []
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def follow(server: Server, scan_id: str) -> list[tuple[int, str]]:
    """Every event of the scan from its first, as (id, type)."""
    raw = server.get(f"/scans/{scan_id}/events", "Last-Event-ID: 0\r\n")
    body = raw.split(b"\r\n\r\n", 1)[1].decode()
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "id" in fields:
            events.append((int(fields["id"]), fields["event"]))
    return events


def read_loop(server: Server, scan_id: str, rate: float, done: gevent.event.Event,
              latencies: list[float]) -> None:
    """``rate`` reads a second until ``done``; then it waits for those still out (the
    server stops after: a read sent then would be refused)."""
    paths, i = ("/scans", f"/scans/{scan_id}"), 0
    next_at = time.monotonic()
    out = gevent.pool.Group()
    while not done.is_set():
        out.spawn(_timed_read, server, paths[i % 2], latencies)
        i += 1
        next_at += 1 / rate
        gevent.sleep(max(0.0, next_at - time.monotonic()))
    out.join()


def _timed_read(server: Server, path: str, latencies: list[float]) -> None:
    t = time.perf_counter()
    answer = server.get(path)
    if b" 200 " in answer.split(b"\r\n", 1)[0]:
        latencies.append(time.perf_counter() - t)


def served(work: Path, targets: str, ports: str, clients: int, reads: float) -> dict[str, Any]:
    server = Server(work)
    try:
        dag = yaml.safe_load(DAG)
        scan_id = server.api("POST", "/scans", {"targets": targets, "dag": dag,
                                                "vars": {"ports": ports}})["id"]
        done, latencies = gevent.event.Event(), []
        followers = [gevent.spawn(follow, server, scan_id) for _ in range(clients)]
        reader = gevent.spawn(read_loop, server, scan_id, reads, done, latencies)
        gevent.joinall(followers, timeout=600)
        done.set()
        reader.join()
        while True:
            shown = server.api("GET", f"/scans/{scan_id}")
            if shown["scan"]["status"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        return {"seconds": _seconds(shown["scan"]), "events": [f.value for f in followers],
                "latencies": latencies, "status": shown["scan"]["status"]}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default="127.0.0.0/26")
    parser.add_argument("--ports", default="1-20000")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--reads", type=float, default=50.0, help="API reads a second")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    alone_s, served_s, runs = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        work = Path(tmp)
        dag = work / "dag.yaml"
        dag.write_text(DAG)
        for n in range(args.repeat):
            alone_s.append(alone(work, dag, args.targets, args.ports))
            (work / f"served-{n}").mkdir()
            run = served(work / f"served-{n}", args.targets, args.ports, args.clients, args.reads)
            served_s.append(run["seconds"])
            runs.append(run)
            print(f"run {n + 1}: alone {alone_s[-1]:.2f} s, served {served_s[-1]:.2f} s "
                  f"({run['status']})", flush=True)
    report(args, alone_s, served_s, runs)


def report(args: argparse.Namespace, alone_s: list[float], served_s: list[float],
           runs: list[dict[str, Any]]) -> None:
    a, s = statistics.median(alone_s), statistics.median(served_s)
    print(f"\nscan of {args.targets} ports {args.ports} (connect), median of {args.repeat}:")
    print(f"  pentora scan alone:            {a:.2f} s")
    print(f"  under pentora server + load:   {s:.2f} s   ({args.clients} SSE clients, "
          f"{args.reads:g} reads/s)")
    print(f"  ratio served / alone:          {s / a:.2f}   (goal <= 1.2)")
    for n, run in enumerate(runs, 1):
        sequences = run["events"]
        counts = [len(e) for e in sequences if e is not None]
        in_order = all(e is not None and [i for i, _ in e] == list(range(1, len(e) + 1))
                       and e[-1][1] == "scan_end" for e in sequences)
        same = all(e == sequences[0] for e in sequences)
        lat = sorted(run["latencies"])
        print(f"  run {n}: SSE clients finished {len(counts)}/{len(sequences)}, events each "
              f"{min(counts, default=0)}..{max(counts, default=0)}, ids 1..N in order ending "
              f"with scan_end: {in_order}, identical for all: {same}; reads {len(lat)}, "
              f"p50 {_ms(lat, 0.5):.1f} ms, p95 {_ms(lat, 0.95):.1f} ms")


def _ms(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


if __name__ == "__main__":
    main()
