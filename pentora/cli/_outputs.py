"""Output files for a run: ``-o [FORMAT:]FILE``, ``-oN/-oX/-oG/-oA``, several at once,
streamed as found.

The formats are registry records (``pentora_register_output_formats``); the core only
routes findings and node records to them. Every ``-o`` path is checked before any file
is opened (all problems at once, exit 2), and a format that takes a stream writes to a
temporary file beside its path, renamed into place when the run ends: a run that fails
or is killed leaves the file it would have replaced as it was.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import AtomicOutput, output_problem
from .._errors import PentoraError
from .._log import logger
from .._sinks import RecordRouter, write_error
from ._common import EXIT_INVALID, EXIT_USAGE, CliError

if TYPE_CHECKING:  # voluptuous and the module base class: not to build the parser
    from .._registry import Registry

log = logger.bind(component="output")


# nmap's output options: each writes one format; -oA BASE writes the three to BASE.EXT.
NMAP_OPTIONS = {"-oN": "nmap", "-oX": "xml", "-oG": "gnmap"}
ALL_FORMATS = (("nmap", ".nmap"), ("xml", ".xml"), ("gnmap", ".gnmap"))
DEFAULT_STDOUT_FORMAT = "jsonl"  # -o - without --format: the records, one a line


class _NmapOutput(argparse.Action):
    """``-oN/-oX/-oG FILE``: one more output, written ``FORMAT:FILE`` so that it keeps its
    place among the ``-o`` options; ``-oA BASE``: the three of them, named after BASE."""

    def __call__(self, parser: Any, ns: argparse.Namespace, value: Any, option: Any = None) -> None:
        given = list(getattr(ns, self.dest, None) or [])
        if option == "-oA":
            if value == "-":
                parser.error("-oA writes three files named after a base name (-oA scan gives "
                             "scan.nmap, scan.xml, scan.gnmap); for stdout use -oN -, -oX - or -oG -")
            given += [f"{name}:{value}{ext}" for name, ext in ALL_FORMATS]
        else:
            given.append(f"{NMAP_OPTIONS[option]}:{value}")
        setattr(ns, self.dest, given)


def add_output_options(parser: argparse.ArgumentParser, what: str = "results") -> None:
    """``-o FILE`` (repeatable), ``--format`` for ``-o -``, and nmap's ``-oN/-oX/-oG/-oA``:
    what ``output_targets`` reads back. ``pentora scan``, ``report`` and ``demo`` share them."""
    parser.add_argument(
        "-o", "--output", dest="outputs", action="append", default=[], metavar="[FORMAT:]FILE",
        help=f"write {what} to FILE (repeatable), in the format its extension names (.jsonl "
             ".json .csv .md .html .xml .nmap/.txt .gnmap), or in FORMAT (json:out.dat); "
             "'-' is stdout")
    parser.add_argument("--format", dest="output_format", metavar="FORMAT",
                        help=f"format of -o - (stdout; default {DEFAULT_STDOUT_FORMAT}): jsonl, json, "
                             "csv, md, html, xml, nmap, gnmap, summary, or a plugin's")
    for option, kind in (("-oN", "normal"), ("-oX", "XML"), ("-oG", "grepable")):
        parser.add_argument(option, dest="outputs", action=_NmapOutput, metavar="FILE",
                            help=f"write {what} to FILE as nmap's {kind} output (format "
                                 f"{NMAP_OPTIONS[option]}); '-' is stdout")
    parser.add_argument("-oA", dest="outputs", action=_NmapOutput, metavar="BASE",
                        help="write BASE.nmap, BASE.xml and BASE.gnmap (as nmap -oA)")


def split_format(registry: Registry, spec: str) -> tuple[str | None, str]:
    """``FORMAT:FILE`` → (FORMAT, FILE) when FORMAT is the name of an installed format and
    FILE is not empty; anything else is a path as it is (``a:b.jsonl``, ``./json:x``)."""
    name, sep, path = spec.partition(":")
    if sep and path and name in registry.output_formats:
        return name, path
    return None, spec


def _attached(argv: list[str]) -> list[str]:
    """Tokens such as ``-oXf.xml``: argparse reads them as ``-o Xf.xml`` (a file named
    Xf.xml), which is never what an nmap user meant."""
    return [a for a in argv if len(a) > 3 and a[:3] in ("-oN", "-oX", "-oG", "-oA") and a[3] != "="]


def output_targets(registry: Registry, args: argparse.Namespace) -> list[tuple[str, str]]:
    """(format name, path) for each output of the command line (``add_output_options``)."""
    attached = _attached(list(getattr(args, "argv", None) or []))
    if attached:
        a = attached[0]
        raise CliError(f"{a}: give {a[:3]} and its file apart ({a[:3]} {a[3:]}), or write "
                       f"-o {a[2:]} if a file named {a[2:]} is meant", EXIT_USAGE)
    return resolve_outputs(registry, list(args.outputs), getattr(args, "output_format", None))


def resolve_outputs(registry: Registry, files: list[str], fmt: str | None) -> list[tuple[str, str]]:
    """(format name, path) for each ``-o``: ``FORMAT:FILE`` names its format; ``-`` (stdout)
    is in ``fmt`` (``--format``, default jsonl); a file is in the format of its extension."""
    by_ext = {ext: f.name for f in registry.output_formats.values() for ext in f.extensions}
    out = []
    specs = [split_format(registry, spec) for spec in files]
    if fmt is not None and not any(name is None and path == "-" for name, path in specs):
        raise CliError(f"--format {fmt} applies to -o - (stdout) only: a file is written in the "
                       f"format of its extension; to choose another, write -o {fmt}:FILE",
                       EXIT_USAGE)
    problems = []
    for name, path in specs:
        if name is None and path == "-":
            name = fmt or DEFAULT_STDOUT_FORMAT
        elif name is None:
            name = by_ext.get(Path(path).suffix.lower())
            if name is None:
                known = ", ".join(sorted(by_ext)) or "none"
                problems.append(f"cannot tell the output format of '{path}' from its extension "
                                f"(known: {known}); name it: -o FORMAT:{path} (e.g. json:{path})")
                continue
        if name not in registry.output_formats:
            known = ", ".join(sorted(registry.output_formats)) or "none installed"
            problems.append(f"unknown output format '{name}' (available: {known})")
            continue
        out.append((name, path))
    if problems:  # every one at once, as the paths' problems are
        raise CliError("\n  ".join(problems) if len(problems) == 1 else
                       "the outputs' formats:\n  " + "\n  ".join(problems), EXIT_USAGE)
    return out


def output_problems(paths: list[str], option: str = "-o") -> list[str]:
    """What is wrong with each output path (``-`` is stdout, always fine), checked without
    opening anything: a missing folder, a directory, a device or FIFO, a path given twice."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    if paths.count("-") > 1:  # two writers interleaved on one stream: neither would parse
        problems.append(f"{option} -: stdout is given to {paths.count('-')} outputs; give all but one "
                        "a file")
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
