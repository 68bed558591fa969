"""Schedules in the server: the Scheduler wired to the ScanManager and the webhooks, and
the ``/api/v1/schedules`` routes.

A schedule's scan request is checked exactly as ``POST /scans`` checks one (the same
``_spec.check_request``, allow-list included) when the schedule is created or its request
changed, and again at each run (the allow-list or the plugins may have changed since).
When a scheduled scan ends, the Scheduler compares it with the schedule's previous
completed scan and the changes go to the configured webhooks.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, jsonify
from pentora_plugins.server import _alerts, _spec
from pentora_plugins.server._schedules import Schedule, ScheduleError, Scheduler, ScheduleStore
from pentora_plugins.server._webhooks import Webhook, WebhookSender

from pentora import Orchestrator, logger

log = logger.bind(component="server")
API = "/api/v1"
INTERRUPTED = "interrupted by a server restart"


class Schedules:
    """The schedule store, the Scheduler that fires it and the webhooks it alerts."""

    def __init__(self, server: Any, state: Any) -> None:
        self.server = server
        self.store = ScheduleStore(state)
        self.sender = WebhookSender([Webhook.from_config(w) for w in server.config.webhooks])
        finished = _alerts.on_scan_end(server.store.records, self.sender.send)
        self.scheduler = Scheduler(self.store, self.submit, finished)
        server.manager.ended.append(self.scheduler.scan_finished)

    def start(self) -> None:
        self.sender.start()
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()
        self.sender.join(timeout=5)  # alerts already queued get their chance
        self.sender.stop()

    def check(self, request: Any) -> _spec.ScanSpec:
        """The request checked as ``POST /scans`` checks one; ``_spec.RequestError`` else."""
        server = self.server
        return _spec.check_request(Orchestrator(pm=server.pm), server.scan_parser, request,
                                   server.allow, server.config.max_dag_nodes)

    def submit(self, request: dict[str, Any], schedule: Schedule) -> str:
        """The Scheduler's ``submit``: a scan of the schedule's request, as POST /scans."""
        try:
            spec = self.check(request)
        except _spec.RequestError as e:
            messages = "; ".join(p["message"] for p in e.problems)
            raise ScheduleError(f"{e.error}: {messages}", "request") from None
        job = self.server.manager.submit(spec.dag, spec.variables, spec.targets)
        self.server.audit.write("start", f"schedule:{schedule.id}", None, job.id, spec.targets,
                                schedule=schedule.id)
        return job.id

    def run_now(self, schedule: Schedule) -> str:
        """Run a schedule at once ("run now"), its cron times unchanged."""
        from pentora_plugins.server._schedules import utcnow

        scan_id = self.submit(schedule.request, schedule)
        schedule.last_run, schedule.last_scan_id, schedule.last_error = utcnow(), scan_id, None
        self.store.save()
        return scan_id

    def interrupted(self, scan_ids: list[str], resumed: bool) -> None:
        """Scans a stopped server left interrupted: a schedule whose last run is one says
        so. Its cron already moved past that run, so it is not run again for it; resumed
        (``--resume-interrupted``), it still alerts when it completes."""
        hit = [s for s in self.store.list() if s.last_scan_id in scan_ids]
        for schedule in hit:
            schedule.last_error = (f"scan {schedule.last_scan_id} {INTERRUPTED}"
                                   + ("; resumed" if resumed else
                                      f"; resume it with POST {API}/scans/"
                                      f"{schedule.last_scan_id}/resume"))
        if hit:
            self.store.save()


def view(schedule: Schedule) -> dict[str, Any]:
    base = f"{API}/schedules/{schedule.id}"
    return {**schedule.to_dict(), "last_scan": schedule.last_scan_id,
            "links": {"self": base, "run": f"{base}/run",
                      **({"last_scan": f"{API}/scans/{schedule.last_scan_id}"}
                         if schedule.last_scan_id else {})}}


def add_routes(app: Flask, server: Any) -> None:  # noqa: C901 - one closure per route
    from pentora_plugins.server._app import ApiError, _body, _client, _who

    schedules: Schedules = server.schedules

    def admin() -> None:
        # The guard lets a scan token POST; schedules run scans unattended: admin only.
        principal = g.get("principal")
        if principal is None or not principal.allows("admin"):
            scope = principal.scope if principal is not None else "none"
            raise ApiError(403, f"token '{_who()}' has scope '{scope}'; schedules need 'admin'")

    def problems(e: ScheduleError) -> list[dict[str, Any]]:
        return [{"message": p["message"], "node": None, "source": "request", "line": None,
                 "key": p["key"]} for p in e.problems]

    def checked_request(body: Any) -> None:
        if isinstance(body, dict) and isinstance(body.get("request"), dict):
            try:
                schedules.check(body["request"])
            except _spec.RequestError as e:
                for p in e.problems:
                    p["key"] = f"request.{p['key']}" if p.get("key") else "request"
                if e.status == 403:
                    server.audit.write("refused", _who(), _client(),
                                       targets=body["request"].get("targets"),
                                       problems=[p["message"] for p in e.problems])
                raise ApiError(e.status, f"the schedule's scan request: {e.error}",
                               e.problems) from None

    def get(schedule_id: str) -> Schedule:
        schedule = schedules.store.get(schedule_id)
        if schedule is None:
            raise ApiError(404, f"no schedule '{schedule_id}'; see GET {API}/schedules")
        return schedule

    def checked_body(partial: bool) -> dict[str, Any]:
        """The request's schedule fields (all of them, or those a PATCH changes), and its
        scan request checked as ``POST /scans`` checks one; 422 else."""
        body = _body()
        try:
            _schedule_fields(body, partial=partial)
        except ScheduleError as e:
            raise ApiError(422, "the schedule is invalid", problems(e)) from None
        checked_request(body)
        return body

    @app.get(f"{API}/schedules")
    def list_schedules() -> Response:
        return jsonify({"schedules": [view(s) for s in schedules.store.list()]})

    @app.post(f"{API}/schedules")
    def create_schedule() -> Response:
        admin()
        body = checked_body(partial=False)
        schedule = schedules.store.create(body, created_by=_who())
        schedules.scheduler.wake()
        server.audit.write("schedule_create", _who(), _client(), None,
                           schedule.request.get("targets"), schedule=schedule.id,
                           cron=schedule.cron)
        response = jsonify(view(schedule))
        response.status_code = 201
        response.headers["Location"] = f"{API}/schedules/{schedule.id}"
        return response

    @app.get(f"{API}/schedules/<schedule_id>")
    def get_schedule(schedule_id: str) -> Response:
        return jsonify(view(get(schedule_id)))

    @app.patch(f"{API}/schedules/<schedule_id>")
    def patch_schedule(schedule_id: str) -> Response:
        admin()
        get(schedule_id)
        body = checked_body(partial=True)
        schedule = schedules.store.update(schedule_id, body)
        schedules.scheduler.wake()
        server.audit.write("schedule_update", _who(), _client(), None,
                           schedule.request.get("targets"), schedule=schedule_id,
                           fields=sorted(body))
        return jsonify(view(schedule))

    @app.delete(f"{API}/schedules/<schedule_id>")
    def delete_schedule(schedule_id: str) -> Response:
        admin()
        get(schedule_id)
        schedules.store.delete(schedule_id)
        schedules.scheduler.wake()
        server.audit.write("schedule_delete", _who(), _client(), None, schedule=schedule_id)
        return Response(status=204)

    @app.post(f"{API}/schedules/<schedule_id>/run")
    def run_schedule(schedule_id: str) -> Response:
        admin()
        schedule = get(schedule_id)
        try:
            scan_id = schedules.run_now(schedule)
        except ScheduleError as e:  # the request no longer passes (allow-list changed…)
            raise ApiError(422, "the schedule's scan request is refused now", problems(e)) from None
        server.audit.write("schedule_run", _who(), _client(), scan_id,
                           schedule.request.get("targets"), schedule=schedule_id)
        response = jsonify({"id": scan_id, "schedule": schedule_id, "links": {
            "scan": f"{API}/scans/{scan_id}", "events": f"{API}/scans/{scan_id}/events"}})
        response.status_code = 202
        return response


def _schedule_fields(body: Any, partial: bool) -> None:
    from pentora_plugins.server._schedules import validate

    validate(body, partial=partial)
