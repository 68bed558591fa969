"""``pentora scans check [--repair]``: is the store sound, and rebuilding a damaged one.

The repair moves the damaged file aside (``FILE.damaged-YYYYmmddTHHMMSS``, with its
``-wal``/``-shm``; never overwritten, never deleted) and copies into a new store every
row SQLite can still read, table by table, in rowid order. Where a read fails (a damaged
page), the rows it covers are lost and the copy goes on after them: the next readable
rowid is found by probing ahead (1, 2, 4… rows, then halving back), so a damaged page
costs a few dozen queries, whatever the size of the table.

Why not ``iterdump()``: it stops at the first unreadable row and gives up the rest. The
``sqlite3`` shell's ``.recover`` reads more (rows of orphaned pages too), but it is a
separate program that a pentora installation does not have.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from pentora_plugins.store import _stamp
from pentora_plugins.store._db import (
    StoreError,
    connect,
    is_busy,
    is_damaged,
    pid_alive,
    refuse_special,
    store_failure,
)
from pentora_plugins.store._writer import import_pending

TABLES = ("scans", "nodes", "results", "checkpoints")  # scans first: the others name one
BATCH = 500
FIRST_ROWID, LAST_ROWID = -(2**63), 2**63 - 1


@dataclass
class Copied:
    """One table's repair: rows copied, rows known lost (None: unknown), damaged spans."""

    copied: int = 0
    total: int | None = None
    orphans: int = 0  # copied, then dropped: the scan they belong to was lost
    damaged_spans: int = 0

    @property
    def kept(self) -> int:
        return self.copied - self.orphans

    @property
    def lost(self) -> int | None:
        if self.total is None:
            return None if self.damaged_spans or self.orphans else 0
        return max(self.total - self.kept, 0)


@dataclass
class Repair:
    aside: Path
    tables: dict[str, Copied] = field(default_factory=dict)
    lost_scans: list[str] = field(default_factory=list)
    pending: int = 0


def problems(path: Path, limit: int = 10) -> list[str]:
    """What ``integrity_check`` finds wrong (empty: the store is sound, and stamped so:
    the next scan skips its own check while the file stays as it is)."""
    refuse_special(path)
    before = _stamp.identity(path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the scan store {path}: {e}") from e
    try:
        found = [str(r[0]) for r in conn.execute(f"PRAGMA integrity_check({int(limit)})")]
    except sqlite3.DatabaseError as e:
        if not is_damaged(e):
            raise store_failure(path, e) from e
        found = [str(e)]
    finally:
        conn.close()
    if found != ["ok"]:
        _stamp.forget(path)
        return found
    _stamp.record(path, since=before)
    return []


def repair(path: Path) -> Repair:
    """Move the damaged store aside and build a new one at ``path`` from what is readable."""
    refuse_special(path)
    _refuse_if_in_use(path)
    _stamp.forget(path)  # it names the damaged file, which is moved aside
    aside = _aside_name(path)
    for suffix in ("", "-wal", "-shm"):  # the log holds committed rows: it goes along
        src = Path(f"{path}{suffix}")
        if src.exists():
            os.rename(src, f"{aside}{suffix}")
    report = Repair(aside)
    old = sqlite3.connect(f"file:{aside}?mode=ro", uri=True, timeout=10.0, isolation_level=None)
    new = connect(path)
    try:
        new.execute("BEGIN IMMEDIATE")
        for table in TABLES:
            report.tables[table] = _copy(old, new, table)
        _drop_orphans(new, report)
        report.lost_scans = _lost_scan_ids(old, new)
        new.execute("COMMIT")
        report.pending = import_pending(new, path)
    finally:
        if new.in_transaction:
            new.execute("ROLLBACK")
        new.close()
        old.close()
    return report


def _refuse_if_in_use(path: Path) -> None:
    conn = sqlite3.connect(str(path), timeout=1.0, isolation_level=None)
    try:
        try:
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as e:  # damaged (not a database…): nobody can be using it
            if is_busy(e):
                raise StoreError(f"the scan store {path} is in use by another pentora; repair it "
                                 "when that has finished") from e
        try:  # a scan between two commits holds no lock: ask the store who is running
            running = [(i, p) for i, p, h in conn.execute(
                "SELECT id, pid, host FROM scans WHERE status = 'running'") if pid_alive(p, h)]
        except sqlite3.DatabaseError:
            running = []  # unreadable: the lock test above is all there is
        if running:
            raise StoreError(f"scan {running[0][0]} is still writing to {path} (pid {running[0][1]}); "
                             "stop it or let it finish, then repair")
    finally:
        conn.close()


def _aside_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for n in range(1000):
        name = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n else ""))
        if not any(Path(f"{name}{s}").exists() for s in ("", "-wal", "-shm")):
            return name
    raise StoreError(f"too many damaged copies of {path} beside it; move some away")


