"""What pentora last found sound: the store file's identity, so a scan checks only a
store that changed since.

As git's index keeps each file's stat to know which files to read again: once pentora has
checked the store (and found it sound), or closed it after its own writes with the log
checkpointed, it writes ``FILE.checked`` beside it, holding the store's ``st_dev``,
``st_ino``, ``st_size``, ``st_mtime_ns`` and ``st_ctime_ns`` (and the ``-wal``'s device,
inode, size and mtime when the log holds frames). A scan whose store has exactly that
identity skips ``quick_check``. Whatever else writes the file — a process killed in the
middle of a write (its frames are in the ``-wal``), a copy over it, a truncation, bytes
changed with ``dd``, another file renamed over it — changes its size, its inode, its
mtime, or at least its ctime, which no user tool can set back (``touch`` sets the mtime).

The ``-wal``'s ctime is not kept: SQLite itself sets the log's owner and mode at every
opening, read-only ones included, which changes it. An empty log holds nothing: it counts
as no log, as SQLite reads it.

A stamp written in the same clock tick as the store's last change is not trusted (git's
"racy clean" entries): a change in that tick would leave every field as recorded. The
stamp's own mtime, on the same filesystem, says which tick it was written in; writing it
waits one short while for the clock to move past a coarse filesystem's tick.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pentora import InputError, logger, open_input

log = logger.bind(component="store")

SUFFIX = ".checked"
VERSION = 1
MAX_BYTES = 4096  # a stamp is a hundred bytes: more is not one pentora wrote
RACY_WAIT = 0.05  # seconds: past the tick of ext4, XFS or tmpfs timestamps (a few ms)

Identity = dict[str, Any]


def stamp_path(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


def identity(path: Path) -> Identity | None:
    """The store's and its log's identity now; None when the store cannot be looked at."""
    try:
        st = os.stat(path)
        wal = os.stat(f"{path}-wal")
    except FileNotFoundError:
        if not os.path.exists(path):
            return None
        wal = None
    except OSError:
        return None
    return {"store": [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns],
            "wal": None if wal is None or wal.st_size == 0 else
            [wal.st_dev, wal.st_ino, wal.st_size, wal.st_mtime_ns]}


def _newest(ident: Identity) -> int:
    times = ident["store"][3:5] + (ident["wal"][3:4] if ident["wal"] else [])
    return max(times)


def unchanged(path: Path) -> bool:
    """The store is exactly as pentora last left it sound: its stamp names its identity
    now, and was written after the store's last change (in a later clock tick)."""
    try:
        # its mtime before its text: a stamp renamed in between is judged by the older
        # tick, which can only make it look racy, never the other way round
        written = os.stat(stamp_path(path)).st_mtime_ns
        with open_input(stamp_path(path), what="scan store stamp", max_bytes=MAX_BYTES) as f:
            data = json.loads(f.read())
    except (InputError, OSError, ValueError):  # none, unreadable, not one pentora wrote
        return False
    now = identity(path)
    if now is None or not isinstance(data, dict) or data.get("version") != VERSION:
        return False
    return data.get("identity") == now and _newest(now) < written


def record(path: Path, since: Identity | None = None) -> bool:
    """Stamp the store as sound as it is now. ``since``: its identity when the check that
    found it sound began (stamped only if nothing changed it meanwhile); None: pentora's
    own connection has just closed it (stamped only if that checkpointed the log, that is,
    no other connection has it open). True if stamped."""
    now = identity(path)
    if now is None or (now != since if since is not None else now["wal"] is not None):
        return False
    try:
        written = _write(path, now)
        if _newest(now) >= written:  # the same tick as the store's change: wait it out once
            time.sleep(RACY_WAIT)
            _write(path, now)
    except OSError as e:  # a read-only folder, a full disk: the next scan checks in full
        log.debug("scan store {}: cannot write {}: {}", path, stamp_path(path), e)
        forget(path)
        return False
    return True


def _write(path: Path, ident: Identity) -> int:
    """Write the stamp whole or not at all; its mtime (the tick it was written in)."""
    from pentora import atomic_output  # tempfile and the rest: not for a check's start-up

    out = atomic_output(stamp_path(path), line_buffering=False)
    try:
        with out:
            out.write(json.dumps({"version": VERSION, "identity": ident}) + "\n")
    finally:
        kept = out.abandon()  # after a failed rename: no partial file left beside the store
        if kept is not None:
            with contextlib.suppress(OSError):
                os.unlink(kept)
    return os.stat(stamp_path(path)).st_mtime_ns


def forget(path: Path) -> None:
    """Drop the stamp: the next scan checks the store in full."""
    with contextlib.suppress(OSError):  # gone already, or a folder pentora may not write
        os.unlink(stamp_path(path))


@contextlib.contextmanager
def kept(path: Path) -> Iterator[None]:
    """Around one of pentora's connections to the store: a store found unchanged before
    it opens is stamped again once it has closed (what it changed, pentora changed)."""
    trusted = unchanged(path)
    yield
    if trusted:
        record(path)
