"""The changes a schedule alerts on, computed on record lists written by hand in the shape
the scan store gives them (kind first, as ``scans show --format json``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pentora_plugins.server._alerts import alert, at_severity, changes, on_scan_end


def port(host: str, number: int, state: str = "open", protocol: str = "tcp") -> dict[str, Any]:
    return {"kind": "port", "host": host, "port": number, "protocol": protocol, "state": state,
            "method": "connect", "reason": "syn-ack"}


def finding(host: str, number: int | None, ident: str, severity: str) -> dict[str, Any]:
    return {"kind": "vulnerability", "host": host, "port": number, "id": ident, "title": ident.lower(),
            "severity": severity, "cvss": None, "evidence": "", "references": [], "source": "test"}


BASE = [
    {"kind": "host", "address": "127.0.0.1", "alive": True},
    port("127.0.0.1", 22), port("127.0.0.1", 80), port("127.0.0.2", 53, protocol="udp"),
    {"kind": "service", "host": "127.0.0.1", "port": 22, "service": "ssh", "product": "OpenSSH"},
    finding("127.0.0.1", 80, "PENTORA-HTTP-OLD", "medium"),
    finding("127.0.0.1", 22, "PENTORA-SSH-WEAK", "low"),
]


def test_the_same_records_are_no_change() -> None:
    assert changes(BASE, [dict(r) for r in reversed(BASE)]) is None
    assert changes([], []) is None


def test_a_new_open_port_and_a_closed_one() -> None:
    new = [r for r in BASE if r.get("port") != 80 or r["kind"] != "port"]
    new = [r for r in new if r.get("id") != "PENTORA-HTTP-OLD"] + [port("127.0.0.1", 8443)]
    new.append(finding("127.0.0.1", 80, "PENTORA-HTTP-OLD", "medium"))
    found = changes(BASE, new)
    assert found is not None
    assert found["new_ports"] == [{"host": "127.0.0.1", "port": 8443, "protocol": "tcp", "state": "open"}]
    assert found["closed_ports"] == [{"host": "127.0.0.1", "port": 80, "protocol": "tcp", "state": "absent"}]
    assert found["new_findings"] == found["resolved_findings"] == found["changed_findings"] == []


def test_a_port_seen_again_in_another_state_is_closed_with_that_state() -> None:
    new = [port("127.0.0.1", 22, state="filtered") if r.get("port") == 22 and r["kind"] == "port" else r
           for r in BASE]
    found = changes(BASE, new)
    assert found is not None and found["new_ports"] == []
    assert found["closed_ports"] == [{"host": "127.0.0.1", "port": 22, "protocol": "tcp",
                                      "state": "filtered"}]
    # and opened again, it is new: an open port the old scan had in another state
    back = changes(new, BASE)
    assert back is not None and [p["port"] for p in back["new_ports"]] == [22]


def test_the_same_number_over_udp_is_another_port() -> None:
    found = changes(BASE, [*BASE, port("127.0.0.1", 22, protocol="udp")])
    assert found is not None
    assert found["new_ports"] == [{"host": "127.0.0.1", "port": 22, "protocol": "udp", "state": "open"}]


def test_new_and_resolved_findings_at_or_above_the_severity() -> None:
    new = [r for r in BASE if r.get("id") != "PENTORA-HTTP-OLD"]
    new += [finding("127.0.0.2", None, "PENTORA-CRIT", "critical"),
            finding("127.0.0.2", 53, "PENTORA-INFO", "info")]
    found = changes(BASE, new, min_severity="medium")
    assert found is not None
    assert [f["id"] for f in found["new_findings"]] == ["PENTORA-CRIT"]  # info is below: ignored
    assert found["new_findings"][0] == {"host": "127.0.0.2", "port": None, "id": "PENTORA-CRIT",
                                        "title": "pentora-crit", "severity": "critical", "cvss": None,
                                        "known_exploited": None}
    assert [f["id"] for f in found["resolved_findings"]] == ["PENTORA-HTTP-OLD"]
    everything = changes(BASE, new)
    assert everything is not None
    assert [f["id"] for f in everything["new_findings"]] == ["PENTORA-CRIT", "PENTORA-INFO"]


def test_only_findings_below_the_severity_is_no_change() -> None:
    new = [*BASE, finding("127.0.0.1", 80, "PENTORA-LOW", "low")]
    assert changes(BASE, new, min_severity="medium") is None
    assert changes(BASE, new, min_severity="low") is not None


def test_a_finding_whose_severity_changed() -> None:
    new = [finding("127.0.0.1", 22, "PENTORA-SSH-WEAK", "high") if r.get("id") == "PENTORA-SSH-WEAK"
           else r for r in BASE]
    found = changes(BASE, new, min_severity="high")
    assert found is not None
    (changed,) = found["changed_findings"]
    assert (changed["id"], changed["old_severity"], changed["severity"]) == (
        "PENTORA-SSH-WEAK", "low", "high")
    assert changes(BASE, new, min_severity="critical") is None


def test_the_same_id_on_another_host_or_port_is_another_finding() -> None:
    new = [*BASE, finding("127.0.0.1", 443, "PENTORA-HTTP-OLD", "medium")]
    found = changes(BASE, new)
    assert found is not None
    assert [(f["host"], f["port"]) for f in found["new_findings"]] == [("127.0.0.1", 443)]


def test_lists_are_in_address_and_port_order() -> None:
    new = [*BASE, port("127.0.0.10", 1), port("127.0.0.9", 9000), port("127.0.0.9", 25)]
    found = changes(BASE, new)
    assert found is not None
    assert [(p["host"], p["port"]) for p in found["new_ports"]] == [
        ("127.0.0.9", 25), ("127.0.0.9", 9000), ("127.0.0.10", 1)]


def test_an_unknown_severity_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="min_severity 'severe': expected one of info, low, medium"):
        changes(BASE, BASE, min_severity="severe")


def test_at_severity_keeps_ports_and_cuts_findings() -> None:
    new = [*BASE, port("127.0.0.1", 8080), finding("127.0.0.1", 8080, "PENTORA-L", "low")]
    found = changes(BASE, new)
    assert found is not None
    cut = at_severity(found, "high")
    assert cut is not None and cut["new_findings"] == [] and len(cut["new_ports"]) == 1
    only_finding = changes(BASE, [*BASE, finding("127.0.0.1", 8080, "PENTORA-L", "low")])
    assert only_finding is not None and at_severity(only_finding, "high") is None


def test_the_alert_body_is_json_with_the_scans_the_schedule_and_a_summary() -> None:
    found = changes(BASE, [*BASE, port("127.0.0.1", 8080)])
    assert found is not None
    body = alert({"id": "abc", "name": "nightly", "cron": "0 3 * * *"}, "old1", "new2", found)
    assert json.loads(json.dumps(body)) == body
    assert body["event"] == "scan.changes"
    assert body["schedule"] == {"id": "abc", "name": "nightly"}
    assert (body["old_scan_id"], body["new_scan_id"]) == ("old1", "new2")
    assert body["summary"] == {"new_ports": 1, "closed_ports": 0, "new_findings": 0,
                               "resolved_findings": 0, "changed_findings": 0}
    assert body["time"].endswith("+00:00")


def test_on_scan_end_sends_the_changes_from_the_baseline_only_when_there_are_some(tmp_path) -> None:
    from pentora_plugins.server._schedules import Scheduler, ScheduleStore

    stored = {"s1": BASE, "s2": BASE, "s3": [*BASE, port("127.0.0.1", 8080)]}
    sent: list[dict[str, Any]] = []
    store = ScheduleStore(tmp_path)
    schedule = store.create({"name": "nightly", "cron": "0 3 * * *", "request": {"targets": "127.0.0.1"}})
    ids = iter(["s1", "s2", "s3"])
    scheduler = Scheduler(store, lambda request, s: next(ids), on_scan_end(stored.__getitem__, sent.append))
    for scan in ("s1", "s2", "s3"):
        schedule.next_run = None
        scheduler.run_due()  # plans it
        schedule.next_run = schedule.next_run.replace(year=2000)  # type: ignore[union-attr]  # due
        scheduler.run_due()
        scheduler.scan_finished(scan)
    (body,) = sent  # s1: no baseline; s2: no change; s3: a new port
    assert (body["old_scan_id"], body["new_scan_id"]) == ("s2", "s3")
    assert body["schedule"] == {"id": schedule.id, "name": "nightly"}
    assert [p["port"] for p in body["changes"]["new_ports"]] == [8080]
