"""Output files for a run: ``-o FILE [--format F]``, several at once, streamed as found.

The formats are registry records (``pentora_register_output_formats``); the core only
routes findings and node records to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._errors import PentoraError
from .._registry import Registry
from .._sinks import RecordRouter, write_error
from ._common import EXIT_USAGE, CliError


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


class OutputSink(RecordRouter):
    """Forwards findings and node records to every open ``-o`` writer as they happen."""

    def __init__(self, writers: list[Any]) -> None:
        self.writers = writers
        self.closed = False

    def writers_for(self, scan: Any) -> list[Any]:
        return self.writers

    def close(self, result: Any) -> None:
        """Close every writer, even when one fails (disk full…); then raise the first error."""
        if self.closed:
            return
        self.closed = True
        errors: list[Exception] = []
        for w in self.writers:
            try:
                w.close(result)
            except OSError as e:
                errors.append(write_error(w, e))  # names the file
            except PentoraError as e:
                errors.append(e)
        if errors:
            raise CliError("; ".join(str(e) for e in errors)) from errors[0]


def open_outputs(orch: Any, files: list[str], fmt: str | None) -> OutputSink | None:
    if not files:
        return None
    writers = []
    for name, path in resolve_outputs(orch.registry, files, fmt):
        try:
            writers.append(orch.registry.output_formats[name].open(path))
        except OSError as e:
            raise CliError(f"cannot write {name} output to '{path}': {e.strerror}") from e
    sink = OutputSink(writers)
    orch.pm.register(sink, name="pentora.outputs")
    return sink
