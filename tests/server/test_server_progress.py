"""The progress a scan's events carry: each node's, and the whole scan's work items,
rate and time left, as the UI's bar and a client of the API show them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_server_api import DAG, Api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    server = Api(tmp_path)
    yield server
    server.stop()


def test_progress_events_carry_the_scans_items_rate_and_time_left(api, tcp_server, closed_tcp_port):
    server = tcp_server(banner=b"x\r\n")
    ports = f"{server.port},{closed_tcp_port},{','.join(str(p) for p in range(1, 300))}"
    scan_id = api.scan({"targets": "127.0.0.1", "dag": DAG, "vars": {"ports": ports}})
    api.wait(scan_id)
    _, text, _ = api.call("GET", f"/scans/{scan_id}/events", token=api.tokens["read"],
                          headers={"Last-Event-ID": "0"})
    events = [dict(line.split(": ", 1) for line in block.splitlines())
              for block in text.decode().strip().split("\n\n")]
    progress = [json.loads(e["data"]) for e in events if e["event"] == "node_progress"]
    scanned = [p for p in progress if p["node"] == "p"]
    assert scanned and scanned[-1]["done"] == scanned[-1]["total"] == 301
    whole = [p["scan"] for p in progress]
    done = [w["items_done"] for w in whole]
    assert done == sorted(done)  # never goes back
    assert whole[-1]["items_done"] == whole[-1]["items_total"] >= 301
    assert whole[-1]["rate"] > 0
    _, text, _ = api.call("GET", f"/scans/{scan_id}/events", token=api.tokens["read"])
    state = json.loads(text.decode().split("\n\n")[0].split("data: ", 1)[1])
    assert state["status"] == "completed" and state["progress"]["eta"] is None  # nothing left
