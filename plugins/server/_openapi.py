"""The OpenAPI 3.1 document of ``/api/v1``: every route, every status it can answer."""

from __future__ import annotations

from typing import Any

from pentora import __version__

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {401: "no token, or a bad one", 403: "the token's scope is too weak, or a target is "
            "outside the allow-list", 404: "no such scan", 409: "the scan's state forbids it",
            413: "the body is over max_body", 422: "the request is invalid (every problem "
            "listed)", 500: "internal error", 503: "not ready"}
    return {str(c): _json(ERROR, text[c]) for c in codes}


def _op(summary: str, ok: dict[str, Any], *codes: int, body: Any = None,
        params: list[dict[str, Any]] | None = None, open_: bool = False) -> dict[str, Any]:
    # A 500 is a bug, never a promise: "default" describes its body without listing it
    # among the statuses an operation answers.
    op: dict[str, Any] = {"summary": summary, "responses": {
        **ok, **_errors(*codes), "default": _json(ERROR, "internal error")}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    if open_:
        op["security"] = []
    return op


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _schedule_paths(read: tuple[int], auth: tuple[int, int]) -> dict[str, Any]:
    """Every token may read the schedules; changing them needs admin (403 for others)."""
    one = {"$ref": "#/components/schemas/Schedule"}
    body = {"$ref": "#/components/schemas/ScheduleRequest"}
    base = "/api/v1/schedules"
    return {
        base: {
            "get": _op("list schedules", {"200": _json({"type": "object", "properties": {
                "schedules": {"type": "array", "items": one}}}, "the schedules")}, *read),
            "post": _op("create a schedule (admin); its scan request is checked as POST /scans "
                        "checks one", {"201": _json(one, "created; Location names it")},
                        *auth, 413, 422, body=body)},
        f"{base}/{{id}}": {
            "get": _op("a schedule", {"200": _json(one, "the schedule")}, *read, 404),
            "patch": _op("change a schedule's fields (admin)", {"200": _json(one, "changed")},
                         *auth, 404, 413, 422, body={**body, "required": []}),
            "delete": _op("remove a schedule (admin)", {"204": {"description": "removed"}},
                          *auth, 404)},
        f"{base}/{{id}}/run": {"post": _op(
            "run now (admin): submit the schedule's scan at once, its cron unchanged",
            {"202": _json({"type": "object", "properties": {
                "id": {"type": "string"}, "schedule": {"type": "string"},
                "links": {"type": "object"}}}, "the scan started")}, *auth, 404, 422)},
    }


def _schedule_schemas() -> dict[str, Any]:
    request = {"$ref": "#/components/schemas/ScanRequest"}
    fields = {"name": {"type": "string"}, "cron": {
        "type": "string", "description": "five columns, or @daily…",
        "pattern": r"^\s*(@[a-z]+|\S+(\s+\S+){4})\s*$"},
              "timezone": {"type": "string", "default": "UTC"}, "request": request,
              "enabled": {"type": "boolean", "default": True}}
    times = {k: {"type": ["string", "null"], "format": "date-time"}
             for k in ("next_run", "last_run", "created_at")}
    ids = {k: {"type": ["string", "null"]} for k in (
        "id", "last_scan", "last_scan_id", "baseline_scan_id", "last_error", "created_by")}
    return {
        "ScheduleRequest": {"type": "object", "additionalProperties": False,
                            "required": ["name", "cron", "request"], "properties": fields},
        "Schedule": {"type": "object", "properties": {**fields, **times, **ids,
                                                      "links": {"type": "object"}}},
    }


def document() -> dict[str, Any]:
    obj = {"type": "object"}
    scan_ref = {"$ref": "#/components/schemas/ScanItem"}
    accepted = {"$ref": "#/components/schemas/Submitted"}
    # Every token may read: a GET is refused only without a valid token. A POST or a
    # DELETE may be refused for the token's scope too.
    read, auth = (401,), (401, 403)
    sid = "/api/v1/scans/{id}"
    paths: dict[str, Any] = {
        "/api/v1/health": {"get": _op("liveness", {"200": _json({
            "type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
            "ok")}, open_=True)},
        "/api/v1/ready": {"get": _op("readiness: the store opens and the pool runs",
                                     {"200": _json(obj, "ready")}, *read, 503)},
        "/api/v1/openapi.json": {"get": _op("this document", {"200": _json(obj, "OpenAPI 3.1")},
                                            open_=True)},
        "/api/v1/scans": {
            "post": _op("submit a scan", {"201": _json({"$ref": "#/components/schemas/Submitted"},
                                                       "created; Location names it")},
                        *auth, 413, 422, body={"$ref": "#/components/schemas/ScanRequest"}),
            "get": _op("list scans, newest first", {"200": _json({
                "type": "object", "required": ["scans", "total"], "properties": {
                    "scans": {"type": "array", "items": scan_ref},
                    "total": {"type": "integer", "minimum": 0}}}, "the scans")},
                *read, 422, params=[
                    _q("status", {"type": "string"}, "queued, running, completed, …"),
                    _q("since", {"type": "string", "format": "date-time"},
                       "started at or after (RFC 3339)"),
                    _q("limit", {"type": "integer", "default": 50, "minimum": 0,
                                 "maximum": 1000}, "page size"),
                    _q("offset", {"type": "integer", "default": 0, "minimum": 0,
                                  "maximum": 1 << 30}, "skip this many")]),
        },
        sid: {"get": _op("a scan: status, nodes, counts, progress", {"200": _json(
                  {"$ref": "#/components/schemas/Scan"}, "the scan")}, *read, 404),
              "delete": _op("remove a stored scan (admin)", {"204": {"description": "removed"}},
                            *auth, 404, 409)},
        f"{sid}/cancel": {"post": _op("stop a queued or running scan",
                                      {"202": _json(accepted, "cancelling")}, *auth, 404, 409)},
        f"{sid}/resume": {"post": _op("run an interrupted scan again, from where it stopped",
                                      {"202": _json(accepted, "queued")}, *auth, 404, 409)},
        f"{sid}/results": {"get": _op("the report", {"200": {"description": "the report", "content": {
            t: {"schema": {"type": "object"} if t == "application/json" else {"type": "string"}}
            for t in ("application/x-ndjson", "application/json", "text/csv", "text/markdown",
                      "application/xml", "text/html")}}}, *read, 404, 409, 422, params=[
            _q("format", {"enum": ["jsonl", "json", "csv", "md", "xml", "html"]}, "default jsonl")])},
        "/api/v1/scans/{old}/diff/{new}": {"get": _op(
            "what changed between two stored scans", {"200": _json(obj, "as scans diff --format json")},
            *read, 404)},
        f"{sid}/events": {"get": _op("live events (Server-Sent Events)", {"200": {
            "description": "state first, then node_*, record, scan_end; id per scan",
            "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/Event"}}}}},
            *read, 404, 422,
            params=[{"name": "Last-Event-ID", "in": "header", "required": False,
                     "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                     "description": "resume after this event"},
                    {"name": "last_event_id", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                     "description": "as Last-Event-ID, for EventSource (0: every event)"}])},
        "/api/v1/dags/validate": {"post": _op("validate a DAG", {"200": _json({
            "type": "object", "required": ["ok", "nodes", "problems"], "properties": {
                "ok": {"const": True}, "nodes": {"type": "integer", "minimum": 1},
                "problems": {"type": "array", "maxItems": 0}}}, "valid")},
            *auth, 413, 422, body={"$ref": "#/components/schemas/ValidateRequest"})},
        "/api/v1/modules": {"get": _op("module types", {"200": _json({"type": "array"}, "types")}, *read)},
        "/api/v1/profiles": {"get": _op("profiles", {"200": _json({"type": "array"}, "profiles")}, *read)},
        "/api/v1/plugins": {"get": _op("plugins", {"200": _json(obj, "plugins")}, *read)},
    }
    paths.update(_schedule_paths(read, auth))
    for path in list(paths):
        if "{" in path:
            names = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
            for op in paths[path].values():
                op.setdefault("parameters", [])
                op["parameters"] += [{"name": n, "in": "path", "required": True,
                                      "schema": {"type": "string"}} for n in names]
    return {
        "openapi": "3.1.0",
        "info": {"title": "pentora server", "version": __version__},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "problems"], "properties": {
                    "error": {"type": "string"}, "problems": {"type": "array", "items": {
                        "type": "object", "properties": {k: {"type": ["string", "integer", "null"]}
                                                         for k in ("message", "node", "source",
                                                                   "line", "key", "target")}}}}},
                "ScanRequest": {"type": "object", "additionalProperties": False, "properties": {
                    "targets": {"oneOf": [{"type": "string"}, {"type": "array",
                                                               "items": {"type": "string"}}]},
                    "ports": {"type": "string"}, "profile": {"type": "string"},
                    "dag": {"type": "object"}, "vars": {"type": "object"},
                    "name": {"type": "string"}},
                    "not": {"required": ["profile", "dag"]}},
                "Event": {"type": "object", "required": ["id", "event", "data"], "properties": {
                    "id": {"type": "string", "pattern": "^[0-9]+$"},
                    "event": {"enum": ["state", "node_start", "node_progress", "node_complete",
                                       "node_failed", "node_skipped", "node_cancelled", "record",
                                       "scan_end"]},
                    "data": {"type": "string", "contentMediaType": "application/json"}}},
                "ValidateRequest": {"type": "object", "additionalProperties": False,
                                    "required": ["dag"], "properties": {
                                        "dag": {"type": "object"}, "vars": {"type": "object"}}},
                "Submitted": {"type": "object", "required": ["id", "status", "links"],
                              "properties": {"id": {"type": "string"}, "status": {"enum": [
                                  "queued", "running", "cancelling", "cancelled"]},
                                  "links": {"type": "object", "additionalProperties": {
                                      "type": "string"}}}},
                **_schedule_schemas(),
                "ScanItem": {"type": "object", "required": ["id", "status"], "properties": {
                    **{k: {"type": ["string", "null"]} for k in (
                        "id", "status", "started_at", "finished_at")},
                    "dag": {"type": ["string", "object", "null"],
                            "description": "its name in a list, the DAG itself in a scan"},
                    **{k: {"type": ["integer", "null"], "minimum": 0} for k in (
                        "runs", "records", "findings")}, "targets": {}}},
                "Scan": {"type": "object", "required": ["scan", "nodes"], "properties": {
                    "scan": {"$ref": "#/components/schemas/ScanItem"},
                    "nodes": {"type": "array", "items": {"type": "object"}},
                    "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "progress": {"type": ["object", "null"]}}},
            },
        },
    }
