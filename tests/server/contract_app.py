"""The server's API against its own OpenAPI document, with schemathesis (property-based).

Not collected on its own: ``test_server_contract.py`` runs this file with pytest inside a
fresh network namespace that has only its loopback, so that no scan a generated request
submits could reach anything but 127.0.0.1 even if the allow-list (127.0.0.1/32 here)
were wrong. The app runs in-process through schemathesis' WSGI support, with real
tokens, a real store and real scans on the gevent hub.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pentora_plugins.server._allow import AllowList
from pentora_plugins.server._app import create_app
from pentora_plugins.server._config import ServerConfig
from pentora_plugins.server._serve import build
from pentora_plugins.server._tokens import TokenStore
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from pentora import get_plugin_manager
from pentora.cli import scan_parser

STATE = Path(os.environ.get("PENTORA_CONTRACT_STATE", "contract-state"))
STATE.mkdir(parents=True, exist_ok=True)
PM = get_plugin_manager()
CONFIG = ServerConfig(allow=["127.0.0.1/32"], store=str(STATE / "scans.db"), max_body=64 * 1024,
                      max_dag_nodes=20, max_scans=2)
SERVER = build(PM, scan_parser(PM), CONFIG, STATE, TokenStore(STATE))
APP = create_app(SERVER)
TOKENS = {scope: SERVER.tokens.create(scope, f"{scope}-contract")[1]
          for scope in ("read", "scan", "admin")}
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", APP)
# (method, path template, status) of every answer, to show each documented one is reached
SEEN: set[tuple[str, str, int]] = set()
# A scan that finds nothing quickly: one closed port of 127.0.0.1.
DAG = {"name": "contract", "vars": {"targets": "127.0.0.1", "ports": "1"},
       "nodes": [{"instance_id": "targets", "module_type": "target_parser",
                  "config": {"targets": "${targets}"}},
                 {"instance_id": "p", "module_type": "connect_scanner", "depends_on": ["targets"],
                  "config": {"ports": "${ports}", "input": "targets"}}]}

# A scan that stays running until cancelled: a banner read from a listener that never talks.
SILENT = socket.create_server(("127.0.0.1", 0))
SILENT.listen(64)
SLOW = {**DAG, "name": "slow", "vars": {"targets": "127.0.0.1", "ports": str(SILENT.getsockname()[1])},
        "nodes": [*DAG["nodes"], {"instance_id": "b", "module_type": "banner_grabber",
                                  "depends_on": ["p"],
                                  "config": {"timeout": "60s", "race_probes": False}}]}


def _check_error_body(response: Any) -> None:
    if response.status_code >= 400:
        ctype = {k.lower(): v for k, v in response.headers.items()}.get("content-type", [""])
        assert (ctype if isinstance(ctype, str) else ctype[0]).startswith("application/json"), (
            response.status_code, response.text)
        body = json.loads(response.text)
        assert isinstance(body["error"], str) and body["error"]
        assert isinstance(body["problems"], list)


# A request body that fits the schema may still name a module type, a profile or a var
# that does not exist: 422 by design (the DAG's own validation), which no JSON Schema could
# say. Every other check stays on for them, negative data included.
SEMANTIC = {("POST", "/api/v1/scans"), ("POST", "/api/v1/dags/validate"),
            # a cron's columns have ranges, and a schedule holds a scan request: the same
            ("POST", "/api/v1/schedules"), ("PATCH", "/api/v1/schedules/{id}")}


def _call(case: Any, scope: str | None, unavailable: bool = False) -> Any:
    headers = {"Authorization": f"Bearer {TOKENS[scope]}"} if scope else {}
    response = case.call(headers=headers)
    SEEN.add((case.method.upper(), case.path, response.status_code))
    assert response.status_code != 500, response.text
    excluded = [positive_data_acceptance] if (case.method.upper(), case.path) in SEMANTIC else []
    if unavailable:
        excluded.append(not_a_server_error)  # a documented 503 is what the caller wants here
    case.validate_response(response, headers=headers, excluded_checks=excluded)
    _check_error_body(response)
    return response


@schema.parametrize()
@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@pytest.mark.parametrize("scope", ["read", "scan", "admin", None])
def test_every_generated_request_gets_a_documented_answer(case: Any, scope: str | None) -> None:
    _call(case, scope)


def _case(path: str, method: str, **kw: Any) -> Any:
    return schema[path][method].Case(**kw)


def _submit(body: dict[str, Any]) -> str:
    response = _call(_case("/api/v1/scans", "POST", body=body, media_type="application/json"),
                     "scan")
    assert response.status_code == 201, response.text
    return str(json.loads(response.text)["id"])


def _wait(scan_id: str) -> None:
    job = SERVER.manager.jobs[scan_id]
    with gevent.Timeout(60):  # a hang guard: the scan is one closed port
        while job.status in ("queued", "running"):
            gevent.sleep(0.05)


@pytest.fixture(scope="module")
def finished() -> Iterator[tuple[str, str]]:
    first, second = _submit({"targets": "127.0.0.1", "dag": DAG}), _submit({"targets": "127.0.0.1",
                                                                           "dag": DAG})
    _wait(first)
    _wait(second)
    yield first, second


def test_the_states_a_scan_goes_through_answer_as_documented(finished: tuple[str, str]) -> None:
    """The statuses random requests cannot reach: those of real scans in each state."""
    old, new = finished
    sid = "/api/v1/scans/{id}"
    for fmt in ("jsonl", "json", "csv", "md", "xml", "html"):
        _call(_case(f"{sid}/results", "GET", path_parameters={"id": old}, query={"format": fmt}),
              "read")
    _call(_case("/api/v1/scans/{old}/diff/{new}", "GET", path_parameters={"old": old, "new": new}),
          "read")
    _call(_case(f"{sid}/events", "GET", path_parameters={"id": old}), "read")
    _call(_case(f"{sid}/events", "GET", path_parameters={"id": old},
                headers={"Last-Event-ID": "-1"}), "read")  # 422
    _call(_case("/api/v1/openapi.json", "GET"), None)
    _call(_case(sid, "GET", path_parameters={"id": old}), "read")
    _call(_case(f"{sid}/cancel", "POST", path_parameters={"id": old}), "scan")  # 409: finished
    _call(_case(f"{sid}/resume", "POST", path_parameters={"id": old}), "scan")  # 409: completed
    running = _submit({"targets": "127.0.0.1", "dag": SLOW})
    _call(_case(f"{sid}/results", "GET", path_parameters={"id": running}), "read")  # 409: not started
    _call(_case(sid, "DELETE", path_parameters={"id": running}), "admin")  # 409: running
    assert _call(_case(f"{sid}/cancel", "POST", path_parameters={"id": running}),
                 "scan").status_code == 202
    _wait(running)
    status = SERVER.store.get(running)["scan"]["status"]
    resumed = _call(_case(f"{sid}/resume", "POST", path_parameters={"id": running}), "scan")
    assert resumed.status_code == 202, (status, resumed.text)
    _call(_case(f"{sid}/cancel", "POST", path_parameters={"id": running}), "scan")
    _wait(running)
    assert _call(_case(sid, "DELETE", path_parameters={"id": running}), "admin").status_code == 204
    _call(_case("/api/v1/dags/validate", "POST", body={"dag": DAG}, media_type="application/json"),
          "scan")
    big = {"dag": {**DAG, "nodes": DAG["nodes"] * 1}, "vars": {"pad": "x" * (CONFIG.max_body + 1)}}
    for path in ("/api/v1/scans", "/api/v1/dags/validate"):
        _call(_case(path, "POST", body=big, media_type="application/json"), "scan")  # 413
    _call(_case("/api/v1/scans", "POST", body={"targets": "10.0.0.1", "dag": DAG},
                media_type="application/json"), "scan")  # 403: outside
    _call(_case("/api/v1/ready", "GET"), "read")


def test_the_states_a_schedule_goes_through_answer_as_documented() -> None:
    """A schedule created, read, changed, refused, run and removed by real requests."""
    base, one = "/api/v1/schedules", "/api/v1/schedules/{id}"
    body = {"name": "nightly", "cron": "0 3 * * *", "enabled": False,
            "request": {"targets": "127.0.0.1", "dag": DAG}}
    created = _call(_case(base, "POST", body=body, media_type="application/json"), "admin")
    assert created.status_code == 201, created.text
    sid = {"id": str(json.loads(created.text)["id"])}
    _call(_case(base, "GET"), "read")
    _call(_case(one, "GET", path_parameters=sid), "read")
    _call(_case(one, "PATCH", path_parameters=sid, body={"name": "weekly", "cron": "0 3 * * 1"},
                media_type="application/json"), "admin")  # 200
    _call(_case(one, "PATCH", path_parameters=sid, body={"cron": "61 * * * *"},
                media_type="application/json"), "admin")  # 422: no minute 61
    big = {**body, "request": {"targets": "127.0.0.1", "vars": {"pad": "x" * (CONFIG.max_body + 1)}}}
    _call(_case(base, "POST", body=big, media_type="application/json"), "admin")  # 413
    _call(_case(one, "PATCH", path_parameters=sid, body=big, media_type="application/json"), "admin")
    run = _call(_case(f"{one}/run", "POST", path_parameters=sid), "admin")
    assert run.status_code == 202, run.text
    _wait(json.loads(run.text)["id"])
    allowed = SERVER.allow
    SERVER.allow = AllowList(["127.0.0.2/32"])  # the operator narrowed the allow-list since
    try:
        refused = _call(_case(f"{one}/run", "POST", path_parameters=sid), "admin")
        assert refused.status_code == 422, refused.text
    finally:
        SERVER.allow = allowed
    assert _call(_case(one, "DELETE", path_parameters=sid), "admin").status_code == 204


def test_ready_is_503_once_the_pool_stops(finished: tuple[str, str]) -> None:
    SERVER.manager.stop()
    assert _call(_case("/api/v1/ready", "GET"), "read", unavailable=True).status_code == 503


def test_every_documented_status_was_answered() -> None:
    """Each (operation, status) the document promises, some request above got."""
    documented = {(method.upper(), path, int(code))
                  for path, ops in schema.raw_schema["paths"].items()
                  for method, op in ops.items() for code in op["responses"] if code.isdigit()}
    missing = sorted(documented - SEEN)
    assert not missing, f"documented, never answered: {missing}"
    undocumented = sorted(s for s in SEEN if s[:2] in {d[:2] for d in documented}
                          and s not in documented)
    assert not undocumented, f"answered, not documented: {undocumented}"
