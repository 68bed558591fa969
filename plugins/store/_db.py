"""The SQLite file of the scan store: where it lives, its schema, and reading it.

WAL mode: readers (``pentora scans …``) never wait for a scan that is writing, and a
commit is one append to the log. ``synchronous=FULL`` makes each commit durable against
power loss too, not only against a killed process.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pentora import InputError, PentoraError, logger, open_input
from pentora.cli import EXIT_STORE, CliError

ENV = "PENTORA_STORE"
OFF = ("off", "none", "no")

SCHEMA = """
CREATE TABLE IF NOT EXISTS scans (
    id TEXT PRIMARY KEY, dag_name TEXT NOT NULL, dag TEXT NOT NULL, vars TEXT NOT NULL,
    status TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL, runs INTEGER NOT NULL,
    pid INTEGER, host TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS nodes (
    scan_id TEXT NOT NULL, node TEXT NOT NULL, module_type TEXT NOT NULL, status TEXT NOT NULL,
    record TEXT, outputs TEXT, run INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (scan_id, node));
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY, scan_id TEXT NOT NULL, node TEXT NOT NULL, kind TEXT NOT NULL,
    data TEXT NOT NULL, digest TEXT NOT NULL, run INTEGER NOT NULL, UNIQUE (scan_id, digest));
CREATE INDEX IF NOT EXISTS results_scan ON results (scan_id, node);
CREATE TABLE IF NOT EXISTS checkpoints (
    scan_id TEXT NOT NULL, node TEXT NOT NULL, item TEXT NOT NULL, records TEXT NOT NULL,
    run INTEGER NOT NULL, PRIMARY KEY (scan_id, node, item));
"""

log = logger.bind(component="store")

TABLES = ("results", "checkpoints", "nodes")  # rows keyed by scan_id, deleted with their scan


class StoreError(PentoraError):
    """The scan store cannot be read or written (named file, the reason, what to do)."""


class StoreDamagedError(StoreError, CliError):
    """The store file is damaged (a malformed page, not a database, an I/O error): no
    retry helps, ``pentora scans check --repair`` does. Exit code ``EXIT_STORE``."""

    def __init__(self, path: Path, reason: object) -> None:
        self.path, self.reason = path, str(reason)
        CliError.__init__(self, f"scan store {path} is damaged ({reason}): run `pentora scans "
                                f"check --repair{store_flag(path)}`", EXIT_STORE)


# SQLite's primary result codes that mean the file itself is bad, not busy nor full:
# SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGE_CODES = {10, 11, 26}
_DAMAGE_WORDS = ("malformed", "not a database", "corrupt", "disk i/o error")


def default_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "pentora" / "scans.db"


def configured_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The store file: ``explicit``, else ``$PENTORA_STORE``, else the default; None: off."""
    value = str(explicit) if explicit is not None else os.environ.get(ENV, "")
    if value.strip().lower() in OFF:
        return None
    return Path(value).expanduser() if value.strip() else default_path()


def store_flag(path: Path) -> str:
    """`` --store PATH`` for a command to repeat, unless PATH is where it looks anyway."""
    return "" if path == configured_path(None) else f" --store {path}"


def is_damaged(e: BaseException) -> bool:
    """The file is damaged: waiting and retrying will not help (unlike ``is_busy``)."""
    if not isinstance(e, sqlite3.DatabaseError):
        return False
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    return any(word in str(e).lower() for word in _DAMAGE_WORDS)


