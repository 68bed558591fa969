"""Resume after a crash, for real: a ``pentora scan`` process is SIGKILLed in the middle of
its banner grabbing, ``pentora scan --resume ID`` finishes it, and the result is compared
with an uninterrupted scan of the same servers — the same findings, none twice, the
completed nodes not rerun and the finished ports not touched again.

The servers (127.0.0.1 only) wait before they speak, and the grabber takes one port at a
time, so that the node runs long enough to be killed half way; the kill waits for three
ports to be checkpointed in the store, not for a time.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

PORTS = 10
DELAY = 0.4  # seconds each server waits before its banner

DAG = """
name: resume-test
vars: {targets: "", ports: ""}
engine: {fail_fast: false}
nodes:
  - {instance_id: targets, module_type: target_parser, config: {targets: "${targets}"}}
  - {instance_id: ports, module_type: connect_scanner, depends_on: [targets],
     config: {ports: "${ports}", input: targets}}
  - {instance_id: banners, module_type: banner_grabber, depends_on: [ports],
     config: {concurrency: 1, race_probes: false}}
  - {instance_id: services, module_type: fingerprint_parser, depends_on: [banners]}
"""


class SlowBanner:
    """Accepts on 127.0.0.1, waits ``DELAY``, sends an SSH banner of its own version,
    and counts connections (the scanner's connects and grabs alike)."""

    def __init__(self, version: int) -> None:
        self.banner = f"SSH-2.0-OpenSSH_9.{version}p1 Debian-2\r\n".encode()
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with contextlib.closing(conn), contextlib.suppress(OSError):
            conn.settimeout(5)
            time.sleep(DELAY)
            conn.sendall(self.banner)
            while conn.recv(4096):
                pass

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()


@pytest.fixture
def servers():
    made = [SlowBanner(v) for v in range(PORTS)]
    yield made
    for s in made:
        s.stop()


def rows(db: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def pentora(*args: str) -> list[str]:
    return [sys.executable, "-m", "pentora", *args]


def count_checkpoints(db: Path, node: str) -> int:
    try:
        return int(rows(db, "SELECT count(*) FROM checkpoints WHERE node = ?", node)[0][0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def findings(db: Path, scan_id: str) -> list[str]:
    return sorted(d for (d,) in rows(db, "SELECT data FROM results WHERE scan_id = ?", scan_id))


def test_sigkill_then_resume_equals_an_uninterrupted_scan(servers, tmp_path):
    db, dag = tmp_path / "scans.db", tmp_path / "dag.yaml"
    dag.write_text(DAG)
    ports = ",".join(str(s.port) for s in servers)
    scan = pentora("scan", "--targets", "127.0.0.1", "-p", ports, "--dag", str(dag),
                   "--store", str(db), "-q")
    proc = subprocess.Popen([*scan, "-o", str(tmp_path / "killed.jsonl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while count_checkpoints(db, "banners") < 3:
            assert proc.poll() is None, "the scan ended before it could be killed"
            assert time.monotonic() < deadline, "no banner checkpoints after 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    sid = rows(db, "SELECT id FROM scans")[0][0]
    done = {item for (item,) in rows(db, "SELECT item FROM checkpoints WHERE node = 'banners'")}
    at_kill = findings(db, sid)
    connections = {s.port: s.connections for s in servers}
    listed = subprocess.run(pentora("scans", "list", "--store", str(db)), capture_output=True,
                            text=True, timeout=60)
    assert f"{sid}" in listed.stdout and "interrupted" in listed.stdout, listed.stdout

    resumed_out = tmp_path / "resumed.jsonl"
    resumed = subprocess.run(pentora("scan", "--resume", sid, "--store", str(db), "-q",
                                     "-o", str(resumed_out)),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = findings(db, sid)
    resumed_new = {f"127.0.0.1:{s.port}": s.connections - connections[s.port] for s in servers}

    whole = subprocess.run(scan, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    other = [r[0] for r in rows(db, "SELECT id FROM scans WHERE id != ?", sid)][0]
    reference = findings(db, other)

    kinds = Counter(json.loads(d)["kind"] for d in after)
    print(f"\nresume test: {len(done)} of {PORTS} ports checkpointed when killed; findings in the "
          f"store at the kill {len(at_kill)}, after the resume {len(after)} "
          f"({dict(sorted(kinds.items()))}), uninterrupted scan {len(reference)}")

    assert after == reference  # the same findings, each once (a list: duplicates would show)
    assert len(set(after)) == len(after)
    assert kinds["port"] == kinds["service"] == PORTS
    records = {n: json.loads(r) for n, r in rows(db, "SELECT node, record FROM nodes WHERE "
                                                    "scan_id = ?", sid)}
    assert records["targets"]["reason"] == records["ports"]["reason"] == "restored from an earlier run"
    assert records["banners"]["reason"] is None  # it ran, continuing
    # ports finished before the kill are neither port-scanned nor grabbed again
    assert all(resumed_new[item] == 0 for item in done), (resumed_new, done, resumed.stderr)
    assert all(resumed_new[item] > 0 for item in set(resumed_new) - done), resumed_new

    # the resumed run's own report holds every finding once: replayed, then new
    lines = [json.loads(line) for line in resumed_out.read_text().splitlines()]
    reported = sorted(json.dumps(x, sort_keys=True, separators=(",", ":")) for x in lines
                      if x["kind"] not in ("node", "scan"))
    assert reported == sorted(json.dumps(json.loads(d), sort_keys=True, separators=(",", ":"))
                              for d in after)
    assert lines[-1]["kind"] == "scan" and lines[-1]["status"] == "completed"
