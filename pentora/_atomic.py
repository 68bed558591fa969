"""Result files written whole or not at all: ``atomic_output`` and the ``-o`` path checks.

A result file is written under a temporary name in its own folder
(``.NAME.XXXXXXXX.partial``) and renamed over NAME when the writer is done
(``os.replace``: atomic within one filesystem). A run that fails or is killed leaves the
file it would have replaced as it was, and what it had written under the temporary name.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from types import TracebackType
from typing import Any, TextIO

PARTIAL_SUFFIX = ".partial"

_umask_lock = threading.Lock()


def _umask() -> int:
    """The process's umask. Linux shows it in /proc; elsewhere it can only be read by
    setting it, which a lock keeps from racing another thread of ours."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _kind(mode: int) -> str | None:
    """What a path that is not a regular file is, in words; None for a regular file."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def output_problem(path: str) -> str | None:
    """Why results cannot be written to ``path`` (checked without touching it), or None."""
    target = os.path.realpath(path)  # a symlink's file is replaced, the link kept
    try:
        st = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):  # the folder's turn, below
        st = None
    except OSError as e:
        return f"cannot look at it: {e.strerror}"
    if st is not None:
        kind = _kind(st.st_mode)
        if kind == "a directory":
            return "is a directory; give a file name inside it"
        if kind is not None:
            return (f"is {kind}, not a regular file: results are written to a file beside the "
                    "target and renamed over it; write to a regular file, or use -o - and redirect")
        if not os.access(target, os.W_OK):
            return "is read-only; make it writable or choose another file"
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        shown = folder if os.path.islink(path) else os.path.dirname(path)  # as the user wrote it
        return f"its folder {shown} {what}; create it (mkdir -p) or choose another"
    return None


class AtomicOutput:
    """A text file written under a temporary name beside ``path`` and renamed into place
    by ``close()``; ``abandon()`` leaves the file at ``path`` untouched instead.

    ``name`` is the path asked for (what messages name), ``partial`` the temporary file
    (what ``tail -f`` follows while the run lasts). A new file gets the mode ``open()``
    would give it (0666 less the umask); an existing one keeps its mode (and its owner,
    when the process may set it). Used as a context
    manager it is closed when the block ends, or abandoned when the block raises."""

    def __init__(self, path: str | os.PathLike[str], *, newline: str | None = "",
                 line_buffering: bool = True) -> None:
        self.name = os.fspath(path)
        self.target = os.path.realpath(self.name)
        folder, base = os.path.split(self.target)
        fd, self.partial = tempfile.mkstemp(prefix=f".{base}.", suffix=PARTIAL_SUFFIX, dir=folder)
        try:
            try:
                old = os.stat(self.target)
            except FileNotFoundError:
                os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: give the usual mode
            else:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))  # as open(path, "w") would leave it
                with contextlib.suppress(OSError):  # only root may give a file away
                    os.fchown(fd, old.st_uid, old.st_gid)
            self.stream: TextIO = open(fd, "w", encoding="utf-8", newline=newline,  # noqa: SIM115
                                        buffering=1 if line_buffering else -1)
        except BaseException:
            os.close(fd)
            os.unlink(self.partial)
            raise
        self.written = False
        self.state = "open"  # then "replaced", "kept" or "discarded"

    # -- the stream -------------------------------------------------------------------------

    def write(self, text: str) -> int:
        self.written = self.written or bool(text)
        return self.stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self.state != "open"

    @property
    def encoding(self) -> str:
        return self.stream.encoding

    # -- the end ----------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, sync and rename over ``name``. On failure the temporary file is kept and
        the ``OSError`` says where it is."""
        if self.state != "open":
            return
        try:
            self.stream.flush()
            os.fsync(self.stream.fileno())  # the rename must not land before the data
            self.stream.close()
            os.replace(self.partial, self.target)
        except OSError as e:
            self._close_quietly()
            self.state = "kept"
            raise OSError(e.errno, f"{e.strerror or e}; what was written is kept in "
                          f"{self.partial}") from e
        self.state = "replaced"

    def abandon(self) -> str | None:
        """Stop without touching ``name``: the temporary file is kept when something was
        written to it (its path is returned), deleted otherwise (None)."""
        if self.state != "open":
            return self.partial if self.state == "kept" else None
        self._close_quietly()
        if self.written:
            self.state = "kept"
            return self.partial
        with contextlib.suppress(OSError):
            os.unlink(self.partial)
        self.state = "discarded"
        return None

    def _close_quietly(self) -> None:
        # The data may not all reach the disk (it is full): that is what the caller reports.
        with contextlib.suppress(OSError):
            self.stream.close()

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()

    def __repr__(self) -> str:
        return f"<AtomicOutput {self.name!r} via {self.partial!r} ({self.state})>"


def atomic_output(path: str | os.PathLike[str], *, newline: str | None = "",
                  line_buffering: bool = True) -> AtomicOutput:
    """Open ``path`` for writing text (UTF-8) so that it is replaced whole or not at all:
    the text goes to ``.NAME.XXXXXXXX.partial`` in the same folder, and ``close()`` renames
    it over ``path``. A run that dies first leaves ``path`` as it was. ``abandon()`` gives
    up (keeping the temporary file if anything was written). ``line_buffering`` flushes
    each line, for readers that follow the temporary file as it grows.

    Example (an output format that is given a path)::

        with pentora.atomic_output(path) as f:
            f.write(render(report))
    """
    return AtomicOutput(path, newline=newline, line_buffering=line_buffering)
