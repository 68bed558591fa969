"""Scheduled scans of ``pentora server``: a cron expression, the scan request to submit,
kept in ``STATE/schedules.json`` and fired by one greenlet that sleeps until the next
due run.

Runs missed while the server was down are not replayed one by one: a schedule whose
``next_run`` has passed runs once at start, then follows its cron from now on (what
Airflow calls ``catchup=False``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pentora import PentoraError, atomic_output, logger

log = logger.bind(component="server")

UTC = dt.UTC
FILE_NAME = "schedules.json"
CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
CRON_RANGES = ("0-59", "0-23", "1-31", "1-12 or jan-dec", "0-7 or sun-sat")
# croniter reads a sixth column as seconds and a seventh as the year: a schedule is a
# classic five-column crontab line (or one of the @ nicknames), so that it reads the same
# to anyone who knows cron.
NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# The longest the scheduler sleeps in one go: a wall clock set forward or back (NTP, a
# suspended laptop) is noticed within this, without waking every second.
MAX_SLEEP = 300.0

Submit = Callable[[dict[str, Any], "Schedule"], str]
Finished = Callable[["Schedule", str], None]


class ScheduleError(PentoraError):
    """A schedule that cannot be used; ``problems`` lists ``{"key", "message"}`` for each
    field at fault, every one at once."""

    def __init__(self, problems: list[dict[str, str]] | str, key: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [{"key": key or "", "message": problems}]
        self.problems = problems
        super().__init__("; ".join(f"{p['key']}: {p['message']}" if p["key"] else p["message"]
                                   for p in problems))


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


def check_cron(expr: object) -> str:
    """The expression, stripped, or a ``ScheduleError`` on ``cron`` saying which column is
    wrong and why, in words rather than croniter's."""
    from croniter import CroniterError, croniter

    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError('expected a cron expression such as "*/15 * * * *" '
                            "(minute hour day-of-month month day-of-week)", "cron")
    text = " ".join(expr.split())
    if text.startswith("@"):
        if text.lower() not in NICKNAMES:
            raise ScheduleError(f"unknown cron nickname {text!r}: use one of {', '.join(NICKNAMES)}",
                                "cron")
        return text.lower()
    columns = text.split(" ")
    if len(columns) != 5:
        raise ScheduleError(f"{text!r} has {len(columns)} columns; a cron expression has 5: "
                            "minute hour day-of-month month day-of-week (e.g. \"0 3 * * 1\")",
                            "cron")
    for i, column in enumerate(columns):
        # Each column alone, the others '*': croniter's own message names no column.
        probe = " ".join(column if j == i else "*" for j in range(5))
        try:
            croniter(probe)
        except CroniterError as e:
            raise ScheduleError(f"{text!r}: the {CRON_FIELDS[i]} column {column!r} is not valid "
                                f"({_reason(str(e))}; it takes {CRON_RANGES[i]}, *, "
                                "lists a,b, ranges a-b and steps */n)", "cron") from e
    try:
        croniter(text).get_next(dt.datetime)
    except CroniterError as e:  # each column fine, together impossible: 0 0 31 2 *
        raise ScheduleError(f"{text!r} never matches a date", "cron") from e
    return text


def _reason(message: str) -> str:
    """croniter's message without the expression it repeats in brackets."""
    cleaned = message.split("]", 1)[1] if message.startswith("[") and "]" in message else message
    cleaned = re.sub(r"\s*in field \d+", "", cleaned).strip()
    cleaned = cleaned.removeprefix("is not acceptable").strip(" ,")
    return cleaned or "not understood"


