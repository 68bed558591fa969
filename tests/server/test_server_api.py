"""``pentora server`` as a user runs it: a subprocess on a free 127.0.0.1 port, real
tokens, real scans of listeners the tests start on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import free_port

from .helpers import silent_port, slow_dag, stop

PENTORA = str(Path(sys.executable).with_name("pentora"))


class Api:
    def __init__(self, tmp: Path, *extra: str, config: str = "",
                 tokens: dict[str, str] | None = None) -> None:
        """``tokens``: those of an earlier server on the same state (a restart)."""
        self.state = tmp / "state"
        self.port = free_port()
        (tmp / "server.yaml").write_text(f"store: {tmp / 'scans.db'}\n{config}")
        self.tokens = tokens or {scope: self._token(scope) for scope in ("read", "scan", "admin")}
        self.config = tmp / "server.yaml"
        self.log = (tmp / "server.log").open("a+")
        self.start(*extra)

    def start(self, *extra: str) -> None:
        """``pentora server`` on this state, config and port, once it answers."""
        self.proc = subprocess.Popen(
            [PENTORA, "server", "--bind", f"127.0.0.1:{self.port}", "--state", str(self.state),
             "--config", str(self.config), *extra], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30  # a hang guard, not a timing assertion
        while time.monotonic() < deadline:
            try:
                self.call("GET", "/health")
                return
            except OSError:
                assert self.proc.poll() is None, self.output()
                time.sleep(0.1)
        pytest.fail(f"the server did not answer: {self.output()}")

    def _token(self, scope: str) -> str:
        proc = subprocess.run([PENTORA, "server", "token", "create", "--scope", scope, "--name",
                               f"{scope}-test", "--state", str(self.state)],
                              capture_output=True, text=True, check=True)
        return proc.stdout.strip()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             raw: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1{path}", data=data,
                                     method=method, headers={"Content-Type": "application/json",
                                                             **(headers or {})})
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read()
                status, hdrs = r.status, r.headers
        except urllib.error.HTTPError as e:
            text, status, hdrs = e.read(), e.code, e.headers
        ctype = hdrs.get("Content-Type", "")
        return status, (json.loads(text) if ctype.startswith("application/json") and text else text), hdrs

    def scan(self, body: dict[str, Any], scope: str = "scan") -> str:
        status, answer, _ = self.call("POST", "/scans", body, self.tokens[scope])
        assert status == 201, answer
        return str(answer["id"])

    def wait(self, scan_id: str,
             until: tuple[str, ...] = ("completed", "failed", "cancelled")) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, shown, _ = self.call("GET", f"/scans/{scan_id}", token=self.tokens["read"])
            if status == 200 and shown["scan"]["status"] in until:
                return shown
            time.sleep(0.2)
        pytest.fail(f"scan {scan_id} did not reach {until}")

    def stop(self) -> None:
        stop(self.proc)


@pytest.fixture
def api(tmp_path):
    server = Api(tmp_path)
    yield server
    server.stop()


DAG = {"name": "api-test", "vars": {"targets": "127.0.0.1", "ports": "1"},
       "nodes": [{"instance_id": "targets", "module_type": "target_parser",
                  "config": {"targets": "${targets}"}},
                 {"instance_id": "p", "module_type": "connect_scanner", "depends_on": ["targets"],
                  "config": {"ports": "${ports}", "input": "targets"}}]}


def test_a_submitted_scan_completes_with_its_open_ports_and_renders_in_every_format(
        api, tcp_server, closed_tcp_port):
    server = tcp_server(banner=b"hello\r\n")
    scan_id = api.scan({"targets": "127.0.0.1", "dag": DAG,
                        "vars": {"ports": f"{server.port},{closed_tcp_port}"}})
    shown = api.wait(scan_id)
    assert shown["scan"]["status"] == "completed" and shown["counts"]["port"] == 1
    status, lines, hdrs = api.call("GET", f"/scans/{scan_id}/results?format=jsonl",
                                   token=api.tokens["read"])
    records = [json.loads(line) for line in lines.decode().splitlines()]
    assert hdrs["Content-Type"] == "application/x-ndjson"
    assert [(r["host"], r["port"]) for r in records if r["kind"] == "port"] == [
        ("127.0.0.1", server.port)]
    for fmt, ctype in (("json", "application/json"), ("csv", "text/csv"), ("md", "text/markdown"),
                       ("xml", "application/xml"), ("html", "text/html")):
        status, body, hdrs = api.call("GET", f"/scans/{scan_id}/results?format={fmt}",
                                      token=api.tokens["read"])
        assert status == 200 and hdrs["Content-Type"].startswith(ctype), (fmt, body)
    ET.fromstring(api.call("GET", f"/scans/{scan_id}/results?format=xml", token=api.tokens["read"])[1])
    assert "default-src 'none'" in api.call("GET", f"/scans/{scan_id}/results?format=html",
                                            token=api.tokens["read"])[2]["Content-Security-Policy"]
    status, listed, _ = api.call("GET", "/scans?limit=1&offset=0", token=api.tokens["read"])
    assert listed["total"] == 1 and [s["id"] for s in listed["scans"]] == [scan_id]
    assert api.call("GET", "/scans?status=failed", token=api.tokens["read"])[1]["scans"] == []
    other = api.scan({"targets": "127.0.0.1", "dag": DAG, "vars": {"ports": str(closed_tcp_port)}})
    api.wait(other)
    status, changes, _ = api.call("GET", f"/scans/{scan_id}/diff/{other}", token=api.tokens["read"])
    assert status == 200 and changes["ports"]["removed"] == [["127.0.0.1", f"{server.port}/tcp", "open"]]


def test_events_come_in_order_with_state_first_and_a_reconnect_gets_what_it_missed(api, tcp_server):
    server = tcp_server(banner=b"x\r\n")
    scan_id = api.scan({"targets": "127.0.0.1", "dag": DAG, "vars": {"ports": str(server.port)}})
    api.wait(scan_id)
    _, text, hdrs = api.call("GET", f"/scans/{scan_id}/events", token=api.tokens["read"])
    assert hdrs["Content-Type"].startswith("text/event-stream")
    events = [dict(line.split(": ", 1) for line in block.splitlines())
              for block in text.decode().strip().split("\n\n")]
    assert events[0]["event"] == "state"
    _, text, _ = api.call("GET", f"/scans/{scan_id}/events", token=api.tokens["read"],
                          headers={"Last-Event-ID": "0"})
    replay = [dict(line.split(": ", 1) for line in block.splitlines())
              for block in text.decode().strip().split("\n\n")]
    ids = [int(e["id"]) for e in replay]
    assert ids == list(range(1, len(ids) + 1))
    assert replay[-1]["event"] == "scan_end" and json.loads(replay[-1]["data"])["status"] == "completed"
    kinds = [e["event"] for e in replay]
    assert kinds.index("node_start") < kinds.index("record") < kinds.index("scan_end")
    _, text, _ = api.call("GET", f"/scans/{scan_id}/events", token=api.tokens["read"],
                          headers={"Last-Event-ID": str(ids[-3])})
    assert [int(b.split("\n")[0][4:]) for b in text.decode().strip().split("\n\n")] == ids[-2:]


def test_tokens_are_required_scoped_and_never_logged(api):
    status, answer, hdrs = api.call("GET", "/scans")
    assert status == 401 and hdrs["WWW-Authenticate"].startswith("Bearer") and answer["error"]
    assert api.call("GET", "/scans", token="pnt_wrong")[0] == 401
    status, answer, _ = api.call("POST", "/scans", {"targets": "127.0.0.1"}, api.tokens["read"])
    assert status == 403 and "read" in answer["error"]
    scan_id = api.scan({"targets": "127.0.0.1", "dag": DAG})
    api.wait(scan_id)
    assert api.call("DELETE", f"/scans/{scan_id}", token=api.tokens["scan"])[0] == 403
    assert api.call("DELETE", f"/scans/{scan_id}", token=api.tokens["admin"])[0] == 204
    assert api.call("GET", f"/scans/{scan_id}", token=api.tokens["read"])[0] == 404
    audit = (api.state / "audit.log").read_text()
    assert [json.loads(line)["action"] for line in audit.splitlines()] == ["start", "delete"]
    for token in api.tokens.values():
        assert token not in audit and token not in api.output()
    assert "scan-test" in audit


def test_validation_lists_every_problem_and_nothing_is_created(api):
    bad = {**DAG, "nodes": [*DAG["nodes"], {"instance_id": "x", "module_type": "connect_scanner",
                                            "config": {"ports": "1", "input": "nowhere",
                                                       "bogus": 1}}]}
    status, answer, _ = api.call("POST", "/scans", {"targets": "127.0.0.1", "dag": bad,
                                                    "vars": {"typo": 1}}, api.tokens["scan"])
    assert status == 422
    messages = " | ".join(p["message"] for p in answer["problems"])
    assert "typo" in messages and "bogus" in messages, messages
    status, answer, _ = api.call("POST", "/scans", {"targets": "127.0.0.1", "profile": "nope"},
                                 api.tokens["scan"])
    assert status == 422 and "port-scan" in answer["problems"][0]["message"]
    status, answer, _ = api.call("POST", "/scans", raw=b"{not json", token=api.tokens["scan"])
    assert status == 422 and answer["error"].startswith("the body is not JSON")
    assert api.call("GET", "/scans", token=api.tokens["read"])[1]["total"] == 0
    status, answer, _ = api.call("POST", "/dags/validate", {"dag": DAG}, api.tokens["scan"])
    assert (status, answer) == (200, {"ok": True, "nodes": 2, "problems": []})


def test_a_body_over_max_body_is_413(tmp_path):
    api = Api(tmp_path, config="max_body: 1000\n")
    try:
        status, answer, _ = api.call("POST", "/scans", raw=b"{" + b" " * 5000 + b"}",
                                     token=api.tokens["scan"])
        assert status == 413 and "max_body" in answer["error"]
    finally:
        api.stop()


def test_modules_profiles_plugins_health_ready_and_openapi(api):
    read = api.tokens["read"]
    assert any(m["name"] == "connect_scanner" for m in api.call("GET", "/modules", token=read)[1])
    assert "port-scan" in [p["name"] for p in api.call("GET", "/profiles", token=read)[1]]
    assert "store" in [p["name"] for p in api.call("GET", "/plugins", token=read)[1]["plugins"]]
    assert api.call("GET", "/ready", token=read)[0] == 200
    status, doc, _ = api.call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"] == "3.1.0"
    assert {"/api/v1/scans", "/api/v1/scans/{id}/events", "/api/v1/scans/{id}/results"} <= set(doc["paths"])


def test_a_non_loopback_bind_without_tls_exits_2_before_binding(tmp_path):
    port = free_port()
    proc = subprocess.run([PENTORA, "server", "--bind", f"0.0.0.0:{port}", "--state",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--cert" in proc.stderr and "token" in proc.stderr and "Traceback" not in proc.stderr


def test_a_second_scan_waits_queued_with_max_scans_1_and_cancel_and_delete_conflicts(tmp_path):
    with silent_port() as port:
        api = Api(tmp_path, "--max-scans", "1")
        try:
            first = api.scan({"targets": "127.0.0.1", "dag": slow_dag(port)})
            second = api.scan({"targets": "127.0.0.1", "dag": slow_dag(port)})
            assert api.call("GET", f"/scans/{second}",
                            token=api.tokens["read"])[1]["scan"]["status"] == "queued"
            status, answer, _ = api.call("DELETE", f"/scans/{first}", token=api.tokens["admin"])
            assert status == 409 and "cancel" in answer["error"]
            assert api.call("POST", f"/scans/{first}/cancel", token=api.tokens["scan"])[0] == 202
            assert api.wait(first)["scan"]["status"] == "cancelled"
            api.wait(second, ("running",))
            assert api.call("POST", f"/scans/{second}/cancel", token=api.tokens["scan"])[0] == 202
            api.wait(second)
        finally:
            api.stop()
