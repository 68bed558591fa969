"""Limits and secrets of ``pentora server``: max_body however the body comes, max_dag_nodes,
deep nesting, the audit log, and no token in any file or log line."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.server.test_server_api import DAG, Api

MAX_BODY = 4096


@pytest.fixture
def served(tmp_path):
    server = Api(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def small(tmp_path):
    server = Api(tmp_path, config=f"max_body: {MAX_BODY}\nmax_dag_nodes: 5\n")
    yield server
    server.stop()


def _raw(api: Api, head: str, body: bytes = b"", read_all: bool = True) -> tuple[int, dict[str, Any]]:
    """Send ``head`` + ``body`` as they are (no client fixing them up); status and JSON body."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        s.shutdown(socket.SHUT_WR) if read_all else None
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head_part, _, payload = data.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    return status, json.loads(payload[:_length(data)] or b"null")


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 1 << 30


def _post_head(api: Api, *headers: str) -> str:
    return "\n".join(["POST /api/v1/scans HTTP/1.1", f"Host: 127.0.0.1:{api.port}",
                      f"Authorization: Bearer {api.tokens['scan']}",
                      "Content-Type: application/json", *headers, ""])


def _scans(api: Api) -> int:
    return int(api.call("GET", "/scans", token=api.tokens["read"])[1]["total"])


def test_a_chunked_body_over_max_body_is_413(small):
    body = json.dumps({"targets": "127.0.0.1", "dag": DAG, "name": "x" * (2 * MAX_BODY)}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1000]), body[i:i + 1000])
                      for i in range(0, len(body), 1000)) + b"0\r\n\r\n"
    status, answer = _raw(small, _post_head(small, "Transfer-Encoding: chunked"), chunks)
    assert status == 413 and "max_body" in answer["error"], answer
    assert _scans(small) == 0


