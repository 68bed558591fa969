"""The Flask application: every ``/api/v1`` route, errors always as JSON.

Errors are ``{"error": str, "problems": [...]}`` whatever raised them: a route's own
refusal, Flask's (404, 405, 413), or a bug (500, logged here, never a traceback or an
HTML page to the client).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from pentora_plugins.kit import diff as record_diff
from pentora_plugins.server import _openapi, _results, _spec, _sse, _ui
from pentora_plugins.server._allow import AllowList
from pentora_plugins.server._audit import AuditLog
from pentora_plugins.server._auth import AuthError, authenticate
from pentora_plugins.server._config import ServerConfig
from pentora_plugins.server._manager import ScanManager
from pentora_plugins.server._tokens import TokenStore
from werkzeug.exceptions import HTTPException

from pentora import PentoraError, logger

log = logger.bind(component="server")
API = "/api/v1"
OPEN = (f"{API}/health", f"{API}/openapi.json")
FORMATS = tuple(_results.CONTENT_TYPES)
MAX_BODY_ERROR = "the request body is larger than this server takes (max_body)"
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII: str.isdigit also takes "³" and "٣"
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                      r"([Zz]|[+-][0-9]{2}:[0-9]{2})")


class ApiError(Exception):
    def __init__(self, status: int, error: str, problems: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.problems = status, error, problems or []
        self.headers = headers or {}


@dataclass
class Server:
    """What the routes share."""

    config: ServerConfig
    pm: Any
    scan_parser: Any
    store: Any
    tokens: TokenStore
    audit: AuditLog
    manager: ScanManager
    allow: AllowList
    schedules: Any = None  # _schedule_api.Schedules, when the server runs a scheduler


def _error(status: int, error: str, problems: list[dict[str, Any]] | None = None,
           headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": error, "problems": problems or []})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def create_app(server: Server) -> Flask:
    app = Flask("pentora_server")
    app.config["MAX_CONTENT_LENGTH"] = server.config.max_body
    app.json.sort_keys = False  # type: ignore[attr-defined]
    _errors(app)
    _guard(app, server)
    _scan_routes(app, server)
    _info_routes(app, server)
    if server.schedules is not None:
        from pentora_plugins.server import _schedule_api

        _schedule_api.add_routes(app, server)
    _ui.install(app, server)
    return app


def _errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(e: ApiError) -> Response:
        return _error(e.status, e.error, e.problems, e.headers)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response:
        status = e.code or 500
        text = {413: MAX_BODY_ERROR}.get(
            status, e.description or e.name)
        # Werkzeug's own headers stay (Allow on a 405, as RFC 9110 asks); the body is ours.
        kept = {k: v for k, v in e.get_headers() if k.lower() not in ("content-type",
                                                                      "content-length")}
        return _error(status, text, headers=kept)

    @app.errorhandler(Exception)
    def any_error(e: Exception) -> Response:
        log.opt(exception=e).error("{} {}: {}", request.method, request.path, e)
        return _error(500, "internal error; the server's log has the details")


# The query parameters each route reads (the OpenAPI document lists the same); any other
# is refused, so that a mistyped one (?stauts=failed) is not silently ignored.
QUERY = {"list_scans": frozenset({"status", "since", "limit", "offset"}),
         "results": frozenset({"format"}), "events": frozenset({"last_event_id"})}


def _guard(app: Flask, server: Server) -> None:
    @app.before_request
    def check() -> None:
        g.principal = None
        if not request.path.startswith(API) or request.path in OPEN:
            return
        scope = "read" if request.method in ("GET", "HEAD") else "scan"
        if request.method == "DELETE":
            scope = "admin"
        try:
            g.principal = authenticate(request, server.tokens, scope)
        except AuthError as e:
            headers = {"WWW-Authenticate": 'Bearer realm="pentora"'} if e.status == 401 else {}
            raise ApiError(e.status, e.message, headers=headers) from None

    @app.before_request
    def check_query() -> None:
        if not request.path.startswith(API) or request.endpoint is None:
            return
        known = QUERY.get(request.endpoint, frozenset())
        unknown = sorted(k for k in request.args if k not in known)
        if unknown:
            raise ApiError(422, f"unknown query parameter '{unknown[0]}'; this route takes "
                                + (", ".join(sorted(known)) or "none"),
                           [{"message": f"unknown query parameter '{k}'", "key": k}
                            for k in unknown])


def _body() -> Any:
    most = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and "chunked" in request.headers.get(
            "Transfer-Encoding", "").lower():
        # Werkzeug stops a chunked body at max_body without a word: the cut body could still
        # parse (trailing padding), so read one byte more and refuse.
        data = request.environ["wsgi.input"].read(most + 1)
        if len(data) > most:
            raise ApiError(413, MAX_BODY_ERROR)
    else:
        data = request.get_data(cache=True)  # 413 beyond max_body, from Flask
    if not data:
        raise ApiError(422, "the request needs a JSON body")
    import json

    try:
        body = json.loads(data)
    except ValueError as e:
        raise ApiError(422, f"the body is not JSON: {e}") from None
    except RecursionError:  # [[[[…]]]] within max_body: the parser's own recursion gives up
        body = None
    if body is None and data.strip() != b"null" or _depth(body) > MAX_DEPTH:
        raise ApiError(422, f"the body nests objects and lists more than {MAX_DEPTH} deep; "
                            "a scan request or a DAG needs far fewer levels",
                       [{"message": f"nesting over {MAX_DEPTH} levels", "key": None}])
    return body


# Far beyond what a scan request or a DAG needs (a node config is a few levels); shallow
# enough that the checks walking the request recursively stay far from Python's limit.
MAX_DEPTH = 64


def _depth(value: Any) -> int:
    """How deep lists and objects nest in ``value``, without recursing (it may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict)
                                                   else item))
    return deepest


