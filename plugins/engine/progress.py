"""``--progress``: percent, nodes done/total, what is running, and item progress.

Redraws one line in place on a terminal; prints plain lines (at most one a second,
plus one per finished node) when stderr is not a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from pentora import clean_text as clean
from pentora import hookimpl

BAR = 25


class Progress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.total = 0
        self.done = 0
        self.running: dict[str, tuple[int, int | None] | None] = {}
        self.active = False
        self.last = 0.0
        self.tty = False

    def _on(self, scan: Any) -> bool:
        return bool(scan.options.get("progress"))

    @hookimpl
    def pentora_scan_start(self, scan: Any) -> None:
        self.active = self._on(scan)
        if not self.active:
            return
        self.out = self.stream or sys.stderr
        self.tty = self.out.isatty()
        self.total, self.done, self.running = len(scan.dag.nodes), 0, {}
        self.draw(force=True)

    @hookimpl
    def pentora_scan_idle(self, scan: Any) -> object | None:
        return None if self.active else self  # no --progress: no cost per node

    @hookimpl
    def pentora_node_start(self, node: Any) -> None:
        if self.active:
            self.running[node.instance_id] = None
            self.draw()

    @hookimpl
    def pentora_node_progress(self, node: Any, done: int, total: int | None) -> None:
        if self.active:
            self.running[node.instance_id] = (done, total)
            self.draw()

    def _finish(self, node: Any) -> None:
        if self.active:
            self.running.pop(node.instance_id, None)
            self.done += 1
            self.draw(force=not self.tty)

    @hookimpl
    def pentora_node_complete(self, node: Any) -> None:
        self._finish(node)

    @hookimpl
    def pentora_node_failed(self, node: Any) -> None:
        self._finish(node)

    @hookimpl
    def pentora_node_skipped(self, node: Any) -> None:
        self._finish(node)

    @hookimpl
    def pentora_node_cancelled(self, node: Any) -> None:
        self._finish(node)

    @hookimpl
    def pentora_scan_complete(self, scan: Any) -> None:
        if self.active:
            if self.tty:  # plain output already printed the last line as the last node ended
                self.draw(force=True)
                self.out.write("\n")
                self.out.flush()
            self.active = False

    def line(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        filled = int(BAR * pct / 100)
        bar = "=" * max(0, filled - 1) + (">" if 0 < filled < BAR else "=" * min(filled, 1))
        text = f"[{bar:<{BAR}}] {pct:3.0f}% ({self.done}/{self.total} nodes completed)"
        if self.running:
            parts = []
            for node_id, prog in list(self.running.items())[:4]:
                name = clean(node_id, 40)  # a node id from the DAG file, drawn on a terminal
                if prog and prog[1]:
                    parts.append(f"{name} {prog[0]}/{prog[1]}")
                elif prog:
                    parts.append(f"{name} {prog[0]}")
                else:
                    parts.append(name)
            more = len(self.running) - 4
            text += " running: " + ", ".join(parts) + (f" +{more} more" if more > 0 else "")
        return text

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        interval = 0.1 if self.tty else 1.0
        if not force and now - self.last < interval:
            return
        self.last = now
        if self.tty:
            self.out.write("\r\x1b[K" + self.line())
        else:
            self.out.write(self.line() + "\n")
        self.out.flush()

