"""Writes of one scan to the store: queued, committed in short transactions off the hub.

Hooks only queue named statements (no SQL is ever read from anywhere but ``SQL``). A
greenlet commits the queue every ``FLUSH_EVERY`` (100 ms), and nodes' ends commit at
once, each commit one ``BEGIN IMMEDIATE … COMMIT`` run in a thread of its own, so the
hub keeps scanning while SQLite waits for a lock or for the disk.

When another pentora holds the write lock, or the disk is full, the queue is kept in
memory and retried: nothing reported is dropped. A locked store costs a scan one wait:
the first commit that finds it locked waits ``BUSY_WAIT``, later ones only try, and at
the scan's end the writer waits up to ``PENTORA_STORE_WAIT`` seconds (default 30); if
the store is still locked then, the queue goes to ``<store>.pending-<scan>-<pid>.jsonl``
beside it, which the next opening of the store imports, and the message says so.

A damaged store (a malformed page, an I/O error) is not retried: the first failed
commit says so, with the command that repairs it, and at the scan's end the queue goes
to the pending file at once, which the repaired store imports.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.threadpool
from pentora_plugins.store import _stamp
from pentora_plugins.store._db import StoreDamagedError, StoreError, connect, is_busy, is_damaged

from pentora import InputError, logger, read_input

log = logger.bind(component="store")

# A pending file holds one scan's queued writes (its records, checkpoints): a bound only
# against a file that is not one pentora wrote (a device or a FIFO is refused by name).
PENDING_MAX_BYTES = 4 << 30

FLUSH_EVERY = 0.1   # seconds between commits while a scan runs
BUSY_WAIT = 1.0     # seconds one commit waits for another process's lock
SQL = {
    "scan_new": "INSERT OR REPLACE INTO scans (id, dag_name, dag, vars, status, started_at, runs, "
                "pid, host) VALUES (?, ?, ?, ?, 'running', ?, 1, ?, ?)",
    "scan_rerun": "UPDATE scans SET status = 'running', runs = ?, pid = ?, host = ?, "
                  "finished_at = NULL, error = NULL WHERE id = ?",
    "scan_end": "UPDATE scans SET status = ?, finished_at = ?, error = ? WHERE id = ?",
    "node_new": "INSERT OR IGNORE INTO nodes (scan_id, node, module_type, status) "
                "VALUES (?, ?, ?, 'pending')",
    "node_start": "UPDATE nodes SET status = 'running', run = ? WHERE scan_id = ? AND node = ?",
    "node_end": "UPDATE nodes SET status = ?, record = ?, run = ? WHERE scan_id = ? AND node = ?",
    "node_outputs": "UPDATE nodes SET outputs = ? WHERE scan_id = ? AND node = ?",
    "forget_results": "DELETE FROM results WHERE scan_id = ? AND node = ? AND run < ?",
    "result": "INSERT OR IGNORE INTO results (scan_id, node, kind, data, digest, run) "
              "VALUES (?, ?, ?, ?, ?, ?)",
    "checkpoint": "INSERT OR REPLACE INTO checkpoints (scan_id, node, item, records, run) "
                  "VALUES (?, ?, ?, ?, ?)",
}
Op = tuple[str, tuple[Any, ...]]


def wait_limit() -> float:
    try:
        return max(0.0, float(os.environ.get("PENTORA_STORE_WAIT", "30")))
    except ValueError:
        return 30.0


def execute_ops(conn: sqlite3.Connection, ops: list[Op]) -> None:
    """Run ``ops`` in one transaction (all or nothing)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # a run of ops of one kind (a sweep's thousands of results) is one executemany:
        # sqlite3 loops over its rows in C, not a Python call and statement lookup each,
        # which held the interpreter lock against the event loop for seconds
        for name, run in groupby(ops, key=itemgetter(0)):
            conn.executemany(SQL[name], [params for _, params in run])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def import_pending(conn: sqlite3.Connection, path: Path) -> int:
    """Apply the queues earlier scans left beside the store when it stayed locked."""
    done = 0
    for pending in sorted(path.parent.glob(path.name + ".pending-*.jsonl")):
        try:
            text = read_input(pending, what="pending store file", max_bytes=PENDING_MAX_BYTES)
            ops = [(str(n), tuple(p)) for n, p in map(json.loads, text.splitlines()) if n in SQL]
        except (InputError, OSError, ValueError, TypeError) as e:
            log.warning("skipping unreadable pending store file {}: {}", pending, e)
            continue
        execute_ops(conn, ops)
        pending.unlink()
        done += len(ops)
    return done


