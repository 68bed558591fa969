"""The queue of ``pentora server`` survives the server: killed or stopped, the next start
runs the scans that were waiting, in their order; the one that was running is left
``interrupted`` (killed) or ``cancelled`` (stopped), as the store says."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import silent_port, slow_dag
from .test_server_api import DAG, Api


@pytest.fixture
def silent(tmp_path: Path) -> Iterator[int]:
    with silent_port() as port:
        yield port


def fill(tmp_path: Path, silent: int, tcp_server) -> tuple[Api, str, list[str], int]:
    """A server running one slow scan, with two quick ones waiting behind it."""
    server = tcp_server(banner=b"hi\r\n")
    api = Api(tmp_path, "--max-scans", "1")
    running = api.scan({"targets": "127.0.0.1", "dag": slow_dag(silent)})
    api.wait(running, ("running",))
    waiting = [api.scan({"targets": "127.0.0.1", "dag": DAG, "vars": {"ports": str(server.port)}})
               for _ in range(2)]
    for scan_id in waiting:
        assert api.call("GET", f"/scans/{scan_id}", token=api.tokens["read"])[1]["scan"]["status"] == "queued"
    saved = json.loads((api.state / "queue.json").read_text())
    assert [item["id"] for item in saved] == waiting
    return api, running, waiting, server.port


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_queued_scans_run_after_a_restart_in_their_order(tmp_path, silent, tcp_server, how):
    api, running, waiting, open_port = fill(tmp_path, silent, tcp_server)
    api.proc.send_signal(signal.SIGKILL if how == "killed" else signal.SIGTERM)
    api.proc.wait(30)
    again = Api(tmp_path, "--max-scans", "1", tokens=api.tokens)
    try:
        shown = [again.wait(scan_id) for scan_id in waiting]
        assert [s["scan"]["status"] for s in shown] == ["completed", "completed"]
        assert all(s["counts"]["port"] == 1 for s in shown)  # the listener's port, found
        starts = [s["scan"]["started_at"] for s in shown]
        assert starts == sorted(starts)  # the first queued ran first
        first = again.call("GET", f"/scans/{running}", token=again.tokens["read"])[1]["scan"]["status"]
        assert first == ("interrupted" if how == "killed" else "cancelled")
        assert "queued again: " + ", ".join(waiting) in again.output()
        assert json.loads((again.state / "queue.json").read_text()) == []
    finally:
        again.stop()


def test_a_cancelled_queued_scan_is_not_run_after_a_restart(tmp_path, silent, tcp_server):
    api, running, waiting, _ = fill(tmp_path, silent, tcp_server)
    assert api.call("POST", f"/scans/{waiting[0]}/cancel", token=api.tokens["scan"])[0] == 202
    assert [item["id"] for item in json.loads((api.state / "queue.json").read_text())] == waiting[1:]
    api.proc.kill()
    api.proc.wait(30)
    again = Api(tmp_path, "--max-scans", "1", tokens=api.tokens)
    try:
        assert again.wait(waiting[1])["scan"]["status"] == "completed"
        assert again.call("GET", f"/scans/{waiting[0]}", token=again.tokens["read"])[0] == 404
    finally:
        again.stop()


def test_a_damaged_saved_queue_is_set_aside_and_the_server_starts(tmp_path):
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "state" / "queue.json").write_text('[{"id": "x", "dag": ')
    api = Api(tmp_path)
    try:
        assert (api.state / "queue.json.bad").read_text() == '[{"id": "x", "dag": '
        assert "the saved queue" in api.output() and "queue.json.bad" in api.output()
        assert api.call("GET", "/scans", token=api.tokens["read"])[1]["total"] == 0
    finally:
        api.stop()
