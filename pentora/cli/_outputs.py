"""Output files for a run: ``-o FILE [--format F]``, several at once, streamed as found.

The formats are registry records (``pentora_register_output_formats``); the core only
routes findings and node records to them. Every ``-o`` path is checked before any file
is opened (all problems at once, exit 2), and a format that takes a stream writes to a
temporary file beside its path, renamed into place when the run ends: a run that fails
or is killed leaves the file it would have replaced as it was.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from .._atomic import AtomicOutput, output_problem
from .._errors import PentoraError
from .._registry import Registry
from .._sinks import RecordRouter, write_error
from ._common import EXIT_INVALID, EXIT_USAGE, CliError

log = logger.bind(component="output")


def resolve_outputs(registry: Registry, files: list[str], fmt: str | None) -> list[tuple[str, str]]:
    """(format name, path) for each ``-o``; the format comes from ``--format`` or the extension."""
    out = []
    by_ext = {ext: f.name for f in registry.output_formats.values() for ext in f.extensions}
    for path in files:
        name = fmt
        if name is None:
            name = by_ext.get(Path(path).suffix.lower())
            if name is None:
                known = ", ".join(sorted(by_ext)) or "none"
                raise CliError(f"cannot tell the output format of '{path}' from its extension "
                               f"(known: {known}); add --format", EXIT_USAGE)
        if name not in registry.output_formats:
            known = ", ".join(sorted(registry.output_formats)) or "none installed"
            raise CliError(f"unknown output format '{name}' (available: {known})", EXIT_USAGE)
        out.append((name, path))
    return out


def output_problems(paths: list[str], option: str = "-o") -> list[str]:
    """What is wrong with each output path (``-`` is stdout, always fine), checked without
    opening anything: a missing folder, a directory, a device or FIFO, a path given twice."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in paths:
        if path == "-":
            continue
        real = os.path.realpath(path)
        if real in seen:
            problems.append(f"{option} {path}: the same file as {option} {seen[real]}; give each "
                            "output its own file")
            continue
        seen[real] = path
        why = output_problem(path)
        if why is not None:
            problems.append(f"{option} {path}: {why}")
    return problems


def _refuse(problems: list[str]) -> CliError:
    return CliError("cannot write the output(s); nothing was run or written:\n  "
                    + "\n  ".join(problems), EXIT_USAGE)


def check_outputs(paths: list[str], option: str = "-o") -> None:
    """Raise ``CliError`` (exit 2) listing every output path that cannot be written."""
    problems = output_problems(paths, option)
    if problems:
        raise _refuse(problems)


@dataclass
class _Output:
    format: str
    path: str
    file: AtomicOutput | None  # None: stdout, or a format that opens its path itself
    writer: Any = None


class OutputSink(RecordRouter):
    """The ``-o`` writers of one run: forwards findings and node records to each as they
    happen, and closes them when the run ends (``close``)."""

    def __init__(self, registry: Registry, targets: list[tuple[str, str]]) -> None:
        self.outputs: list[_Output] = []
        self.records = 0
        self.closed = False
        check_outputs([path for _, path in targets])
        try:
            self._create(registry, targets)
            for out in self.outputs:
                out.writer = self._open(registry, out)
        except BaseException:
            self._discard()
            raise

    @property
    def writers(self) -> list[Any]:
        return [out.writer for out in self.outputs]

    def _create(self, registry: Registry, targets: list[tuple[str, str]]) -> None:
        """The temporary files, all of them before any writer opens: one that cannot be
        created (a read-only filesystem, no space for the inode) is a usage error too."""
        problems = []
        for name, path in targets:
            file = None
            if path != "-" and registry.output_formats[name].takes_stream:
                try:
                    file = AtomicOutput(path)
                except OSError as e:
                    folder = os.path.dirname(os.path.realpath(path))
                    problems.append(f"-o {path}: cannot create a file in {folder}: "
                                    f"{e.strerror or e}; choose a writable folder")
                    continue
                log.info("{}: written as {} until the run ends (follow it with tail -f)", path,
                         file.partial)
            self.outputs.append(_Output(name, path, file))
        if problems:
            raise _refuse(problems)

    @staticmethod
    def _open(registry: Registry, out: _Output) -> Any:
        fmt = registry.output_formats[out.format]
        target: Any = out.path
        if fmt.takes_stream:  # a stream always: the temporary file, or stdout for -o -
            target = out.file if out.file is not None else sys.stdout
        try:
            return fmt.open(target)
        except OSError as e:
            raise CliError(f"cannot write {out.format} output to '{out.path}': {e.strerror or e}",
                           EXIT_USAGE) from e

    def _discard(self) -> None:
        for out in self.outputs:
            if out.file is not None:
                out.file.abandon()

    def writers_for(self, scan: Any) -> list[Any]:
        return self.writers

    def _send(self, scan: Any, kind: str, record: Any) -> None:
        super()._send(scan, kind, record)
        self.records += 1

    def feed(self, kind: str, record: Any) -> None:
        """Send one record to every writer (``pentora report`` replaying a file)."""
        self._send(None, kind, record)

    def close(self, result: Any, commit: bool = True) -> None:
        """End every output, even when one fails (disk full…). ``commit``: the run ended
        (finished or interrupted): each file is renamed into place, and the first problem
        raised as ``CliError`` naming every one. Otherwise (the run died) no file is
        replaced: what was written is kept under its temporary name and named in a
        warning."""
        if self.closed:
            return
        self.closed = True
        problems = [p for p in (self._close_one(out, result, commit) for out in self.outputs) if p]
        if problems and commit:
            raise CliError("; ".join(problems), EXIT_INVALID)
        for problem in problems:
            log.warning("{}", problem)

    def _close_one(self, out: _Output, result: Any, commit: bool) -> str | None:
        failed: OSError | None = getattr(out.writer, "write_failed", None)
        problem = None
        try:
            if failed is None and (commit or self.records):
                out.writer.close(result)  # a report renders what it collected, even now
        except OSError as e:
            failed = e
        except PentoraError as e:
            problem = str(e)
        except Exception as e:  # a format's bug must not cost the other outputs their results
            problem = f"the {out.format} output to '{out.path}' failed: {type(e).__name__}: {e}"
        if failed is not None:
            problem = str(write_error(out.writer, failed))
        if out.file is None:
            return problem
        if problem is None and commit:
            try:
                out.file.close()
                return None
            except OSError as e:
                return f"cannot write {out.path}: {e.strerror or e}"
        kept = out.file.abandon()
        why = problem or "the run did not finish"
        where = (f"what was written is kept in {kept}" if kept is not None else "nothing had been written")
        return f"{why}; {out.path} was left as it was, {where}"


def open_outputs(orch: Any, targets: list[tuple[str, str]]) -> OutputSink | None:
    """The run's ``-o`` writers, fed through the plugin manager as records happen."""
    if not targets:
        return None
    sink = OutputSink(orch.registry, targets)
    orch.pm.register(sink, name="pentora.outputs")
    return sink
