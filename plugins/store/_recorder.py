"""``StorePlugin``: the hooks that write each scan into the store and restore it on resume."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pentora_plugins.store._db import (
    ENV,
    StoreError,
    check_intact,
    configured_path,
    connect,
    pid_alive,
    scan_row,
    store_failure,
    store_flag,
)

from pentora import PentoraError, clean_text, hookimpl, logger

if TYPE_CHECKING:
    from pentora_plugins.store._writer import Writer

    from pentora import NodeRestore

# This module is imported whenever pentora starts (the plugin is registered then): what
# only a stored scan needs (the codec, the writer and its gevent, the engine's API) is
# imported by the hook that first needs it, so that `pentora --help` costs none of it; the
# logger imports loguru when a line is logged at the chosen level.

log = logger.bind(component="store")


@dataclass
class _Scan:
    writer: Writer
    run: int
    restore: dict[str, NodeRestore] = field(default_factory=dict)


class StorePlugin:
    """Keeps every scan in the SQLite store. ``path`` None: ``$PENTORA_STORE`` or the
    default, and only once the CLI has enabled it (a library records only when asked:
    ``StorePlugin(path)`` or ``$PENTORA_STORE``)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.explicit = path
        self.cli = False  # set when the pentora command line loads the plugin
        self.scans: dict[str, _Scan] = {}

    def path(self) -> Path | None:
        if self.explicit is None and not self.cli and not os.environ.get(ENV):
            return None
        return configured_path(self.explicit)

    # -- scan ----------------------------------------------------------------------------

    @hookimpl
    def pentora_cli_commands(self, subparsers: Any, common: Any) -> None:
        from pentora_plugins.store._cli import add_commands

        self.cli = True  # the command line records scans by default
        add_commands(subparsers, common, self)

    @hookimpl
    def pentora_scan_store(self, path: str | None) -> Any:
        from pentora_plugins.store._reader import SqliteScanStore

        where = configured_path(path) if path is not None else configured_path(self.explicit)
        if where is None:
            return None  # the store is turned off
        connect(where).close()  # created if new, refused (named) if unusable
        return SqliteScanStore(where)

    @hookimpl
    def pentora_scan_start(self, scan: Any) -> None:
        # options["store"]: a scan started by a caller that chose its store (the server)
        chosen = scan.options.get("store")
        path = configured_path(chosen) if chosen else self.path()
        if path is None:
            return
        from pentora_plugins.store._writer import Writer

        writer = Writer(path, scan.scan_id)
        try:
            state = writer.call(lambda conn: self._begin(conn, scan, writer))
        except (StoreError, OSError) as e:
            log.warning("{}; this scan is not stored (its results still go to the -o outputs)", e)
            writer.close()
            return
        except Exception as e:  # damaged, locked past the wait, disk full…: say which, scan anyway
            why = store_failure(path, e) if isinstance(e, sqlite3.Error) else e
            log.warning("{}; this scan is not stored (its results still go to the -o outputs)", why)
            writer.close()
            return
        self.scans[scan.scan_id] = state
        writer.start()

    @hookimpl
    def pentora_cli_scan_vars(self, args: Any, dag: Any, resuming: bool) -> None:
        # Not a var: the one point before `pentora scan` opens its outputs and scans. A
        # damaged store is refused here rather than found by the scan's first write.
        path = self.path()
        if path is not None and not resuming:
            check_intact(path)

    @hookimpl
    def pentora_scan_idle(self, scan: Any) -> object | None:
        return None if scan.scan_id in self.scans else self  # this scan is not being stored

    def _begin(self, conn: Any, scan: Any, writer: Writer) -> _Scan:
        row = conn.execute("SELECT runs FROM scans WHERE id = ?", (scan.scan_id,)).fetchone()
        host, pid = os.uname().nodename, os.getpid()
        if scan.options.get("resume") and row is not None:
            state = _Scan(writer, run=int(row[0]) + 1, restore=_restorable(conn, scan.scan_id))
            writer.add("scan_rerun", state.run, pid, host, scan.scan_id)
            return state
        writer.add("scan_new", scan.scan_id, scan.dag.name, json.dumps(scan.dag.to_dict()),
                   json.dumps(scan.vars, default=str), scan.started_at, pid, host)
        for node in scan.dag.nodes:
            writer.add("node_new", scan.scan_id, node.instance_id, node.module_type)
        return _Scan(writer, run=1)

    @hookimpl
    def pentora_scan_complete(self, scan: Any, result: Any) -> None:
        state = self.scans.pop(scan.scan_id, None)
        if state is None:
            return
        state.writer.add("scan_end", result.status, result.finished_at, result.error, scan.scan_id)
        pending = state.writer.close()
        if pending is None:
            self._retain(state.writer.path, scan.scan_id)
        if result.status == "cancelled" and self.cli and pending is None:
            # a log line, so that --log-format json keeps stderr all JSON
            log.warning("scan {} stopped; results so far are in the store and the outputs. Resume "
                        "it with: pentora scan --resume {}{}", scan.scan_id, scan.scan_id,
                        store_flag(state.writer.path))

    def _retain(self, path: Path, current: str) -> None:
        from pentora_plugins.store import _stamp
        from pentora_plugins.store._db import delete_scans, retention_victims

        keep = os.environ.get("PENTORA_STORE_KEEP", "").strip()
        if not keep.isdigit():
            return
        try:
            with _stamp.kept(path):
                conn = connect(path)
                try:
                    victims = [v for v in retention_victims(conn, int(keep)) if v != current]
                    if victims:
                        delete_scans(conn, victims)
                        log.info("scan store: removed {} old scan(s), keeping {}", len(victims),
                                 keep)
                finally:
                    conn.close()
        except Exception as e:  # retention is housekeeping: never fail a scan over it
            log.warning("scan store {}: retention (PENTORA_STORE_KEEP={}) skipped: {}", path, keep, e)

    # -- nodes and findings ----------------------------------------------------------------

    @hookimpl
    def pentora_node_start(self, scan: Any, node: Any, record: Any) -> None:
        state = self.scans.get(scan.scan_id)
        if state is None:
            return
        if state.run > 1 and record.attempts == 1:
            # A node that runs again finds its findings again, and those of the items it
            # had finished are announced again right after this: dropping what earlier
            # runs stored (in the same commit) keeps every finding exactly once.
            state.writer.add("forget_results", scan.scan_id, node.instance_id, state.run)
        state.writer.add("node_start", state.run, scan.scan_id, node.instance_id)

    @hookimpl
    def pentora_record(self, scan: Any, node: Any, kind: str, record: Any) -> None:
        state = self.scans.get(scan.scan_id)
        if state is None:
            return
        from pentora_plugins.store._codec import finding_json

        data = finding_json(kind, record)
        digest = hashlib.sha1(f"{node.instance_id}\0{data}".encode(), usedforsecurity=False).hexdigest()
        state.writer.add("result", scan.scan_id, node.instance_id, kind, data, digest, state.run)

    @hookimpl
    def pentora_node_checkpoint(self, scan: Any, node: Any, item: str | None, records: list[Any],
                                outputs: dict[str, Any] | None) -> None:
        state = self.scans.get(scan.scan_id)
        if state is None:
            return
        from pentora_plugins.store._codec import UnstorableError, dumps, finding_json

        from pentora import record_kind

        if item is not None:
            data = json.dumps([json.loads(finding_json(record_kind(r), r)) for r in records])
            state.writer.add("checkpoint", scan.scan_id, node.instance_id, str(item), data, state.run)
            return
        try:
            text: str | None = dumps(outputs or {})
        except (UnstorableError, ValueError) as e:
            log.info("node '{}' outputs cannot be stored ({}); a resumed scan runs it again",
                     node.instance_id, e)
            text = None
        state.writer.add("node_outputs", text, scan.scan_id, node.instance_id)

    def _node_end(self, scan: Any, record: Any) -> None:
        state = self.scans.get(scan.scan_id)
        if state is None:
            return
        state.writer.add("node_end", record.status, json.dumps(record.to_dict(), default=str),
                         state.run, scan.scan_id, record.node)
        state.writer.flush()  # a node's end is committed at once, not at the next tick

    @hookimpl
    def pentora_node_complete(self, scan: Any, record: Any) -> None:
        self._node_end(scan, record)

    @hookimpl
    def pentora_node_failed(self, scan: Any, record: Any) -> None:
        self._node_end(scan, record)

    @hookimpl
    def pentora_node_skipped(self, scan: Any, record: Any) -> None:
        self._node_end(scan, record)

    @hookimpl
    def pentora_node_cancelled(self, scan: Any, record: Any) -> None:
        self._node_end(scan, record)

    # -- resuming --------------------------------------------------------------------------

    @hookimpl
    def pentora_node_restore(self, scan: Any, node: Any) -> NodeRestore | None:
        state = self.scans.get(scan.scan_id)
        return state.restore.get(node.instance_id) if state is not None else None

    @hookimpl
    def pentora_scan_resume(self, scan_id: str) -> tuple[str, dict[str, Any]] | None:
        path = self.path()
        if path is None:
            return None
        if not path.exists():
            raise StoreError(f"no scan store at {path}, so nothing to resume; pass --store PATH")
        check_intact(path)
        conn = connect(path)
        try:
            if conn.execute("SELECT 1 FROM scans WHERE id = ?", (scan_id,)).fetchone() is None:
                return None
            row = scan_row(conn, scan_id)
        except sqlite3.Error as e:
            raise store_failure(path, e) from e
        finally:
            conn.close()
        if row["status"] == "completed":
            raise PentoraError(f"scan {scan_id} completed; there is nothing to resume (see "
                               f"`pentora scans show {scan_id}`)")
        if row["status"] == "running" and pid_alive(row["pid"], row["host"]):
            raise PentoraError(f"scan {scan_id} is still running (pid {row['pid']}); stop it first")
        return row["dag"], json.loads(row["vars"])