def _client() -> str | None:
    return request.remote_addr


def _who() -> str | None:
    return g.principal.name if g.get("principal") is not None else None


def _int(name: str, default: int, most: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if not _DIGITS.fullmatch(text) or int(text) > most:
        raise ApiError(422, f"{name}: a whole number from 0 to {most}", [{"message": f"got '{text}'",
                                                                         "key": name}])
    return int(text)


def _since() -> float | None:
    text = request.args.get("since")
    if text is None:
        return None
    try:
        # RFC 3339, as the OpenAPI document's date-time says: fromisoformat alone would
        # take a bare date, or a time without its offset (read in the server's zone).
        if not _RFC3339.fullmatch(text):
            raise ValueError(text)
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ApiError(422, "since: an ISO 8601 time, e.g. 2025-01-31T12:00:00+00:00",
                       [{"message": f"got '{text}'", "key": "since"}]) from None


def _links(scan_id: str) -> dict[str, str]:
    base = f"{API}/scans/{scan_id}"
    return {"self": base, "events": f"{base}/events", "results": f"{base}/results",
            "cancel": f"{base}/cancel"}


def _scan_routes(app: Flask, server: Server) -> None:  # noqa: C901 - one closure per route
    manager, store = server.manager, server.store

    def queued_item(job: Any) -> dict[str, Any]:
        return {"id": job.id, "dag": job.dag.name, "status": job.status,
                "started_at": None, "finished_at": None, "runs": 0,
                "targets": job.targets, "records": sum(job.log.counts.values()),
                "findings": job.log.counts.get("vulnerability", 0),
                **({"error": job.error} if job.error else {})}

    @app.post(f"{API}/scans")
    def submit() -> Response:
        body = _body()
        from pentora import Orchestrator

        orch = Orchestrator(pm=server.pm)
        try:
            spec = _spec.check_request(orch, server.scan_parser, body, server.allow,
                                       server.config.max_dag_nodes)
        except _spec.RequestError as e:
            if e.status == 403:
                server.audit.write("refused", _who(), _client(), targets=body.get("targets"),
                                   problems=[p["message"] for p in e.problems])
            raise ApiError(e.status, e.error, e.problems) from None
        job = manager.submit(spec.dag, spec.variables, spec.targets)
        server.audit.write("start", _who(), _client(), job.id, spec.targets)
        response = jsonify({"id": job.id, "status": job.status, "links": _links(job.id)})
        response.status_code = 201
        response.headers["Location"] = f"{API}/scans/{job.id}"
        return response

    @app.get(f"{API}/scans")
    def list_scans() -> Response:
        status = request.args.get("status") or None
        since = _since()
        limit, offset = _int("limit", 50, 1000), _int("offset", 0, 1 << 30)
        pending = [queued_item(j) for j in reversed(manager.queue)
                   if status in (None, "queued") and (since is None or j.submitted >= since)]
        stored = store.list(status=status, since=since, limit=limit + offset, offset=0)
        items = (pending + stored)[offset:offset + limit]
        total = len(pending) + store.count(status=status, since=since)
        return jsonify({"scans": items, "total": total})

    def found(scan_id: str) -> dict[str, Any]:
        shown = store.get(scan_id)
        if shown is None:
            # A scan that never reached the store: queued, or one that could not start
            # (e.g. no Celery worker answers), with the reason.
            job = manager.jobs.get(scan_id)
            if job is None:
                raise ApiError(404, f"no scan '{scan_id}'; see GET {API}/scans")
            return {"scan": queued_item(job), "nodes": [
                {"node": n, "status": s} for n, s in job.log.nodes.items()], "counts": {}}
        return shown

    @app.get(f"{API}/scans/<scan_id>")
    def get_scan(scan_id: str) -> Response:
        shown = found(scan_id)
        job = manager.active(scan_id)
        if job is not None:
            shown["scan"]["status"] = job.status
            shown["counts"] = dict(job.log.counts) or shown.get("counts", {})
            shown["progress"] = job.log.overall()
        return jsonify(shown)

    @app.post(f"{API}/scans/<scan_id>/cancel")
    def cancel(scan_id: str) -> Response:
        found(scan_id)
        if not manager.cancel(scan_id):
            raise ApiError(409, f"scan {scan_id} is not queued or running; nothing to cancel")
        server.audit.write("cancel", _who(), _client(), scan_id)
        return _accepted(scan_id, "cancelling")

    @app.post(f"{API}/scans/<scan_id>/resume")
    def resume(scan_id: str) -> Response:
        found(scan_id)
        try:
            job = manager.resume(scan_id)
        except PentoraError as e:
            raise ApiError(409, str(e)) from None
        server.audit.write("resume", _who(), _client(), scan_id, job.targets)
        return _accepted(scan_id, job.status)

    @app.delete(f"{API}/scans/<scan_id>")
    def delete(scan_id: str) -> Response:
        found(scan_id)
        if manager.active(scan_id) is not None:
            raise ApiError(409, f"scan {scan_id} is {manager.jobs[scan_id].status}; cancel it "
                                f"first (POST {API}/scans/{scan_id}/cancel)")
        store.delete(scan_id)
        manager.delete_queued(scan_id)
        server.audit.write("delete", _who(), _client(), scan_id)
        return Response(status=204)

    @app.get(f"{API}/scans/<scan_id>/results")
    def results(scan_id: str) -> Response:
        fmt = request.args.get("format", "jsonl")
        if fmt not in FORMATS:
            raise ApiError(422, f"format: one of {', '.join(FORMATS)}",
                           [{"message": f"got '{fmt}'", "key": "format"}])
        shown = store.get(scan_id)
        if shown is None:
            found(scan_id)
            raise ApiError(409, f"scan {scan_id} has not started; its results come once it runs")
        lines = _results.replay_lines(shown, store.records(scan_id))
        body, headers = _results.render(server.pm.registry, fmt, lines)
        return Response(body, headers=headers)

    @app.get(f"{API}/scans/<old>/diff/<new>")
    def diff(old: str, new: str) -> Response:
        for scan_id in (old, new):
            if store.get(scan_id) is None:
                raise ApiError(404, f"no stored scan '{scan_id}'; see GET {API}/scans")
        changes = record_diff.diff(store.records(old), store.records(new))
        return jsonify({"old": old, "new": new, **changes})

    @app.get(f"{API}/scans/<scan_id>/events")
    def events(scan_id: str) -> Response:
        job = manager.jobs.get(scan_id)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        if job is None:
            shown = found(scan_id)
            return Response(_sse.stored(shown), mimetype="text/event-stream", headers=headers)
        # ?last_event_id=N: as the header, for a browser's EventSource, which cannot send
        # one on its first connection (the UI asks for every event from the start)
        last = request.headers.get("Last-Event-ID")
        source = "Last-Event-ID"
        if last is None and "last_event_id" in request.args:
            last, source = request.args["last_event_id"], "last_event_id"
        if last is not None and not _DIGITS.fullmatch(last.strip()):
            raise ApiError(422, f"{source}: the id of an event of this stream (1, 2, …)",
                           [{"message": f"got '{last[:40]}'", "key": source}])
        last_id = int(last.strip()) if last is not None else None
        stream = _sse.stream(job.log, lambda: job.status, last_id)
        return Response(stream, mimetype="text/event-stream", headers=headers)


def _accepted(scan_id: str, status: str) -> Response:
    response = jsonify({"id": scan_id, "status": status, "links": _links(scan_id)})
    response.status_code = 202
    return response


def _info_routes(app: Flask, server: Server) -> None:
    @app.get(f"{API}/health")
    def health() -> Response:
        return jsonify({"status": "ok"})

    @app.get(f"{API}/ready")
    def ready() -> Response:
        try:
            server.store.count()
        except Exception as e:  # whatever keeps the store from opening: not ready
            return _error(503, f"the scan store cannot be read: {e}")
        if not server.manager.running():
            return _error(503, "the scan pool is stopping")
        return jsonify({"status": "ready", "time": time.time()})

    @app.get(f"{API}/openapi.json")
    def openapi() -> Response:
        return jsonify(_openapi.document())

    @app.post(f"{API}/dags/validate")
    def validate() -> Response:
        from pentora import Orchestrator

        try:
            nodes = _spec.check_dag(Orchestrator(pm=server.pm), _body(), server.config.max_dag_nodes)
        except _spec.RequestError as e:
            raise ApiError(e.status, e.error, e.problems) from None
        return jsonify({"ok": True, "nodes": nodes, "problems": []})

    def info(name: str) -> Any:
        import pentora.cli
        from pentora import Orchestrator

        return getattr(pentora.cli, name)(Orchestrator(pm=server.pm))

    @app.get(f"{API}/modules")
    def modules() -> Response:
        return jsonify(info("modules_data"))

    @app.get(f"{API}/profiles")
    def profiles() -> Response:
        return jsonify(info("profiles_data"))

    @app.get(f"{API}/plugins")
    def plugins() -> Response:
        return jsonify(info("plugins_data"))