def check_timezone(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ScheduleError("expected an IANA time zone name such as \"UTC\" or \"Europe/Paris\"",
                            "timezone")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleError(f"unknown time zone {name!r}: use an IANA name such as \"UTC\" or "
                            "\"Europe/Paris\"", "timezone") from e
    return name


def next_run(cron: str, timezone: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after ``after`` the cron matches, read as wall-clock time in
    ``timezone``; returned in UTC."""
    from croniter import croniter

    local = after.astimezone(ZoneInfo(timezone))
    found = croniter(cron, local).get_next(dt.datetime)
    return found.astimezone(UTC)


def _iso(when: dt.datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat() if when else None


def _time(text: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text).astimezone(UTC) if text else None


@dataclass
class Schedule:
    """A scan request submitted at each time its cron matches."""

    id: str
    name: str
    cron: str
    request: dict[str, Any]
    timezone: str = "UTC"
    enabled: bool = True
    next_run: dt.datetime | None = None
    last_run: dt.datetime | None = None
    last_scan_id: str | None = None
    # The last scan of this schedule that completed: what the next one is compared with.
    baseline_scan_id: str | None = None
    last_error: str | None = None
    created_by: str | None = None
    created_at: dt.datetime = field(default_factory=utcnow)

    TIMES = ("next_run", "last_run", "created_at")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in self.TIMES:
            out[key] = _iso(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in cls.TIMES:
            if key in values:
                values[key] = _time(values[key])
        return cls(**values)


def validate(data: object, *, partial: bool = False) -> dict[str, Any]:
    """A schedule's user-given fields (``name``, ``cron``, ``timezone``, ``request``,
    ``enabled``) checked; every problem at once in a ``ScheduleError``. ``partial``: only
    the fields present (a PATCH)."""
    if not isinstance(data, dict):
        raise ScheduleError("expected an object with name, cron and request")
    problems: list[dict[str, str]] = []
    out: dict[str, Any] = {}
    allowed = ("name", "cron", "timezone", "request", "enabled")
    for key in sorted(set(data) - set(allowed)):
        problems.append({"key": key, "message": f"unknown field; expected {', '.join(allowed)}"})
    required = () if partial else ("name", "cron", "request")
    for key in required:
        if key not in data:
            problems.append({"key": key, "message": "required"})
    checks: dict[str, Callable[[Any], Any]] = {
        "name": _check_name, "cron": check_cron, "timezone": check_timezone,
        "request": _check_request, "enabled": _check_enabled}
    for key, check in checks.items():
        if key in data:
            try:
                out[key] = check(data[key])
            except ScheduleError as e:
                problems += [{"key": key, "message": p["message"]} for p in e.problems]
    if problems:
        raise ScheduleError(problems)
    return out


def _check_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ScheduleError("expected a non-empty name of at most 200 characters")
    return value.strip()


def _check_request(value: Any) -> dict[str, Any]:
    # What a scan request holds is checked when it is submitted (allow-list, DAG, vars),
    # as for POST /scans: the rules may change between now and the run.
    if not isinstance(value, dict) or not value:
        raise ScheduleError('expected the scan request as an object, e.g. {"targets": "127.0.0.1"}')
    return value


def _check_enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ScheduleError(f"expected true or false, got {value!r}")
    return value


class ScheduleStore:
    """The schedules, in memory and in ``STATE/schedules.json`` (mode 0600, replaced whole
    at each change)."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self._schedules: dict[str, Schedule] = {}
        self.load()

    def load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._schedules = {}
            return
        try:
            data = json.loads(text)
            items = [Schedule.from_dict(d) for d in data["schedules"]]
        except (ValueError, KeyError, TypeError) as e:
            raise ScheduleError(f"{self.path}: not a schedule file pentora wrote ({e}); move it "
                                "aside to start with no schedules") from e
        self._schedules = {s.id: s for s in items}

    def save(self) -> None:
        data = {"version": 1, "schedules": [s.to_dict() for s in self._schedules.values()]}
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with atomic_output(self.path, line_buffering=False) as f:
            os.fchmod(f.fileno(), 0o600)  # scan requests name targets: the owner's only
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")

    def list(self) -> list[Schedule]:
        return sorted(self._schedules.values(), key=lambda s: (s.created_at, s.id))

    def get(self, schedule_id: str) -> Schedule | None:
        return self._schedules.get(schedule_id)

    def create(self, data: object, *, created_by: str | None = None,
               now: dt.datetime | None = None) -> Schedule:
        values = validate(data)
        now = now or utcnow()
        schedule = Schedule(id=uuid.uuid4().hex[:12], created_by=created_by, created_at=now,
                            **values)
        schedule.next_run = next_run(schedule.cron, schedule.timezone, now)
        self._schedules[schedule.id] = schedule
        self.save()
        return schedule

    def update(self, schedule_id: str, data: object, *, now: dt.datetime | None = None) -> Schedule:
        schedule = self._schedules.get(schedule_id)
        if schedule is None:
            raise ScheduleError(f"no schedule {schedule_id!r}", "id")
        values = validate(data, partial=True)
        resumed = values.get("enabled") is True and not schedule.enabled
        for key, value in values.items():
            setattr(schedule, key, value)
        if resumed or {"cron", "timezone"} & values.keys():
            # From now on: a schedule turned back on does not catch up on its pause.
            schedule.next_run = next_run(schedule.cron, schedule.timezone, now or utcnow())
        self.save()
        return schedule

    def delete(self, schedule_id: str) -> bool:
        if self._schedules.pop(schedule_id, None) is None:
            return False
        self.save()
        return True


class Scheduler:
    """Fires the store's due schedules from one greenlet.

    ``submit(request, schedule)`` starts a scan and returns its id; when the server sees
    that scan end it calls ``scan_finished(scan_id, status)``, which calls
    ``finished(schedule, scan_id)`` (alerts compare ``schedule.baseline_scan_id``, the
    schedule's last completed scan, with ``scan_id``). ``now`` and ``sleep`` are the clock
    (aware UTC datetimes) and the wait; ``sleep`` returns early when ``wake()`` is called
    (a schedule was added or changed) unless a test replaces it.
    """

    def __init__(self, store: ScheduleStore, submit: Submit, finished: Finished | None = None, *,
                 now: Callable[[], dt.datetime] = utcnow,
                 sleep: Callable[[float], object] | None = None,
                 max_sleep: float = MAX_SLEEP) -> None:
        import gevent.event

        self.store = store
        self.submit = submit
        self.finished = finished
        self.now = now
        self._wake = gevent.event.Event()
        self.sleep = sleep or self._wake.wait
        self.max_sleep = max_sleep
        self._greenlet: Any = None

    def start(self) -> None:
        import gevent

        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the scheduler's greenlet to end; False if it still runs after ``timeout``."""
        if self._greenlet is None:
            return True
        self._greenlet.join(timeout)
        return bool(self._greenlet.dead)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while True:
            # Cleared before the pass: a change made while submit() runs wakes the next sleep.
            self._wake.clear()
            delay = self.run_due()
            self.sleep(min(self.max_sleep, delay if delay is not None else self.max_sleep))

    def run_due(self) -> float | None:
        """Fire every enabled schedule whose time has come (once, however many runs were
        missed); return the seconds until the next one, None when none is enabled."""
        now = self.now()
        due = [s for s in self.store.list() if s.enabled and (s.next_run is None or s.next_run <= now)]
        for schedule in due:
            self._fire(schedule, now)
        if due:
            self.store.save()
        upcoming = [s.next_run for s in self.store.list() if s.enabled and s.next_run]
        return max(0.0, (min(upcoming) - now).total_seconds()) if upcoming else None

    def _fire(self, schedule: Schedule, now: dt.datetime) -> None:
        if schedule.next_run is None:  # never planned (an edited file): plan, do not run
            schedule.next_run = next_run(schedule.cron, schedule.timezone, now)
            return
        missed = _count_missed(schedule, now)
        if missed > 1:
            log.info("schedule {} ({}): {} runs missed since {}; running once now",
                     schedule.id, schedule.name, missed, _iso(schedule.next_run))
        schedule.last_run = now
        schedule.next_run = next_run(schedule.cron, schedule.timezone, now)
        try:
            scan_id = self.submit(schedule.request, schedule)
        except Exception as e:  # noqa: BLE001 - one bad request must not stop the other schedules
            schedule.last_error = str(e) or type(e).__name__
            log.warning("schedule {} ({}): the scan was not started: {}", schedule.id,
                        schedule.name, schedule.last_error)
            return
        schedule.last_error = None
        schedule.last_scan_id = scan_id
        log.info("schedule {} ({}): started scan {}", schedule.id, schedule.name, scan_id)

    def scan_finished(self, scan_id: str, status: str = "completed") -> Schedule | None:
        """Tell the scheduler a scan ended; the schedule that started it, if any."""
        # By the stored last scan id, not a map in memory: a scan resumed after a restart
        # still finds its schedule.
        schedule = next((s for s in self.store.list() if s.last_scan_id == scan_id), None)
        if schedule is None or schedule.baseline_scan_id == scan_id:
            return None
        if status == "completed":
            if self.finished is not None:
                try:
                    self.finished(schedule, scan_id)
                except Exception as e:  # noqa: BLE001 - an alert that fails must not lose the baseline
                    log.warning("schedule {} ({}): the end of scan {} was not handled: {}",
                                schedule.id, schedule.name, scan_id, e)
            schedule.baseline_scan_id = scan_id
            schedule.last_error = None  # the run completed (a resumed one too): nothing wrong now
        else:
            schedule.last_error = f"scan {scan_id} ended {status}"
        self.store.save()
        return schedule


def _count_missed(schedule: Schedule, now: dt.datetime, limit: int = 1000) -> int:
    """How many times the cron matched from ``next_run`` up to ``now`` (at most ``limit``)."""
    count, when = 0, schedule.next_run
    while when is not None and when <= now and count < limit:
        count += 1
        when = next_run(schedule.cron, schedule.timezone, when)
    return count