def test_a_chunked_body_under_max_body_is_taken(small):
    """The control: chunked itself is fine."""
    body = json.dumps({"targets": "127.0.0.1", "dag": DAG}).encode()
    status, answer = _raw(small, _post_head(small, "Transfer-Encoding: chunked"),
                          b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert status == 201, answer


def test_a_content_length_over_max_body_is_413_before_the_body_comes(small):
    """It claims a GiB and sends a few bytes: the answer comes without waiting for the rest."""
    status, answer = _raw(small, _post_head(small, f"Content-Length: {1 << 30}"), b"{}",
                          read_all=False)
    assert status == 413 and "max_body" in answer["error"], answer
    assert _scans(small) == 0


def test_a_content_length_shorter_than_the_body_reads_only_what_it_says(small):
    """The declared length is the body: the bytes beyond are not JSON of this request."""
    body = json.dumps({"targets": "127.0.0.1", "dag": DAG}).encode()
    status, answer = _raw(small, _post_head(small, "Content-Length: 10", "Connection: close"), body)
    assert status == 422 and answer["error"].startswith("the body is not JSON"), answer
    assert _scans(small) == 0


def test_a_dag_over_max_dag_nodes_is_422_naming_the_limit(small):
    nodes = [*DAG["nodes"], *({"instance_id": f"p{i}", "module_type": "connect_scanner",
                               "depends_on": ["targets"], "config": {"ports": "1", "input": "targets"}}
                              for i in range(4))]
    for path, body in (("/scans", {"targets": "127.0.0.1", "dag": {**DAG, "nodes": nodes}}),
                       ("/dags/validate", {"dag": {**DAG, "nodes": nodes}})):
        status, answer, _ = small.call("POST", path, body, small.tokens["scan"])
        assert status == 422 and "max_dag_nodes" in answer["problems"][0]["message"], answer
    assert _scans(small) == 0


@pytest.mark.parametrize("body", [b"[" * 3000 + b"]" * 3000, b'{"a":' * 1500 + b"1" + b"}" * 1500,
                                  json.dumps({"targets": "127.0.0.1", "dag": DAG, "vars": {
                                      "deep": json.loads("[" * 100 + "]" * 100)}}).encode()],
                         ids=["lists past the parser's recursion", "objects", "a deep var"])
def test_deep_nesting_is_refused_with_422_not_an_error(tmp_path, body):
    api = Api(tmp_path)  # max_body 1 MiB: the nesting, not the size, is refused
    try:
        for path in ("/scans", "/dags/validate"):
            status, answer, _ = api.call("POST", path, raw=body, token=api.tokens["scan"])
            assert status == 422 and "deep" in answer["error"], answer
        assert "Traceback" not in api.output() and "internal error" not in api.output()
        assert _scans(api) == 0
    finally:
        api.stop()


def test_the_audit_log_names_tokens_and_no_file_or_log_holds_one(served, tmp_path):
    api = served
    scan = api.scan({"targets": "127.0.0.1", "dag": DAG, "name": "audited"})
    api.wait(scan)
    assert api.call("POST", f"/scans/{scan}/cancel", token=api.tokens["scan"])[0] == 409
    import threading

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never talks: the scan waits
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    slow = {**DAG, "vars": {"targets": "127.0.0.1", "ports": str(listener.getsockname()[1])},
            "nodes": [*DAG["nodes"], {"instance_id": "b", "module_type": "banner_grabber",
                                      "depends_on": ["p"], "config": {"timeout": "60s"}}]}
    running = api.scan({"targets": "127.0.0.1", "dag": slow})
    assert api.call("POST", f"/scans/{running}/cancel", token=api.tokens["admin"])[0] == 202
    api.wait(running)
    assert api.call("DELETE", f"/scans/{scan}", token=api.tokens["admin"])[0] == 204
    # errors with a token in the header: bad scope, unknown scan, a bad body, a bad token
    api.call("DELETE", f"/scans/{running}", token=api.tokens["read"])
    api.call("GET", "/scans/nope", token=api.tokens["read"])
    api.call("POST", "/scans", raw=b"{oops", token=api.tokens["scan"])
    api.call("GET", "/scans", token=api.tokens["admin"] + "x")
    api.call("PATCH", "/scans", token=api.tokens["admin"])
    listener.close()
    entries = [json.loads(line) for line in (api.state / "audit.log").read_text().splitlines()]
    assert [(e["action"], e["token"], e["scan_id"]) for e in entries] == [
        ("start", "scan-test", scan), ("start", "scan-test", running),
        ("cancel", "admin-test", running), ("delete", "admin-test", scan)]
    assert all(e["client"] == "127.0.0.1" and e["time"] for e in entries)
    api.stop()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert api.state / "tokens.json" in files and api.state / "audit.log" in files
    for token in api.tokens.values():
        secret = token.encode()
        assert not [p for p in files if secret in p.read_bytes()], token[:8]
        assert token not in api.output()
        assert token[4:20] not in api.output()  # no part of one either


def _with_node(node: dict[str, Any]) -> dict[str, Any]:
    return {**DAG, "nodes": [*DAG["nodes"], node]}


SERVER_FILES = {
    "sub-DAG file": (_with_node({"instance_id": "inc", "module_type": "subdag",
                                 "subdag_file": "/etc/passwd"}), "inc", "subdag_file"),
    "subdag_file on another type": (_with_node({"instance_id": "inc", "module_type": "set",
                                                "subdag_file": "x.yaml"}), "inc", "subdag_file"),
    "exclude_file": ({**DAG, "nodes": [{**DAG["nodes"][0], "config": {
        "targets": "${targets}", "exclude_file": "/etc/hosts"}}, DAG["nodes"][1]]},
        "targets", "config.exclude_file"),
    "@file under exclude": ({**DAG, "nodes": [{**DAG["nodes"][0], "config": {
        "targets": "${targets}", "exclude": "@/etc/hosts"}}, DAG["nodes"][1]]},
        "targets", "config.exclude"),
    "a report written to disk": (_with_node({"instance_id": "out", "module_type": "json_reporter",
                                             "depends_on": ["p"],
                                             "config": {"output": "/tmp/pentora-x.json"}}),
                                 "out", "config.output"),
    "a path through a var": ({**_with_node({"instance_id": "out", "module_type": "json_reporter",
                                            "depends_on": ["p"], "config": {"output": "${o}"}}),
                              "vars": {**DAG["vars"], "o": "report.json"}}, "out", "config.output"),
}


@pytest.mark.parametrize("dag, node, key", list(SERVER_FILES.values()), ids=list(SERVER_FILES))
def test_a_dag_sent_as_data_cannot_name_a_file_of_the_server(served, dag, node, key):
    for path, body in (("/scans", {"targets": "127.0.0.1", "dag": dag}), ("/dags/validate",
                                                                         {"dag": dag})):
        status, answer, _ = served.call("POST", path, body, served.tokens["scan"])
        assert status == 422, answer
        assert [(p["node"], p["key"]) for p in answer["problems"]] == [(node, key)], answer
        assert "server" in answer["problems"][0]["message"]
        assert "resolved" not in answer["problems"][0]["message"]  # no word on what exists
    assert _scans(served) == 0
