"""``RecordRouter``: route findings and node records to writers as they happen.

The base of every streaming output: the CLI's ``-o`` files and report nodes alike.
A subclass says which writers see a scan; the router sends each emitted record
(``pentora_record``) and each settled node record (kind ``node``) to them at once,
so an interrupted scan keeps everything written so far.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import Any

from ._hookspecs import hookimpl
from ._log import logger


def writer_name(writer: Any) -> str:
    """The file a writer writes, for messages (its ``path``, or its stream's ``name``)."""
    for obj in (writer, getattr(writer, "stream", None)):
        name = getattr(obj, "path", None) or getattr(obj, "name", None)
        if isinstance(name, (str, os.PathLike)):
            return str(name)
    return type(writer).__name__


def write_error(writer: Any, e: OSError) -> OSError:
    """``e`` as a message naming the writer's file, whose stream is closed quietly (its
    unwritten tail cannot be saved; closing now spares a second error at exit). A stream
    written under a temporary name (``atomic_output``) is abandoned, not renamed over the
    file it was to replace."""
    stream = getattr(writer, "stream", None)
    if stream is not None and getattr(writer, "owned", False):
        with contextlib.suppress(Exception):
            getattr(stream, "abandon", stream.close)()
    return OSError(e.errno, f"cannot write {writer_name(writer)}: {e.strerror or e}; the other "
                   "outputs and the scan store keep every result")


class RecordRouter:
    """Writers have ``record(kind, record)``; ``writers_for(scan)`` picks them."""

    def writers_for(self, scan: Any) -> Iterable[Any]:
        raise NotImplementedError

    def _send(self, scan: Any, kind: str, record: Any) -> None:
        for writer in self.writers_for(scan):
            if getattr(writer, "write_failed", None):  # one message, not one per record
                continue
            try:
                writer.record(kind, record)
            except OSError as e:  # disk full, file too large: this output stops, not the scan
                with contextlib.suppress(AttributeError):  # a writer with __slots__
                    writer.write_failed = e
                logger.bind(component="output").error(
                    "cannot write to {}: {}; nothing more is written to it (free space and re-run, "
                    "or use `pentora scans show`): the other outputs and the scan store keep every "
                    "result", writer_name(writer), e.strerror or e)

    @hookimpl
    def pentora_scan_start(self, scan: Any) -> None:
        """Writers that define ``start(scan)`` learn the DAG and vars before any record."""
        for writer in self.writers_for(scan):
            start = getattr(writer, "start", None)
            if start is not None:
                start(scan)

    @hookimpl
    def pentora_record(self, scan: Any, kind: str, record: Any) -> None:
        self._send(scan, kind, record)

    @hookimpl
    def pentora_node_complete(self, scan: Any, record: Any) -> None:
        self._send(scan, "node", record)

    @hookimpl
    def pentora_node_failed(self, scan: Any, record: Any) -> None:
        self._send(scan, "node", record)

    @hookimpl
    def pentora_node_skipped(self, scan: Any, record: Any) -> None:
        self._send(scan, "node", record)

    @hookimpl
    def pentora_node_cancelled(self, scan: Any, record: Any) -> None:
        self._send(scan, "node", record)
