"""Schedules of ``pentora server``: cron times worked out by hand, the store on disk, and
the scheduler on a fake clock (its ``now`` and ``sleep`` are injected: no test waits for
a minute to pass)."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

import gevent
import pytest
from pentora_plugins.server._schedules import (
    Schedule,
    ScheduleError,
    Scheduler,
    ScheduleStore,
    check_cron,
    next_run,
)

UTC = dt.UTC
REQUEST = {"targets": "127.0.0.1", "ports": "22,80"}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


class Clock:
    """A fake clock: ``sleep`` moves it on and records how long the scheduler asked for;
    after ``stop_after`` sleeps the scheduler's greenlet ends."""

    def __init__(self, start: str, stop_after: int = 1000) -> None:
        self.time = at(start)
        self.slept: list[float] = []
        self.stop_after = stop_after

    def now(self) -> dt.datetime:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += dt.timedelta(seconds=seconds)
        if len(self.slept) >= self.stop_after:
            raise gevent.GreenletExit


class Submitted:
    def __init__(self, clock: Clock | None = None, fail: set[str] | None = None) -> None:
        self.calls: list[tuple[dt.datetime | None, dict[str, Any], str]] = []
        self.clock, self.fail = clock, fail or set()

    def __call__(self, request: dict[str, Any], schedule: Schedule) -> str:
        if schedule.name in self.fail:
            raise PermissionError("127.0.0.9 is outside the allow-list")
        self.calls.append((self.clock.now() if self.clock else None, request, schedule.id))
        return f"scan-{len(self.calls)}"


# -- cron, by hand -------------------------------------------------------------------------


@pytest.mark.parametrize("cron, after, expected", [
    ("*/5 * * * *", "2024-06-02 12:03:00", "2024-06-02 12:05:00"),
    ("*/5 * * * *", "2024-06-02 12:05:00", "2024-06-02 12:10:00"),  # strictly after
    ("0 3 * * 1", "2024-06-02 12:03:00", "2024-06-03 03:00:00"),  # a Sunday → Monday 03:00
    ("0 3 * * 1", "2024-06-03 03:00:00", "2024-06-10 03:00:00"),  # that Monday → the next
    ("30 2 1 * *", "2024-01-31 23:00:00", "2024-02-01 02:30:00"),
    ("0 0 * * *", "2024-12-31 23:59:00", "2025-01-01 00:00:00"),
    ("@hourly", "2024-06-02 12:03:00", "2024-06-02 13:00:00"),
    ("0 9-17/4 * * mon-fri", "2024-06-07 16:00:00", "2024-06-07 17:00:00"),  # 9, 13, 17 on a Friday
    ("0 9-17/4 * * mon-fri", "2024-06-07 17:00:00", "2024-06-10 09:00:00"),  # then Monday
])
def test_next_run_in_utc(cron: str, after: str, expected: str) -> None:
    assert next_run(check_cron(cron), "UTC", at(after)) == at(expected)


def test_next_run_reads_the_cron_in_its_time_zone() -> None:
    # 03:00 in Paris is 01:00 UTC in summer (CEST, +2) and 02:00 UTC in winter (CET, +1)
    assert next_run("0 3 * * *", "Europe/Paris", at("2024-06-02 12:00:00")) == at("2024-06-03 01:00:00")
    assert next_run("0 3 * * *", "Europe/Paris", at("2024-12-02 12:00:00")) == at("2024-12-03 02:00:00")


@pytest.mark.parametrize("cron, message", [
    ("61 * * * *", "the minute column '61' is not valid (out of range; it takes 0-59"),
    ("* 24 * * *", "the hour column '24' is not valid (out of range; it takes 0-23"),
    ("* * * 13 *", "the month column '13' is not valid"),
    ("* * * * funday", "the day of week column 'funday' is not valid"),
    ("*/0 * * * *", "step '0' is not acceptable"),
    ("* * *", "has 3 columns; a cron expression has 5: minute hour day-of-month month day-of-week"),
    ("* * * * * *", "has 6 columns"),
    ("0 0 31 2 *", "never matches a date"),
    ("@often", "unknown cron nickname '@often': use one of @yearly"),
    ("", "expected a cron expression"),
])
def test_a_bad_cron_is_a_clear_error_on_the_cron_field(cron: str, message: str) -> None:
    with pytest.raises(ScheduleError) as e:
        check_cron(cron)
    assert e.value.problems[0]["key"] == "cron"
    assert message in str(e.value)
    assert "field 0" not in str(e.value) and "[" not in str(e.value)  # croniter's wording is gone