def _restorable(conn: Any, scan_id: str) -> dict[str, NodeRestore]:
    """What an earlier run of ``scan_id`` finished: whole nodes, and items of the others.

    A node whose stored outputs or findings cannot be read back (or name a type the store
    may not rebuild) is left out: it runs again."""
    from pentora_plugins.store._codec import loads, rebuild, record_classes

    from pentora import NodeRestore

    classes = record_classes()
    out: dict[str, NodeRestore] = {}
    rows = conn.execute("SELECT node, outputs FROM nodes WHERE scan_id = ? AND status = 'completed' "
                        "AND outputs IS NOT NULL", (scan_id,)).fetchall()
    for node, outputs in rows:
        found = conn.execute("SELECT kind, data FROM results WHERE scan_id = ? AND node = ? "
                             "ORDER BY id", (scan_id, node)).fetchall()
        try:
            values = loads(outputs)
            records = [(kind, rebuild(json.loads(data), classes)) for kind, data in found]
        except Exception as e:  # whatever a damaged or crafted row holds: that node runs again
            _unreadable(scan_id, node, e)
            continue
        out[node] = NodeRestore(completed=True, outputs=values, records=records)
    for node, item, data in conn.execute("SELECT node, item, records FROM checkpoints WHERE "
                                         "scan_id = ? ORDER BY rowid", (scan_id,)):
        saved = out.setdefault(node, NodeRestore(completed=False))
        if saved.completed:
            continue
        try:
            saved.items[item] = [rebuild(d, classes) for d in json.loads(data)]
        except Exception as e:  # the item is done again
            _unreadable(scan_id, node, e)
    return out


def _unreadable(scan_id: str, node: str, e: Exception) -> None:
    # Names and types come from the store: cleaned before they reach a terminal.
    from pentora_plugins.store._codec import RefusedTypeError

    if isinstance(e, RefusedTypeError):
        log.warning("scan {}: node '{}': the store names type '{}', which is not a record type "
                    "pentora stores; refused (nothing of it is rebuilt), the node runs again",
                    scan_id, clean_text(str(node)), clean_text(e.type_name))
    else:
        log.warning("scan {}: node '{}': its outputs in the store cannot be read back ({}); it runs "
                    "again", scan_id, clean_text(str(node)), clean_text(str(e)))