class Writer:
    """The queue of one scan's writes and the single thread that commits them."""

    def __init__(self, path: Path, scan_id: str) -> None:
        self.path, self.scan_id = path, scan_id
        self.ops: list[Op] = []
        self.conn: sqlite3.Connection | None = None
        self.lock = gevent.lock.Semaphore()
        self.pool = gevent.threadpool.ThreadPool(1)  # one OS thread owns the connection
        self.trouble: str | None = None  # why the last commit failed (said once)
        self.locked = False  # found locked once in this scan: later commits do not wait
        self.damaged: StoreDamagedError | None = None  # no commit is tried again
        self.ticker: Any = None
        self.stopping = gevent.event.Event()  # not a kill: a commit in flight must finish
        # the store was as pentora last left it sound when first opened: stamped again at
        # the end, so that the next scan need not check it in full
        self.trusted = False

    def add(self, name: str, *params: Any) -> None:
        self.ops.append((name, params))

    def call(self, fn: Callable[[sqlite3.Connection], Any], busy: float = BUSY_WAIT * 5) -> Any:
        """``fn(conn)`` in the writer's thread; its exception is raised here."""
        with self.lock:
            return self._run(fn, busy)

    def _run(self, fn: Callable[[sqlite3.Connection], Any], busy: float) -> Any:
        ok, value = self.pool.apply(self._in_thread, (fn, busy))
        if not ok:
            raise value
        return value

    def _in_thread(self, fn: Callable[[sqlite3.Connection], Any], busy: float) -> tuple[bool, Any]:
        # An exception escaping a pool thread is printed with its traceback: hand it back.
        try:
            return True, self._with_conn(fn, busy)
        except Exception as e:
            return False, e

    def _with_conn(self, fn: Callable[[sqlite3.Connection], Any], busy: float) -> Any:
        if self.conn is None:
            self.trusted = _stamp.unchanged(self.path) or not self.path.exists()  # or new
            self.conn = connect(self.path, timeout=busy)
            imported = import_pending(self.conn, self.path)
            if imported:
                log.info("scan store {}: {} writes left pending by an earlier scan imported",
                         self.path, imported)
        self.conn.execute(f"PRAGMA busy_timeout = {int(busy * 1000)}")
        return fn(self.conn)

    def start(self) -> None:
        self.ticker = gevent.spawn(self._tick)

    def _tick(self) -> None:
        while not self.stopping.wait(FLUSH_EVERY):
            self.flush()

    def flush(self, busy: float | None = None) -> bool:
        """Commit the queue; on failure keep it for the next try. True if all is written.
        ``busy``: how long to wait for a lock (default ``BUSY_WAIT``, or no wait at all
        once the store was found locked in this scan)."""
        # Under the lock: batches commit in the order they were queued, so a checkpoint
        # is never in the store before the findings it covers.
        with self.lock:
            if not self.ops:
                return True
            if self.damaged is not None:
                return False
            if busy is None:
                busy = 0.0 if self.locked else BUSY_WAIT
            ops, self.ops = self.ops, []
            try:
                self._run(lambda c: execute_ops(c, ops), busy)
            except (sqlite3.Error, StoreError, OSError) as e:
                self.ops[:0] = ops
                self._troubled(e)
                return False
            if self.trouble is not None:
                log.warning("scan store {} is writable again; every result kept meanwhile is "
                            "written", self.path)
                self.trouble = None
            return True

    def _troubled(self, e: BaseException) -> None:
        if isinstance(e, StoreDamagedError) or is_damaged(e):
            self.damaged = e if isinstance(e, StoreDamagedError) else StoreDamagedError(self.path, e)
            _stamp.forget(self.path)
            self.trouble = f"damaged: {self.damaged.reason}"
            log.warning("{}; {} writes of this scan are kept and saved beside it when the scan "
                        "ends (the -o outputs have its results too)", self.damaged, len(self.ops))
            return
        why = "locked by another pentora" if is_busy(e) else str(e)
        self.locked = self.locked or is_busy(e)
        if why != self.trouble:
            log.warning("scan store {}: {}; {} writes kept in memory and retried (results also "
                        "stream to the -o outputs)", self.path, why, len(self.ops))
        self.trouble = why

    def close(self) -> Path | None:
        """Stop ticking, commit everything (waiting up to ``PENTORA_STORE_WAIT`` for a
        lock); returns the pending file the queue went to if the store stayed locked."""
        if self.ticker is not None:
            self.stopping.set()
            self.ticker.join()
        deadline = time.monotonic() + wait_limit()
        said = False
        # The scan's one wait for a lock; none for a damaged store, which waiting cannot mend.
        while not self.flush(BUSY_WAIT) and self.damaged is None and time.monotonic() < deadline:
            if not said:
                log.warning("waiting up to {:.0f}s for the scan store {} ({})", wait_limit(),
                            self.path, self.trouble)
                said = True
            gevent.sleep(0.2)
        pending = self._spill() if self.ops else None
        if self.conn is not None:
            conn, self.conn = self.conn, None
            stamp = self.trusted and self.damaged is None and pending is None
            self.pool.apply(self._closed, (conn, stamp))
        self.pool.kill()
        return pending

    def _closed(self, conn: sqlite3.Connection, stamp: bool) -> None:
        _close_quietly(conn)
        if stamp:  # only if this close checkpointed the log (no other pentora has it open)
            _stamp.record(self.path)

    def _spill(self) -> Path | None:
        pending = self.path.with_name(f"{self.path.name}.pending-{self.scan_id}-{os.getpid()}.jsonl")
        try:
            with open(pending, "w", encoding="utf-8") as f:
                for name, params in self.ops:
                    f.write(json.dumps([name, list(params)]) + "\n")
        except OSError as e:
            log.error("scan store {} stayed unwritable ({}) and its {} pending writes could not be "
                      "saved to {} either: {}; the -o outputs hold the results", self.path,
                      self.trouble, len(self.ops), pending, e.strerror)
            return None
        if self.damaged is not None:
            log.warning("scan store {} is damaged: {} writes of this scan saved to {}; after `pentora "
                        "scans check --repair` they are added to the repaired store", self.path,
                        len(self.ops), pending)
        else:
            log.warning("scan store {} stayed unwritable ({}): {} writes saved to {}; they are added "
                        "the next time the store is opened", self.path, self.trouble, len(self.ops),
                        pending)
        self.ops = []
        return pending


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error as e:
        log.debug("closing the scan store: {}", e)
