"""Distributed scans: one ``pentora worker`` against two, and what a shard costs.

An I/O-bound scan: many loopback addresses (127.0.1.1 … 127.0.1.N), a few ports on each,
every listener waiting ``--delay`` before it speaks (an SSH banner), so a scan spends its
time waiting, and each shard waits with a bounded greenlet pool (``max_parallel_targets``)
as a real worker would with its rate limits. The same sharded scan runs on one worker and
then on two (each running one shard at a time); the speed-up is the ratio of the
distributed phase's durations (the ``shards`` node, from the JSONL report).

Overhead: ``--empty`` shards of a DAG with nothing to do, one worker running one shard at
a time: the distributed phase's duration per shard is what a round trip through Celery
and Redis costs (send, queue, run an empty DAG, store, poll, merge).

Run it as: ``.venv/bin/python tests/benchmarks/bench_celery.py`` (needs redis-server and
Celery: ``.ci/setup`` installs both). Traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.daemons import redis  # noqa: E402

BASE = [sys.executable, "-m", "pentora"]
BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"

SCAN_DAG = """
name: bench-celery
vars: {targets: "", ports: ""}
engine: {fail_fast: false, max_parallel_targets: %(pool)d}
nodes:
  - {instance_id: targets, module_type: target_parser, config: {targets: "${targets}"}}
  - {instance_id: ports, module_type: connect_scanner, depends_on: [targets],
     config: {input: targets, ports: "${ports}", timeout: 1s}}
  - {instance_id: banners, module_type: banner_grabber, depends_on: [ports],
     config: {race_probes: false, passive_timeout: 3s}}
  - {instance_id: fingerprint, module_type: fingerprint_parser, depends_on: [banners]}
  - {instance_id: assets, module_type: asset_profiler, depends_on: [fingerprint]}
"""

EMPTY_DAG = """
name: bench-celery-empty
vars: {targets: ""}
nodes:
  - {instance_id: nothing, module_type: noop}
"""


def delay_servers(addresses: list[str], nports: int, delay: float) -> list[int]:
    """The same ``nports`` ports listening on every address, each speaking after ``delay``."""
    def speak_late(conn: socket.socket) -> None:
        with conn:
            time.sleep(delay)
            try:
                conn.sendall(BANNER)
                conn.settimeout(5)
                while conn.recv(4096):
                    pass
            except OSError:
                pass

    def serve(sock: socket.socket) -> None:
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=speak_late, args=(conn,), daemon=True).start()

    ports: list[int] = []
    while len(ports) < nports:
        socks = []
        try:
            first = socket.create_server((addresses[0], 0), backlog=128)
            port = first.getsockname()[1]
            socks = [first] + [socket.create_server((a, port), backlog=128) for a in addresses[1:]]
        except OSError:  # the port is taken on some address: try another
            for s in socks:
                s.close()
            continue
        for s in socks:
            threading.Thread(target=serve, args=(s,), daemon=True).start()
        ports.append(port)
    return ports


def start_worker(broker: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    proc = subprocess.Popen([*BASE, "worker", "--broker", broker, "--concurrency", "1", "--hostname",
                             f"{name}@%h", "--log-level", "INFO"], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker {name} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return proc


def run(dag: Path, broker: str, shards: int, out: Path, **vars: str) -> dict[str, Any]:
    argv = [*BASE, "scan", "--dag", str(dag), "-q", "-o", str(out), "--executor", "celery",
            "--broker", broker, "--shards", str(shards)]
    for key, value in vars.items():
        argv += [{"targets": "--targets", "ports": "--ports"}[key], value]
    began = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - began
    if done.returncode != 0:
        raise SystemExit(f"scan failed ({done.returncode}):\n{done.stderr}")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    phase = next(r for r in rows if r["kind"] == "node" and r["node"] == "shards")["duration_ms"] / 1000
    kinds = [r["kind"] for r in rows]
    return {"wall": wall, "phase": phase, "ports": kinds.count("port"), "services": kinds.count("service")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addresses", type=int, default=32, help="loopback addresses 127.0.1.1…")
    ap.add_argument("--ports", type=int, default=4, help="listeners on each address")
    ap.add_argument("--delay", type=float, default=0.5, help="seconds each listener waits to speak")
    ap.add_argument("--pool", type=int, default=8, help="max_parallel_targets of a shard")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--empty", type=int, default=40, help="empty shards for the overhead figure")
    args = ap.parse_args()

    addresses = [f"127.0.1.{i}" for i in range(1, args.addresses + 1)]
    ports = delay_servers(addresses, args.ports, args.delay)
    items = len(addresses) * len(ports)
    with tempfile.TemporaryDirectory(prefix="pentora-bench-celery-") as tmp, redis() as daemon:
        d = Path(tmp)
        broker = f"redis://127.0.0.1:{daemon.port}/0"
        scan_dag, empty_dag = d / "scan.yaml", d / "empty.yaml"
        scan_dag.write_text(SCAN_DAG % {"pool": args.pool})
        empty_dag.write_text(EMPTY_DAG)
        spec = {"targets": f"127.0.1.1-{args.addresses}", "ports": ",".join(map(str, ports))}
        workers = [start_worker(broker, "w1", d / "w1.log")]
        try:
            one = run(scan_dag, broker, args.shards, d / "one.jsonl", **spec)
            empty = run(empty_dag, broker, args.empty, d / "empty.jsonl", targets="127.0.0.1")
            workers.append(start_worker(broker, "w2", d / "w2.log"))
            two = run(scan_dag, broker, args.shards, d / "two.jsonl", **spec)
        finally:
            for w in workers:
                w.terminate()
                w.wait(timeout=30)
    print(f"I/O-bound scan: {len(addresses)} addresses x {len(ports)} ports = {items} items, "
          f"{args.delay}s per port, {args.shards} shards, pool {args.pool} a shard")
    for name, r in (("1 worker ", one), ("2 workers", two)):
        print(f"  {name}: shards phase {r['phase']:.2f}s (whole command {r['wall']:.2f}s), "
              f"{r['ports']} ports, {r['services']} services")
    if (one["ports"], one["services"]) != (two["ports"], two["services"]):
        print("  WARNING: the two runs found different results")
    print(f"  speed-up 2 workers / 1 worker: {one['phase'] / two['phase']:.2f}x "
          f"(whole command {one['wall'] / two['wall']:.2f}x)")
    print(f"Celery overhead: {args.empty} empty shards, 1 worker running one at a time: "
          f"{empty['phase']:.2f}s, {1000 * empty['phase'] / args.empty:.1f} ms per shard round trip")


if __name__ == "__main__":
    main()
