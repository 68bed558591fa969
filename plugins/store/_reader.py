"""``SqliteScanStore``: the ``pentora.ScanStore`` the ``pentora_scan_store`` hook gives.

The same rows, shown the same way, as ``pentora scans list|show|rm`` print them: those
commands read through the functions here too.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pentora_plugins.store._db import (
    StoreError,
    delete_scans,
    load_records,
    reading,
    scan_row,
    shown_status,
)

from pentora import iso_time as iso


def _targets(row: dict[str, Any]) -> str:
    variables = json.loads(row["vars"] or "{}")
    return str(variables.get("targets", ""))


def list_items(conn: sqlite3.Connection, where: str = "", params: tuple[Any, ...] = (),
               page: str = "") -> list[dict[str, Any]]:
    """The scans (newest first) as ``scans list --format json`` shows them."""
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute(
        f"SELECT * FROM scans {where} ORDER BY started_at DESC, id {page}", params)]  # noqa: S608
    conn.row_factory = None
    ids = [r["id"] for r in rows]
    counts: dict[str, int] = {}
    vulns: dict[str, int] = {}
    marks = ",".join("?" * len(ids))
    if ids:
        counts = dict(conn.execute(f"SELECT scan_id, count(*) FROM results WHERE scan_id IN "  # noqa: S608
                                   f"({marks}) GROUP BY scan_id", ids).fetchall())
        vulns = dict(conn.execute(f"SELECT scan_id, count(*) FROM results WHERE kind = "  # noqa: S608
                                  f"'vulnerability' AND scan_id IN ({marks}) GROUP BY scan_id",
                                  ids).fetchall())
    # "findings" are vulnerability records, as in every report; "records" counts them all
    return [{"id": r["id"], "dag": r["dag_name"], "status": shown_status(r),
             "started_at": iso(r["started_at"]), "finished_at": iso(r["finished_at"]),
             "runs": r["runs"], "targets": _targets(r), "records": counts.get(r["id"], 0),
             "findings": vulns.get(r["id"], 0)}
            for r in rows]


def detail(conn: sqlite3.Connection, scan_id: str) -> dict[str, Any]:
    """``{"scan", "nodes"}`` as ``scans show --format json`` gives them (no records)."""
    row = scan_row(conn, scan_id)
    conn.row_factory = None
    nodes = conn.execute("SELECT node, module_type, status, record, run FROM nodes WHERE "
                         "scan_id = ? ORDER BY rowid", (scan_id,)).fetchall()
    info = {k: v for k, v in row.items() if k != "dag"}
    info.update(status=shown_status(row), vars=json.loads(row["vars"]), dag=json.loads(row["dag"]),
                started_at=iso(row["started_at"]), finished_at=iso(row["finished_at"]))
    return {"scan": info, "nodes": [
        {"node": n, "module_type": m, "status": s, "run": r, "record": json.loads(rec or "null")}
        for n, m, s, rec, r in nodes]}


class SqliteScanStore:
    """The scans of one store file, read (and removed) on request; each call opens the
    file for itself, so that one object serves every greenlet of a server."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._file = path

    @contextlib.contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        with reading(self._file) as conn:
            yield conn

    @staticmethod
    def _filter(status: str | None, since: float | None) -> tuple[str, tuple[Any, ...]]:
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        if since is not None:
            clauses.append("started_at >= ?")
            params.append(since)
        if status == "interrupted":  # a dead process's "running" reads interrupted
            clauses.append("status IN ('interrupted', 'running')")
        elif status is not None:
            clauses.append("status = ?")
            params.append(status)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(params)

    def list(self, status: str | None = None, since: float | None = None, limit: int = 50,
             offset: int = 0) -> builtins.list[dict[str, Any]]:
        where, params = self._filter(status, since)
        with self._conn() as conn:
            if status in ("running", "interrupted"):
                # shown_status decides between them (is the process alive): filtered after
                items = [i for i in list_items(conn, where, params) if i["status"] == status]
                return items[offset:offset + limit]
            return list_items(conn, where, (*params, limit, offset), "LIMIT ? OFFSET ?")

    def count(self, status: str | None = None, since: float | None = None) -> int:
        where, params = self._filter(status, since)
        with self._conn() as conn:
            if status in ("running", "interrupted"):
                return sum(1 for i in list_items(conn, where, params) if i["status"] == status)
            return int(conn.execute(f"SELECT count(*) FROM scans {where}", params)  # noqa: S608
                       .fetchone()[0])

    def get(self, scan_id: str) -> dict[str, Any] | None:
        with self._conn() as conn:
            try:
                out = detail(conn, scan_id)
            except StoreError:
                return None
            counts = Counter(kind for (kind,) in conn.execute(
                "SELECT kind FROM results WHERE scan_id = ?", (scan_id,)))
        out["counts"] = dict(sorted(counts.items()))
        return out

    def records(self, scan_id: str) -> builtins.list[dict[str, Any]]:
        with self._conn() as conn:
            return load_records(conn, scan_id)

    def delete(self, scan_id: str) -> bool:
        with self._conn() as conn:
            if conn.execute("SELECT 1 FROM scans WHERE id = ?", (scan_id,)).fetchone() is None:
                return False
            delete_scans(conn, [scan_id])
        return True

    def mark_interrupted(self, scan_ids: builtins.list[str], reason: str = "interrupted") -> None:
        if not scan_ids:
            return
        with self._conn() as conn:
            conn.executemany("UPDATE scans SET status = 'interrupted', error = ? WHERE id = ? AND "
                             "status IN ('running', 'queued')", [(reason, i) for i in scan_ids])
