"""``pentora.atomic_output``: a file replaced whole when closed, or left as it was."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pentora import atomic_output


def partials(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.partial"))


def test_written_beside_the_file_then_renamed_over_it(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    f = atomic_output(path)
    f.write("new\n")
    partial = Path(f.partial)
    assert partial.parent == tmp_path and partial.name.startswith(".out.txt.")
    assert partial.read_text() == "new\n"  # line-buffered: `tail -f` sees each line
    assert path.read_text() == "old\n" and f.name == str(path)
    f.close()
    assert path.read_text() == "new\n" and partials(tmp_path) == [] and f.state == "replaced"
    f.close()  # a second close is harmless


def test_a_block_that_raises_replaces_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_output(path) as f:
        f.write("half")
        raise RuntimeError("failed while writing")
    assert path.read_text() == "old\n"
    assert [p.read_text() for p in partials(tmp_path)] == ["half"]  # kept: something was written
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "other.txt"):
        raise RuntimeError("failed before writing")
    assert not (tmp_path / "other.txt").exists() and len(partials(tmp_path)) == 1  # nothing to keep


def test_a_failed_rename_keeps_the_text_and_says_where(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    f = atomic_output(path)
    f.write("found\n")
    path.mkdir()  # something else took the name meanwhile
    with pytest.raises(OSError, match=r"what was written is kept in .*\.out\.txt\..*\.partial"):
        f.close()
    assert Path(f.partial).read_text() == "found\n" and f.abandon() == f.partial


def test_modes_follow_the_umask_or_the_file_replaced(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        with atomic_output(tmp_path / "new.txt") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o600
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    with atomic_output(kept) as f:
        f.write("new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "new"


def test_a_replaced_file_keeps_its_owner_when_root_writes_it(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    path = tmp_path / "theirs.txt"
    path.write_text("old")
    os.chown(path, 65534, 65534)  # nobody, as a user's file root rewrites
    with atomic_output(path) as f:
        f.write("new")
    st = path.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534) and path.read_text() == "new"