def test_every_problem_of_a_schedule_at_once(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    with pytest.raises(ScheduleError) as e:
        store.create({"cron": "99 * * * *", "timezone": "Mars/Olympus", "request": [], "extra": 1})
    keys = {p["key"]: p["message"] for p in e.value.problems}
    assert set(keys) == {"cron", "timezone", "request", "name", "extra"}
    assert "unknown time zone 'Mars/Olympus'" in keys["timezone"]
    assert keys["name"] == "required"
    assert store.list() == [] and not store.path.exists()


# -- the store ---------------------------------------------------------------------------


def test_the_store_persists_and_reloads(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    made = store.create({"name": "nightly", "cron": "0 3 * * *", "request": REQUEST}, created_by="ops",
                        now=at("2024-06-02 12:00:00"))
    assert made.next_run == at("2024-06-03 03:00:00")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    again = ScheduleStore(tmp_path).get(made.id)
    assert again == made and again.created_by == "ops" and again.request == REQUEST
    data = json.loads(store.path.read_text())
    assert data["schedules"][0]["next_run"] == "2024-06-03T03:00:00+00:00"
    assert store.delete(made.id) and ScheduleStore(tmp_path).list() == []
    assert not store.delete(made.id)


def test_a_damaged_file_names_itself_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "schedules.json").write_text("{not json")
    with pytest.raises(ScheduleError, match=r"schedules.json: not a schedule file .*move it aside"):
        ScheduleStore(tmp_path)


def test_an_update_checks_the_fields_given_and_replans(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    s = store.create({"name": "n", "cron": "0 3 * * *", "request": REQUEST}, now=at("2024-06-02 12:00:00"))
    with pytest.raises(ScheduleError, match="cron: '0 25 \\* \\* \\*': the hour column"):
        store.update(s.id, {"cron": "0 25 * * *"})
    store.update(s.id, {"cron": "*/10 * * * *"}, now=at("2024-06-02 12:03:00"))
    assert ScheduleStore(tmp_path).get(s.id).next_run == at("2024-06-02 12:10:00")  # type: ignore[union-attr]
    with pytest.raises(ScheduleError, match="no schedule 'nope'"):
        store.update("nope", {"enabled": False})


# -- the scheduler -------------------------------------------------------------------------


def test_a_due_schedule_fires_at_its_time_and_the_scheduler_sleeps_until_then(tmp_path: Path) -> None:
    clock = Clock("2024-06-02 12:00:30", stop_after=4)
    store = ScheduleStore(tmp_path)
    s = store.create({"name": "each minute", "cron": "* * * * *", "request": REQUEST}, now=clock.now())
    submit = Submitted(clock)
    scheduler = Scheduler(store, submit, now=clock.now, sleep=clock.sleep)
    scheduler.start()
    assert scheduler.join(timeout=10)
    # asleep until each minute's start, not woken every second
    assert clock.slept == [30.0, 60.0, 60.0, 60.0]
    assert [when for when, _, _ in submit.calls] == [at("2024-06-02 12:01:00"), at("2024-06-02 12:02:00"),
                                                      at("2024-06-02 12:03:00")]
    assert all(req == REQUEST and sid == s.id for _, req, sid in submit.calls)
    stored = ScheduleStore(tmp_path).get(s.id)
    assert stored is not None
    assert (stored.last_run, stored.last_scan_id) == (at("2024-06-02 12:03:00"), "scan-3")
    assert stored.next_run == at("2024-06-02 12:04:00")


def test_sleep_is_bounded_so_a_clock_change_is_noticed(tmp_path: Path) -> None:
    clock = Clock("2024-06-02 12:00:00")
    store = ScheduleStore(tmp_path)
    store.create({"name": "n", "cron": "0 3 * * *", "request": REQUEST}, now=clock.now())
    scheduler = Scheduler(store, Submitted(), now=clock.now, sleep=clock.sleep, max_sleep=300)
    assert scheduler.run_due() == 15 * 3600.0
    clock.stop_after = 1
    scheduler.start()
    assert scheduler.join(timeout=10)
    assert clock.slept == [300]


def test_missed_runs_run_once_at_start(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    s = store.create({"name": "n", "cron": "*/5 * * * *", "request": REQUEST}, now=at("2024-06-02 12:03:00"))
    # the server was down from 12:04 to 15:31: 41 runs were missed
    clock = Clock("2024-06-02 15:31:10")
    submit = Submitted(clock)
    scheduler = Scheduler(ScheduleStore(tmp_path), submit, now=clock.now, sleep=clock.sleep)
    assert scheduler.run_due() == 230.0  # 15:35
    assert len(submit.calls) == 1 and submit.calls[0][0] == at("2024-06-02 15:31:10")
    assert scheduler.run_due() == 230.0 and len(submit.calls) == 1  # not again
    assert ScheduleStore(tmp_path).get(s.id).next_run == at("2024-06-02 15:35:00")  # type: ignore[union-attr]


def test_disabled_schedules_do_not_fire_and_resume_without_catching_up(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    s = store.create({"name": "n", "cron": "* * * * *", "request": REQUEST, "enabled": False},
                     now=at("2024-06-02 12:00:00"))
    clock = Clock("2024-06-02 13:00:00")
    submit = Submitted(clock)
    scheduler = Scheduler(store, submit, now=clock.now, sleep=clock.sleep)
    assert scheduler.run_due() is None and submit.calls == []
    store.update(s.id, {"enabled": True}, now=clock.now())
    assert scheduler.run_due() == 60.0 and submit.calls == []  # the pause is not caught up


def test_a_refused_request_is_recorded_and_the_others_still_fire(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    now = at("2024-06-02 12:00:30")
    bad = store.create({"name": "bad", "cron": "* * * * *", "request": {"targets": "127.0.0.9"}}, now=now)
    good = store.create({"name": "good", "cron": "* * * * *", "request": REQUEST}, now=now)
    clock = Clock("2024-06-02 12:01:00")
    submit = Submitted(clock, fail={"bad"})
    Scheduler(store, submit, now=clock.now, sleep=clock.sleep).run_due()
    assert [sid for _, _, sid in submit.calls] == [good.id]
    stored = ScheduleStore(tmp_path).get(bad.id)
    assert stored is not None and stored.last_error == "127.0.0.9 is outside the allow-list"
    assert stored.next_run == at("2024-06-02 12:02:00")


def test_the_end_of_a_scheduled_scan_compares_with_the_last_completed_one(tmp_path: Path) -> None:
    store = ScheduleStore(tmp_path)
    store.create({"name": "n", "cron": "* * * * *", "request": REQUEST}, now=at("2024-06-02 12:00:30"))
    clock = Clock("2024-06-02 12:01:00")
    ends: list[tuple[str | None, str]] = []
    scheduler = Scheduler(store, Submitted(clock), lambda s, scan: ends.append((s.baseline_scan_id, scan)),
                          now=clock.now, sleep=clock.sleep)
    scheduler.run_due()
    assert scheduler.scan_finished("scan-1", "completed") is not None
    clock.time = at("2024-06-02 12:02:00")
    scheduler.run_due()
    assert scheduler.scan_finished("scan-2", "failed") is not None  # no alert, baseline kept
    clock.time = at("2024-06-02 12:03:00")
    scheduler.run_due()
    # restarted in between: the schedule is found by the stored last scan id
    scheduler = Scheduler(ScheduleStore(tmp_path), Submitted(clock),
                          lambda s, scan: ends.append((s.baseline_scan_id, scan)))
    assert scheduler.scan_finished("scan-3", "completed") is not None
    assert ends == [(None, "scan-1"), ("scan-1", "scan-3")]
    assert scheduler.store.list()[0].baseline_scan_id == "scan-3"
    assert scheduler.scan_finished("scan-3", "completed") is None  # once
    assert scheduler.scan_finished("not-a-scheduled-scan") is None


def test_wake_cuts_a_real_sleep_short(tmp_path: Path) -> None:
    """With the real wait, a schedule added while the scheduler sleeps is planned at once."""
    store = ScheduleStore(tmp_path)
    submit = Submitted()
    scheduler = Scheduler(store, submit, max_sleep=300)
    scheduler.start()
    gevent.sleep(0.05)  # asleep for up to 300 s: no schedule
    store.create({"name": "n", "cron": "* * * * *", "request": REQUEST})
    store.get(store.list()[0].id).next_run = dt.datetime.now(UTC)  # type: ignore[union-attr]  # due now
    scheduler.wake()
    with gevent.Timeout(30, AssertionError("the scheduler did not wake")):
        while not submit.calls:
            gevent.sleep(0.01)
    scheduler.stop()
    assert len(submit.calls) == 1
