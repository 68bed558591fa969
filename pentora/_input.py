"""One way to read a local input: a file the user names (or stdin where ``-`` is allowed).

Only regular files are read. A directory, a device (``/dev/zero``), a FIFO or a socket is
refused by what it is, before a byte is read and without blocking: the path is checked
with ``os.stat``, then opened with ``O_NONBLOCK`` and checked again with ``fstat`` (the
path may have been swapped in between). Every input has a size limit, enforced by reading
at most limit + 1 bytes: ``st_size`` is 0 for a device or a pipe, so it is never trusted.
Errors are ``InputError``: they name the file (and line, where there is one) and say what
to do, and quote nothing of the file.
"""

from __future__ import annotations

import io
import os
import select
import stat
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from ._errors import PentoraError, Problem

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# What each kind of file is, for the refusal; anything else that is not regular is "special".
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"))


class InputError(PentoraError):
    """A local input that cannot be used: not a regular file, over its size limit,
    unreadable, or not valid text, YAML or JSON. ``problem`` holds where (``source``,
    ``line``) and the message; ``str()`` reads ``source:line: message``."""

    def __init__(self, message: str, source: str | None = None, line: int | None = None) -> None:
        self.problem = Problem(message, source=source, line=line)
        super().__init__(str(self.problem))

    @property
    def source(self) -> str | None:
        return self.problem.source

    @property
    def line(self) -> int | None:
        return self.problem.line

    @property
    def message(self) -> str:
        return self.problem.message


def size_text(n: int) -> str:
    """``64 MiB``, ``1 GiB``, ``512 KiB``, ``100 bytes``: a limit as people read it."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def too_large(what: str, max_bytes: int, source: str | None, line: int | None = None) -> InputError:
    return InputError(f"larger than {size_text(max_bytes)}: over the {max_bytes}-byte limit "
                      f"for a {what}", source, line)


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def _refuse_kind(path: str, kind: str) -> InputError:
    return InputError(f"{path} is {kind}, not a regular file: give a file")


def _os_error(path: str, e: OSError, what: str) -> InputError:
    what = what if what.endswith("file") else f"{what} file"
    if isinstance(e, FileNotFoundError):
        return InputError(f"{what} not found: {path} (resolved to {os.path.abspath(path)})")
    if isinstance(e, PermissionError):
        return InputError(f"cannot read {what} {path}: permission denied")
    return InputError(f"cannot read {what} {path}: {e.strerror or e}")


class _Bounded(io.RawIOBase):
    """A raw stream that gives at most ``max_bytes`` bytes and raises on byte max + 1."""

    def __init__(self, raw: BinaryIO, max_bytes: int, what: str, name: str) -> None:
        super().__init__()
        self._raw, self._max, self._what, self._name = raw, max_bytes, what, name
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        room = self._max + 1 - self._count
        view = memoryview(buffer)[:max(1, min(len(buffer), room))]
        n = self._raw.readinto(view)  # type: ignore[attr-defined]
        while n is None:  # a non-blocking stdin with nothing yet: wait as a blocking read would
            select.select([self._raw], [], [])
            n = self._raw.readinto(view)  # type: ignore[attr-defined]
        self._count += n
        if self._count > self._max:
            raise too_large(self._what, self._max, self._name)
        return int(n)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def open_input(path: str | os.PathLike[str], *, what: str, max_bytes: int,
               stdin: bool = False) -> io.BufferedReader:
    """A binary stream of the regular file ``path`` that raises ``InputError`` when it
    would give more than ``max_bytes`` bytes. ``what`` names the input in messages
    ("DAG", "target file"). With ``stdin``, ``-`` reads standard input, bounded the same."""
    name = os.fspath(path)
    if stdin and name == "-":
        try:
            raw: BinaryIO = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
        except (AttributeError, ValueError, OSError):  # no stdin at all (closed, or None)
            raise InputError(f"no standard input to read the {what} from: give a file") from None
        return io.BufferedReader(_Bounded(raw, max_bytes, what, "<stdin>"))
    try:
        # stat first: a device is never opened (opening some has side effects: a tape rewinds)
        kind = _kind(os.stat(name).st_mode)
        if kind is not None:
            raise _refuse_kind(name, kind)
        # O_NONBLOCK: a FIFO swapped in after the stat opens at once instead of waiting for
        # a writer; fstat below then refuses it. O_NOCTTY: a terminal never becomes ours.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise _os_error(name, e, what) from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise _refuse_kind(name, kind)
        raw = io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise
    return io.BufferedReader(_Bounded(raw, max_bytes, what, name))


def read_input(path: str | os.PathLike[str], *, what: str, max_bytes: int,
               stdin: bool = False) -> bytes:
    """The bytes of the regular file ``path`` (``-``: stdin, with ``stdin``), at most
    ``max_bytes``; ``InputError`` naming the file for anything else."""
    name = "<stdin>" if stdin and os.fspath(path) == "-" else os.fspath(path)
    with open_input(path, what=what, max_bytes=max_bytes, stdin=stdin) as stream:
        try:
            return stream.read()
        except InputError:
            raise
        except OSError as e:
            raise _os_error(name, e, what) from None


def input_lines(stream: io.BufferedReader, *, what: str, source: str,
                max_line: int) -> Iterator[tuple[int, bytes]]:
    """(line number from 1, line bytes with its newline) of ``stream``; a line longer than
    ``max_line`` bytes is refused at its number instead of being gathered whole."""
    number = 0
    while True:
        number += 1
        try:
            line = stream.readline(max_line + 1)
        except InputError as e:  # the size limit: met while reading ahead, so no line
            raise InputError(e.message, source) from None
        except OSError as e:
            raise InputError(f"cannot read it: {e.strerror or e}", source, number) from None
        if not line:
            return
        if len(line) > max_line and not line.endswith(b"\n"):
            raise InputError(f"line longer than {size_text(max_line)}: over the limit for a line "
                             f"of a {what}", source, number)
        yield number, line


def decode_text(data: bytes, *, what: str, source: str | None) -> str:
    """UTF-8 text (a leading BOM dropped); ``InputError`` with the line of a bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"not UTF-8 text (byte {e.start}): a {what} is UTF-8 text",
                         source, line) from None


def load_yaml(text: str | bytes, source: str | None, *, what: str, max_bytes: int) -> Any:
    """The data of a YAML document read with every bound of a DAG file: safe tags only, no
    duplicate keys, no alias bomb, dates kept as text, integers of at most 4,300 digits.
    ``InputError`` names ``source`` and the line, and quotes nothing of the text."""
    # PyYAML is imported on the first document read, not with pentora (start-up time).
    from ._yaml import load_yaml as load

    return load(text, source, what=what, max_bytes=max_bytes)


def load_json(text: str | bytes, source: str | None, *, what: str, max_bytes: int) -> Any:
    """The data of a JSON document: duplicate keys refused, integers of at most 4,300 digits;
    ``InputError`` names ``source`` and the line."""
    from ._yaml import load_json as load

    return load(text, source, what=what, max_bytes=max_bytes)
