"""The check before a scan reads only a store that changed since pentora last found it
sound: real store files, real SQLite, the statements it runs seen through its trace
callback; anything but pentora writing the file forces the full check."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pentora_plugins.store import _repair, _stamp
from pentora_plugins.store._db import StoreDamagedError, check_intact, connect

from tests.plugins.test_store import _burst_scan, corrupt_middle_page, rows, scans_with_notes


@pytest.fixture
def statements(monkeypatch) -> list[str]:
    """Every SQL statement the store's connections run in this process, as SQLite runs it."""
    seen: list[str] = []
    real = sqlite3.connect

    def tracing(*args, **kw):
        conn = real(*args, **kw)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", tracing)
    return seen


def quick_checks(seen: list[str]) -> int:
    return sum("quick_check" in s for s in seen)


@pytest.fixture
def stamped(tmp_path) -> Path:
    """A store two scans wrote, stamped by the second's clean close."""
    db = tmp_path / "scans.db"
    scans_with_notes(db, 2)
    assert _stamp.unchanged(db), "a scan's clean close of a sound store stamps it"
    return db


def test_an_unchanged_store_is_not_checked_again(stamped, statements):
    assert check_intact(stamped) is False
    assert quick_checks(statements) == 0
    assert any("sqlite_master" in s for s in statements)  # the header and schema still read
    _stamp.forget(stamped)
    assert check_intact(stamped) is True and quick_checks(statements) == 1
    assert check_intact(stamped) is False and quick_checks(statements) == 1  # stamped again


def test_a_scan_of_a_stamped_store_stamps_it_again(stamped, statements):
    before = _stamp.identity(stamped)
    assert check_intact(stamped) is False
    assert _burst_scan(stamped, release=False).ok
    assert _stamp.identity(stamped) != before  # the scan wrote to it…
    assert check_intact(stamped) is False  # …and left it stamped
    assert quick_checks(statements) == 0
    assert rows(stamped, "SELECT count(*) FROM scans") == [(3,)]


def test_a_new_store_is_stamped_by_the_scan_that_creates_it(tmp_path):
    db = tmp_path / "scans.db"
    assert check_intact(db) is False  # none yet: nothing to check
    assert _burst_scan(db, release=False).ok
    assert _stamp.unchanged(db)


def test_bytes_written_in_the_middle_force_the_check_even_with_the_mtime_set_back(stamped,
                                                                                statements):
    st = os.stat(stamped)
    corrupt_middle_page(stamped, "results")
    os.utime(stamped, ns=(st.st_atime_ns, st.st_mtime_ns))  # as `touch -d` would; ctime moves on
    assert os.path.getsize(stamped) == st.st_size
    with pytest.raises(StoreDamagedError, match="malformed"):
        check_intact(stamped)
    assert quick_checks(statements) == 1
    assert not _stamp.stamp_path(stamped).exists()  # damage found: no stamp to trust later


def test_a_truncated_store_is_checked(stamped):
    size = os.path.getsize(stamped)
    os.truncate(stamped, size - 4096)
    # (SQLite fails to prepare quick_check itself here: the schema names a page past the
    # end, so the trace sees no statement; the stamp no longer matching is what forces it)
    assert not _stamp.unchanged(stamped)
    with pytest.raises(StoreDamagedError, match="malformed"):
        check_intact(stamped)
    assert not _stamp.stamp_path(stamped).exists()


def test_a_store_replaced_by_a_copy_is_checked(stamped, statements, tmp_path):
    copy = tmp_path / "copy.db"
    shutil.copy2(stamped, copy)  # the same bytes and mtime, another inode
    os.replace(copy, stamped)
    assert check_intact(stamped) is True and quick_checks(statements) == 1
    assert check_intact(stamped) is False and quick_checks(statements) == 1
    # copied over in place (cp keeps the inode): the ctime moves on
    shutil.copyfile(stamped, copy)
    shutil.copy2(copy, stamped)
    assert check_intact(stamped) is True and quick_checks(statements) == 2


WRITER = """
import sqlite3, sys
from pathlib import Path
from pentora_plugins.store._db import connect
conn = connect(Path(sys.argv[1]))
conn.execute("PRAGMA wal_autocheckpoint = 0")  # the hardest case: the store's file untouched
for i in range(1000000):
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO checkpoints VALUES ('x', 'n', ?, '[]', 1)", (str(i),))
    conn.execute("COMMIT")
    if i == 50:
        print("writing", flush=True)
"""


def test_a_writer_killed_mid_write_forces_the_check(stamped, statements):
    """A process killed between its commits leaves them in the -wal, the store's own file
    untouched: the log's identity forces the check, which reads them."""
    main = os.stat(stamped)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(stamped)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert os.path.getsize(f"{stamped}-wal") > 0
    assert os.stat(stamped).st_mtime_ns == main.st_mtime_ns  # what changed is in the log only
    assert check_intact(stamped) is True and quick_checks(statements) == 1
    written = rows(stamped, "SELECT count(*) FROM checkpoints WHERE scan_id = 'x'")[0][0]
    assert written > 50
    # the check stamped the store with its log: as it is, it is not checked again
    assert check_intact(stamped) is False and quick_checks(statements) == 1