def _copy(old: sqlite3.Connection, new: sqlite3.Connection, table: str) -> Copied:
    out = Copied(total=_count(old, table))
    cols = [str(r[1]) for r in new.execute(f"PRAGMA table_info({table})")]
    names = ", ".join(cols)
    select = f"SELECT rowid, {names} FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT {BATCH}"  # noqa: S608
    insert = f"INSERT OR IGNORE INTO {table} (rowid, {names}) VALUES ({', '.join('?' * (len(cols) + 1))})"  # noqa: S608
    start: int | None = FIRST_ROWID
    while start is not None:
        got = 0
        try:
            for row in old.execute(select, (start,)):
                out.copied += new.execute(insert, row).rowcount
                got += 1
                start = row[0] + 1 if row[0] < LAST_ROWID else None
                if start is None:
                    break
        except sqlite3.DatabaseError as e:
            if not is_damaged(e) or start is None:
                raise
            out.damaged_spans += 1
            start = _next_readable(old, table, start)
            continue
        if got < BATCH:
            break
    return out


def _count(conn: sqlite3.Connection, table: str) -> int | None:
    # count(*) reads the smallest index, which may have survived the table's damage.
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
    except sqlite3.DatabaseError:
        return None


def _readable(conn: sqlite3.Connection, table: str, rowid: int) -> bool:
    try:
        conn.execute(f"SELECT * FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 1",  # noqa: S608
                     (rowid,)).fetchall()
    except sqlite3.DatabaseError as e:
        if not is_damaged(e):
            raise
        return False
    return True


def _next_readable(conn: sqlite3.Connection, table: str, bad: int) -> int | None:
    """The first rowid after ``bad`` from which reading works again (None: none does)."""
    step = 1
    while not _readable(conn, table, bad + step):
        if bad + step >= LAST_ROWID:
            return None
        step = min(step * 2, LAST_ROWID - bad)
    low, high = bad + step // 2 if step > 1 else bad, bad + step
    while high - low > 1:
        mid = (low + high) // 2
        if _readable(conn, table, mid):
            high = mid
        else:
            low = mid
    return high


def _drop_orphans(new: sqlite3.Connection, report: Repair) -> None:
    for table in TABLES[1:]:
        dropped = new.execute(f"DELETE FROM {table} WHERE scan_id NOT IN (SELECT id FROM scans)")  # noqa: S608
        report.tables[table].orphans = dropped.rowcount


def _lost_scan_ids(old: sqlite3.Connection, new: sqlite3.Connection) -> list[str]:
    """IDs the damaged store's index still lists but whose scan could not be read."""
    try:
        listed = {str(r[0]) for r in old.execute("SELECT id FROM scans INDEXED BY sqlite_autoindex_scans_1")}
    except sqlite3.DatabaseError:
        return []
    kept = {str(r[0]) for r in new.execute("SELECT id FROM scans")}
    return sorted(listed - kept)