def is_busy(e: BaseException) -> bool:
    """Another process holds the write lock (``database is locked`` / ``busy``)."""
    text = str(e).lower()
    return isinstance(e, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def refuse_special(path: Path) -> None:
    """A store that exists must be a regular file: SQLite would read a device as a damaged
    database, and a repair would then move ``/dev/zero`` aside. Opened without reading,
    through pentora's input reader (which refuses devices, FIFOs, sockets and folders by
    name without blocking)."""
    if not os.path.lexists(path):
        return
    try:
        with open_input(path, what="scan store", max_bytes=0):
            pass
    except InputError as e:
        raise StoreError(f"{e} (--store FILE, or --no-store)") from None


def connect(path: Path, timeout: float = 5.0, create: bool = True) -> sqlite3.Connection:
    """Open (and if needed create) the store; autocommit mode: transactions are explicit."""
    refuse_special(path)
    if not create and not path.exists():
        raise StoreError(f"no scan store at {path} (scans are stored there by `pentora scan`; "
                         f"choose another with --store PATH or ${ENV})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None,
                               check_same_thread=False)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(f"cannot open the scan store {path}: {e}; pass --store PATH or "
                         f"--no-store") from e
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if create and not {"scans", "checkpoints"} <= have:  # a write: only when needed
            conn.executescript(SCHEMA)
    except sqlite3.DatabaseError as e:
        conn.close()
        if is_busy(e):
            raise
        if is_damaged(e):
            raise StoreDamagedError(path, e) from e
        if "full" in str(e):
            raise StoreError(f"cannot write the scan store {path}: {e}; free some space there or "
                             f"pass --store PATH") from e
        raise StoreError(f"{path} is not a usable scan store: {e}; move it away or pass "
                         f"--store PATH") from e
    return conn


def check_intact(path: Path) -> bool:
    """``StoreDamagedError`` unless ``quick_check`` finds the store sound (a store not created
    yet is sound). One read of the file, no index cross-checks. Skipped for a store whose
    identity is as pentora last left it sound (``_stamp``): then only its header and
    schema are read. True when ``quick_check`` ran."""
    if not path.exists():
        return False
    refuse_special(path)
    from pentora_plugins.store import _stamp

    known = _stamp.unchanged(path)
    before = None if known else _stamp.identity(path)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open the scan store {path}: {e}; pass --store PATH or "
                         f"--no-store") from e
    try:
        if known:
            # SQLite checks the header and parses the whole schema to answer this: a file
            # that is no database, or whose schema page is damaged, is still refused here
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            log.debug("scan store {}: unchanged since pentora last found it sound, quick_check "
                      "skipped", path)
            return False
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.Error as e:  # damaged, or locked in a way a WAL reader is not
        failure = store_failure(path, e)
        if isinstance(failure, StoreDamagedError):
            _stamp.forget(path)
        raise failure from e
    finally:
        conn.close()
    if problems != ["ok"]:
        _stamp.forget(path)
        raise StoreDamagedError(path, "; ".join(problems))
    _stamp.record(path, since=before)
    return True


def store_failure(path: Path, e: sqlite3.Error) -> StoreError:
    """The message for an error reading or writing the store: damaged, locked, or else."""
    if is_damaged(e):
        return StoreDamagedError(path, e)
    if is_busy(e):
        return StoreError(f"the scan store {path} is locked by another pentora ({e}); try again "
                          f"when it has finished")
    return StoreError(f"scan store {path}: {e}")


@contextlib.contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection for the ``scans`` commands; a locked store is waited for, then named;
    a damaged one is named with the command that repairs it. A store that was as pentora
    last left it sound is stamped so again when the connection closes (``scans rm``
    changes it)."""
    from pentora_plugins.store import _stamp

    with _stamp.kept(path):
        try:
            conn = connect(path, timeout=10.0)
        except sqlite3.Error as e:
            raise store_failure(path, e) from e
        try:
            yield conn
        except sqlite3.Error as e:
            raise store_failure(path, e) from e
        finally:
            conn.close()


def resolve_id(conn: sqlite3.Connection, given: str) -> str:
    """The full scan ID for ``given`` (an ID or a unique prefix of one)."""
    rows = [r[0] for r in conn.execute("SELECT id FROM scans WHERE id = ? OR id LIKE ? ESCAPE '\\'",
                                       (given, _like_prefix(given)))]
    if given in rows:
        return given
    if len(rows) == 1:
        return str(rows[0])
    if not rows:
        raise StoreError(f"no scan '{given}' in the store; see `pentora scans list`")
    raise StoreError(f"'{given}' matches {len(rows)} scans ({', '.join(sorted(rows)[:5])}…); "
                     "give more of the ID")


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def scan_row(conn: sqlite3.Connection, scan_id: str) -> dict[str, Any]:
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM scans WHERE id = ?", (scan_id,)).fetchone()
    if row is None:
        raise StoreError(f"no scan '{scan_id}' in the store; see `pentora scans list`")
    return dict(row)


def pid_alive(pid: int | None, host: str | None) -> bool:
    """Is the process that wrote a ``running`` scan still there (same machine only)?"""
    if not pid or host != os.uname().nodename:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def shown_status(row: dict[str, Any]) -> str:
    """``running`` only while its process lives; a killed scan reads ``interrupted``."""
    if row["status"] == "running" and not pid_alive(row.get("pid"), row.get("host")):
        return "interrupted"
    return str(row["status"])


def delete_scans(conn: sqlite3.Connection, ids: list[str]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for scan_id in ids:
            for table in TABLES:
                conn.execute(f"DELETE FROM {table} WHERE scan_id = ?", (scan_id,))  # noqa: S608
            conn.execute("DELETE FROM scans WHERE id = ?", (scan_id,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def retention_victims(conn: sqlite3.Connection, keep: int) -> list[str]:
    """Scans beyond the newest ``keep``, never one whose process still runs."""
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute(
        "SELECT id, status, pid, host FROM scans ORDER BY started_at DESC, id")]
    return [r["id"] for r in rows[keep:] if shown_status(r) != "running"]


def load_records(conn: sqlite3.Connection, scan_id: str) -> list[dict[str, Any]]:
    """The stored records of ``scan_id`` (dicts, ``kind`` first), in the order found."""
    return [json.loads(d) for (d,) in conn.execute(
        "SELECT data FROM results WHERE scan_id = ? ORDER BY id", (scan_id,))]
