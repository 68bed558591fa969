"""What changed between two scans of one schedule, for its alerts: ports that opened or
closed, findings that appeared, went away or changed severity.

Records are the dicts the scan store gives (``kind`` first, as ``pentora scans show
--format json`` prints them). A port is identified by host, number and protocol, a
finding by host, port and id, as ``pentora scans diff`` does. Findings count from a
severity up (``info < low < medium < high < critical``); port changes always count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from pentora_plugins.kit.findings import SEVERITIES
from pentora_plugins.kit.records import address_key

EVENT = "scan.changes"
CHANGE_KEYS = ("new_ports", "closed_ports", "new_findings", "resolved_findings", "changed_findings")
FINDING_FIELDS = ("host", "port", "id", "title", "severity", "cvss", "known_exploited")
PORT_FIELDS = ("host", "port", "protocol", "state")


def severity_rank(severity: object) -> int:
    """0 (info) to 4 (critical); a severity pentora does not know ranks as info."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def _open_ports(records: Iterable[dict[str, Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    out = {}
    for r in records:
        if r.get("kind") == "port":
            key = (str(r.get("host")), int(r.get("port") or 0), str(r.get("protocol") or "tcp"))
            out[key] = {k: r.get(k) for k in PORT_FIELDS} | {"protocol": key[2]}
    return out


def _findings(records: Iterable[dict[str, Any]]) -> dict[tuple[str, Any, str], dict[str, Any]]:
    return {(str(r.get("host")), r.get("port"), str(r.get("id"))): {k: r.get(k) for k in FINDING_FIELDS}
            for r in records if r.get("kind") == "vulnerability"}


def _order(item: dict[str, Any]) -> tuple[Any, ...]:
    port = item.get("port")
    return (address_key(str(item.get("host"))), port if isinstance(port, int) else -1,
            str(item.get("protocol") or ""), str(item.get("id") or ""))


def changes(old: list[dict[str, Any]], new: list[dict[str, Any]],
            min_severity: str = "info") -> dict[str, list[dict[str, Any]]] | None:
    """The changes from ``old`` to ``new``, each list sorted by host and port; None when
    nothing changed (at ``min_severity`` and above for findings).

    - ``new_ports``: open in ``new``, not open in ``old``;
    - ``closed_ports``: open in ``old``, not open in ``new`` (``state`` is the new state,
      ``"absent"`` when the new scan has no record of the port);
    - ``new_findings`` / ``resolved_findings``: a finding only one scan has;
    - ``changed_findings``: the same finding with another severity (``old_severity``);
      counted when either severity reaches ``min_severity``.
    """
    if min_severity not in SEVERITIES:
        raise ValueError(f"min_severity {min_severity!r}: expected one of {', '.join(SEVERITIES)}")
    floor = severity_rank(min_severity)
    before, after = _open_ports(old), _open_ports(new)
    was_open = {k for k, v in before.items() if v["state"] == "open"}
    is_open = {k for k, v in after.items() if v["state"] == "open"}
    out: dict[str, list[dict[str, Any]]] = {key: [] for key in CHANGE_KEYS}
    out["new_ports"] = [after[k] for k in is_open - was_open]
    out["closed_ports"] = [after.get(k) or before[k] | {"state": "absent"} for k in was_open - is_open]
    fold, fnew = _findings(old), _findings(new)
    out["new_findings"] = [fnew[k] for k in fnew.keys() - fold.keys()
                           if severity_rank(fnew[k]["severity"]) >= floor]
    out["resolved_findings"] = [fold[k] for k in fold.keys() - fnew.keys()
                                if severity_rank(fold[k]["severity"]) >= floor]
    out["changed_findings"] = [
        fnew[k] | {"old_severity": fold[k]["severity"]} for k in fnew.keys() & fold.keys()
        if fnew[k]["severity"] != fold[k]["severity"]
        and max(severity_rank(fnew[k]["severity"]), severity_rank(fold[k]["severity"])) >= floor]
    for key in CHANGE_KEYS:
        out[key].sort(key=_order)
    return out if any(out.values()) else None


def at_severity(found: dict[str, list[dict[str, Any]]],
                min_severity: str) -> dict[str, list[dict[str, Any]]] | None:
    """``found`` (from ``changes``) cut to the findings at ``min_severity`` and above, for a
    webhook with a higher floor than the alert's; None when nothing is left."""
    floor = severity_rank(min_severity)

    def keep(f: dict[str, Any]) -> bool:
        return max(severity_rank(f.get("severity")), severity_rank(f.get("old_severity"))) >= floor

    out = {key: [f for f in items if key.endswith("_ports") or keep(f)] for key, items in found.items()}
    return out if any(out.values()) else None


def alert(schedule: dict[str, Any], old_scan: str | None, new_scan: str,
          found: dict[str, list[dict[str, Any]]], when: dt.datetime | None = None) -> dict[str, Any]:
    """The body a webhook receives (JSON): the event, the schedule (id and name), both
    scans, the changes and the time (ISO 8601, UTC)."""
    when = when or dt.datetime.now(dt.UTC)
    return {
        "event": EVENT,
        "schedule": {"id": schedule.get("id"), "name": schedule.get("name")},
        "old_scan_id": old_scan,
        "new_scan_id": new_scan,
        "changes": found,
        "summary": {key: len(found.get(key, [])) for key in CHANGE_KEYS},
        "time": when.astimezone(dt.UTC).isoformat(),
    }


def on_scan_end(records: Callable[[str], list[dict[str, Any]]],
                send: Callable[[dict[str, Any]], object]) -> Callable[[Any, str], None]:
    """The ``finished(schedule, scan_id)`` of a ``Scheduler``: compare the schedule's
    baseline scan with ``scan_id`` (``records`` gives a stored scan's records) and hand the
    alert to ``send`` (a ``WebhookSender.send``, which cuts it to each webhook's severity)
    when anything changed. A schedule's first scan has no baseline: nothing is sent."""

    def finished(schedule: Any, scan_id: str) -> None:
        old = schedule.baseline_scan_id
        if not old or old == scan_id:
            return
        found = changes(records(old), records(scan_id))
        if found is not None:
            send(alert(schedule.to_dict(), old, scan_id, found))

    return finished