def test_a_store_another_pentora_is_writing_to_is_checked_at_each_change(stamped, statements):
    other = connect(stamped)  # another pentora's scan, between two of its commits
    try:
        other.execute("INSERT INTO checkpoints VALUES ('y', 'n', '1', '[]', 1)")
        assert check_intact(stamped) is True
        assert quick_checks(statements) == 1
        other.execute("INSERT INTO checkpoints VALUES ('y', 'n', '2', '[]', 1)")
        assert check_intact(stamped) is True and quick_checks(statements) == 2
        # a close while the other still has the store open checkpoints nothing: no stamp
        mine = connect(stamped)
        mine.close()
        assert not _stamp.record(stamped)
    finally:
        other.close()
    assert check_intact(stamped) is True and quick_checks(statements) == 3
    assert check_intact(stamped) is False


def test_a_stamp_written_in_the_stores_last_clock_tick_is_not_trusted(stamped, statements):
    changed = os.stat(stamped).st_ctime_ns
    stamp = _stamp.stamp_path(stamped)
    os.utime(stamp, ns=(changed, changed))  # as on a filesystem with coarse timestamps
    assert not _stamp.unchanged(stamped)
    assert check_intact(stamped) is True and quick_checks(statements) == 1


def test_a_stamp_not_written_by_pentora_is_not_trusted(stamped, statements):
    stamp = _stamp.stamp_path(stamped)
    for text in ("", "garbage", "[]", '{"version": 99}', "x" * 10_000):
        stamp.write_text(text)
        assert not _stamp.unchanged(stamped), text
    stamp.unlink()
    os.mkfifo(stamp)  # refused by name, never opened to wait for a writer
    assert check_intact(stamped) is True and quick_checks(statements) == 1


def test_scans_check_always_runs_integrity_check_and_stamps_a_sound_store(stamped, statements):
    assert _repair.problems(stamped) == []
    assert sum("integrity_check" in s for s in statements) == 1
    assert _stamp.unchanged(stamped)
    corrupt_middle_page(stamped, "results")
    assert _repair.problems(stamped)
    assert not _stamp.stamp_path(stamped).exists()


def test_a_damaged_stamped_store_is_refused_before_the_scan(run_cli, stamped, tmp_path):
    """What a user sees: `dd` over the middle of the file, mtime set back with `touch`."""
    out = tmp_path / "out.jsonl"
    st = os.stat(stamped)
    corrupt_middle_page(stamped, "results")
    os.utime(stamped, ns=(st.st_atime_ns, st.st_mtime_ns))
    proc = run_cli("scan", "--targets", "127.0.0.1", "--profile", "port-scan", "-p", "1", "-o",
                   str(out), "--store", str(stamped))
    assert proc.returncode == 4, proc.stderr
    assert f"scan store {stamped} is damaged" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()  # refused before the scan


def test_a_scan_through_the_cli_skips_the_check_of_an_unchanged_store(run_cli, stamped, tmp_path):
    proc = run_cli("scan", "--targets", "127.0.0.1", "--profile", "port-scan", "-p", "1",
                   "--store", str(stamped), "-vv")
    assert proc.returncode == 0, proc.stderr
    assert "quick_check skipped" in proc.stderr
    assert _stamp.unchanged(stamped)  # stamped again after its own writes
    with open(stamped, "r+b") as f:  # its first page written again, the same bytes (dd)
        first = f.read(4096)
        f.seek(0)
        f.write(first)
    proc = run_cli("scan", "--targets", "127.0.0.1", "--profile", "port-scan", "-p", "1",
                   "--store", str(stamped), "-vv")
    assert proc.returncode == 0, proc.stderr
    assert "quick_check skipped" not in proc.stderr


@pytest.fixture
def coarse(tmp_path) -> Iterator[Path]:
    """A folder on a filesystem whose timestamps are whole seconds (ext4 with 128-byte
    inodes, on a loop device of the test's own)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem with whole-second timestamps needs root")
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is missing (apt-get install e2fsprogs)")
    image, folder = tmp_path / "coarse.img", tmp_path / "coarse"
    with image.open("wb") as f:
        f.truncate(16 << 20)
    folder.mkdir()
    for argv in (["mkfs.ext4", "-q", "-F", "-I", "128", str(image)],
                 ["mount", "-o", "loop", str(image), str(folder)]):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a whole-second filesystem here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        gc.collect()  # sqlite3 connections a `with` committed but did not close
        subprocess.run(["umount", str(folder)], check=True)


def next_second() -> None:
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def test_whole_second_timestamps_a_change_in_the_stamps_own_second_is_still_caught(coarse,
                                                                                   statements):
    db = coarse / "scans.db"
    scans_with_notes(db, 2)
    assert os.stat(db).st_ctime_ns % 1_000_000_000 == 0  # whole seconds indeed
    next_second()
    check_intact(db)  # the last scan's second is over: this stamp is trusted
    assert check_intact(db) is False
    checks = quick_checks(statements)
    # All in one second: a change, the check that stamps it, then dd (the mtime set back):
    # every field of the identity is as recorded, only the stamp's own second tells.
    next_second()
    with open(db, "r+b") as f:
        first = f.read(4096)
        f.seek(0)
        f.write(first)
    assert check_intact(db) is True and quick_checks(statements) == checks + 1
    recorded = json.loads(_stamp.stamp_path(db).read_text())["identity"]
    st = os.stat(db)
    corrupt_middle_page(db, "results")
    os.utime(db, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _stamp.identity(db) == recorded, "the second ended before the test's writes"
    with pytest.raises(StoreDamagedError, match="malformed"):
        check_intact(db)
    assert quick_checks(statements) == checks + 2
