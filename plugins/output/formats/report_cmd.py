"""``pentora report FILE.jsonl``: render an earlier scan's JSONL again, in any format.

Without an output it prints the summary a scan prints (``--format F``: format F) on
stdout; ``-o``, ``-oN``/``-oX``/``-oG``/``-oA`` write files as ``pentora scan``'s do.

The JSONL is replayed through the same writers a live scan uses (``record`` for each
line, the ``scan`` line included, then ``close(None)``), so a report rendered later
equals the one the scan would have written.

Bad input: every line must be a JSON object with a string ``kind``, and a line of a
kind this schema knows must carry that kind's required fields with the right types
(``pentora_plugins/data/pentora-records.schema.json``; fields it does not know are
let through, so a newer pentora's file still renders). The first bad line stops the
command with its line number (exit 1), and nothing is written. A last line without
its newline that does not parse is a write cut short (the scan was killed): it is
named as truncated. ``--skip-bad-lines`` renders the rest instead, warning about each
line skipped, wherever it is (a resumed scan may have appended after a cut line).

``--min-quality N`` is given to every writer that has a ``min_quality`` attribute (the
report formats: their findings and counts hold the findings of quality N or more);
``--fail-on SEVERITY`` exits 5 once the files are written when such a verified finding
is in the file, as ``pentora scan --fail-on`` does.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from pentora_plugins.output import _views

from pentora import InputError, input_lines, open_input
from pentora.cli import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    OutputSink,
    check_outputs,
    echo,
    make_orchestrator,
    output_targets,
    resolve_outputs,
)

MAX_BYTES = 1 << 30  # a JSONL report: a scan of many hosts, one record a line
MAX_LINE = 64 << 20  # one record
_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
                               "null": type(None), "array": list, "object": dict}


@functools.cache
def schema() -> dict[str, Any]:
    """The JSON Schema of pentora's records, shipped with the plugins."""
    text = resources.files("pentora_plugins").joinpath("data/pentora-records.schema.json").read_text()
    return dict(json.loads(text))


def _is(value: Any, types: str | list[str]) -> bool:
    for t in [types] if isinstance(types, str) else types:
        if isinstance(value, bool) and t in ("integer", "number"):
            continue  # JSON's true is not a number
        if isinstance(value, _JSON_TYPES.get(t, object)):
            return True
    return False


def problem(rec: Any) -> str | None:
    """Why ``rec`` is not a record this schema accepts (required fields and their types), or None."""
    if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str):
        return "expected a JSON object with a string 'kind' field"
    spec = schema()["$defs"].get(rec["kind"])
    if spec is None or rec["kind"] in ("line", "document"):
        return None  # a kind of a third-party module: passed through as it is
    missing = [k for k in spec.get("required", []) if k not in rec]
    if missing:
        return f"a '{rec['kind']}' record needs the field(s) {', '.join(missing)}"
    for key, value in rec.items():
        types = spec["properties"].get(key, {}).get("type")
        if types is not None and not _is(value, types):
            wanted = " or ".join(types) if isinstance(types, list) else types
            got = json.dumps(value)[:40]
            return f"field '{key}' of a '{rec['kind']}' record should be {wanted}, not {got}"
    return None


def _parse(raw: bytes, last: bool) -> tuple[Any, str | None]:
    try:
        rec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 text (byte {e.start + 1})"
    except json.JSONDecodeError as e:
        if last and not raw.endswith(b"\n"):
            return None, ("truncated: the file ends in the middle of this line (the scan was "
                          f"killed while writing it?): {e.msg} at column {e.colno}")
        return None, f"not valid JSON: {e.msg} at column {e.colno}"
    except ValueError:  # the only other: an integer longer than Python converts
        return None, f"an integer of over {sys.get_int_max_str_digits()} digits: no record holds one"
    return rec, problem(rec)


def read_jsonl(path: str, skip_bad: bool = False) -> Iterator[dict[str, Any]]:
    """The records of a pentora JSONL file (``-``: stdin), a regular file of at most
    ``MAX_BYTES`` with lines of at most ``MAX_LINE``; a bad line raises ``CliError`` naming it."""
    name = "<stdin>" if path == "-" else path
    try:
        stream = open_input(path, what="JSONL report", max_bytes=MAX_BYTES, stdin=True)
    except InputError as e:
        raise CliError(str(e)) from None
    with stream:
        try:
            lines = input_lines(stream, what="JSONL report", source=name, max_line=MAX_LINE)
            raw = next(lines, None)
            while raw is not None:
                number, text = raw
                following = next(lines, None)
                if text.strip():
                    rec, why = _parse(text, following is None)
                    if why is None:
                        yield rec
                    elif skip_bad:
                        echo(f"warning: {name} line {number} skipped: {why}", err=True)
                    else:
                        raise CliError(f"{name} line {number}: {why}; fix or delete that line, or "
                                       "pass --skip-bad-lines to render the others")
                raw = following
        except InputError as e:
            raise CliError(str(e)) from None


def cmd_report(args: argparse.Namespace) -> int:
    orch = make_orchestrator(args)
    if args.outputs:
        targets = output_targets(orch.registry, args)
    else:  # nothing to write: the summary, or --format F, on stdout
        targets = resolve_outputs(orch.registry, ["-"], args.output_format or "summary")
    source = Path(args.file).resolve() if args.file != "-" else None
    for _, out in targets:
        if source is not None and out != "-" and Path(out).resolve() == source:
            raise CliError(f"-o {out} would overwrite the JSONL being read; choose another file",
                           EXIT_USAGE)
    check_outputs([path for _, path in targets])
    records = list(read_jsonl(args.file, args.skip_bad_lines))  # all checked before any file is written
    if not records:
        raise CliError(f"{args.file} holds no records: nothing to report")
    sink = OutputSink(orch.registry, targets)
    for writer in sink.writers:
        if hasattr(writer, "min_quality"):  # a writer that shows findings by quality
            writer.min_quality = args.min_quality
    _replay(records, sink)
    for _, path in targets:
        if path != "-":
            echo(f"report written to {path}", err=True)
    vulns = [r for r in records if r["kind"] == "vulnerability"]
    return _views.gate(vulns, args.min_quality, args.fail_on) or EXIT_OK


def _replay(records: list[dict[str, Any]], sink: OutputSink) -> None:
    """Feed the lines to the writers as a live scan would, then close them (no result):
    each file is renamed into place, or left as it was if its writer failed."""
    try:
        for rec in records:
            sink.feed(rec["kind"], rec)
    except BaseException:
        sink.close(None, commit=False)
        raise
    sink.close(None)


