"""``--progress``: the scan's work items done out of planned, rate, elapsed time, ETA and
the running nodes.

An item is what a module counts with ``ctx.progress(done, total)`` (a probe: a port of a
host, a host, a request, a for_each branch); a node that counts none is one item. The
planned total grows as nodes start and learn their work (a port scan's hosts × ports),
so the ETA is that of the work known so far.

On a terminal a rich progress bar is redrawn in place, and log lines are printed above
it (the logging sink writes through the same console while the bar is live). Elsewhere
a plain line is printed every ``PLAIN_EVERY`` seconds and as each node ends.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections import deque
from typing import Any, TextIO

from pentora import clean_text as clean
from pentora import hookimpl, set_live_console, terminal_console

# The plugin is registered whenever pentora starts; gevent and rich are imported when a
# scan with --progress starts, so that `pentora --help` and a scan without it pay nothing.

REDRAW_EVERY = 0.1  # seconds between redraws on a terminal: rich's own default rate
PLAIN_EVERY = 5.0  # seconds between plain lines when stderr is not a terminal
SAMPLE_EVERY = 0.5  # seconds between rate samples when not on a terminal
RATE_WINDOW = 10.0  # seconds of samples the rate (and so the ETA) is measured over
SHOWN_RUNNING = 3  # running nodes named; the others are counted


def clock(seconds: float | None) -> str:
    """``0:04``, ``12:31``, ``1:02:03``; ``-:--`` when unknown."""
    if seconds is None:
        return "-:--"
    s = int(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def _planned(count: tuple[int, int | None] | None, ended: bool) -> int:
    """A node's planned items: its total, or what it did (and one more while it runs)
    when it states none; one for a node that counts nothing."""
    done, total = count or (0, None)
    return max(total if total is not None else done + (0 if ended else 1), done, 1)


class Progress:
    """The ``engine.progress`` plugin: draws on ``stream`` (stderr when None) while a scan
    run with the ``progress`` option goes on."""

    def __init__(self, stream: TextIO | None = None, plain_every: float = PLAIN_EVERY) -> None:
        self.stream = stream
        self.plain_every = plain_every
        self.active = False
        self.tty = False

    def _on(self, scan: Any) -> bool:
        return bool(scan.options.get("progress"))

    # -- the hooks: bookkeeping only; the ticker draws --------------------------------------

    @hookimpl
    def pentora_scan_start(self, scan: Any) -> None:
        self.active = self._on(scan)
        if not self.active:
            return
        self.out = self.stream or sys.stderr
        self.console = terminal_console(self.out)
        self.tty = self.console.is_terminal
        self.nodes = len(scan.dag.nodes)
        # Kept as they change, so that a redraw costs the running nodes, not the DAG's size.
        self.ended = self.ended_items = 0  # nodes ended, and their items
        self.undone = 0  # planned items of failed and cancelled nodes that were never done
        self.running: dict[str, tuple[int, int | None] | None] = {}  # node id → its count
        self.started = self.last_plain = time.monotonic()
        self.samples: deque[tuple[float, int]] = deque([(self.started, 0)])
        import gevent
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn
        from rich.progress import Progress as Bar
        from rich.table import Column

        # Percent, rate and ETA are this plugin's own (rich rounds 99.6% up to 100%, and
        # measures its rate over samples of its own timing); rich draws and redraws.
        self.bar = Bar(SpinnerColumn(), TextColumn("{task.fields[pct]:>3}%"), BarColumn(bar_width=24),
                       MofNCompleteColumn(), TextColumn("items  {task.fields[rate]}", style="cyan"),
                       TextColumn("{task.fields[elapsed]}", style="yellow"),
                       TextColumn("eta {task.fields[eta]}", style="cyan"),
                       TextColumn("{task.fields[nodes]}"),
                       TextColumn("{task.fields[running]}", markup=False,
                                  table_column=Column(no_wrap=True, overflow="ellipsis")),
                       # stdout may carry the records (-o -): only stderr's other writers
                       # (warnings, messages) go through the console, above the bar.
                       console=self.console, auto_refresh=False, redirect_stdout=False)
        self.task = self.bar.add_task("scan", total=self.nodes, **self._fields(0, self.nodes))
        self._update()
        if self.tty:
            self.bar.start()
            set_live_console(self.console)
            atexit.register(self._stop)  # a scan that never completes still gets its cursor back
        else:
            self._plain()
        self.ticker = gevent.spawn(self._tick)

    @hookimpl
    def pentora_scan_idle(self, scan: Any) -> object | None:
        return None if self.active else self  # no --progress: no cost per node

    @hookimpl
    def pentora_node_start(self, node: Any) -> None:
        if self.active:
            self.running.setdefault(node.instance_id, None)  # a retry keeps its count

    @hookimpl
    def pentora_node_progress(self, node: Any, done: int, total: int | None) -> None:
        if self.active:
            self.running[node.instance_id] = (done, total)

    def _finish(self, node: Any, done: bool = True) -> None:
        """A node ended: its planned items are done, unless it failed or was cancelled
        (an interrupted scan then ends below 100%, showing how far it came)."""
        if self.active:
            self.ended += 1
            count = self.running.pop(node.instance_id, None)
            planned = _planned(count, ended=True)
            self.ended_items += planned
            if not done:
                self.undone += planned - (count[0] if count else 0)
            if not self.tty:
                self._update()
                self._plain()

    @hookimpl
    def pentora_node_complete(self, node: Any) -> None:
        self._finish(node)

    @hookimpl
    def pentora_node_failed(self, node: Any) -> None:
        self._finish(node, done=False)

    @hookimpl
    def pentora_node_skipped(self, node: Any) -> None:
        self._finish(node)

    @hookimpl
    def pentora_node_cancelled(self, node: Any) -> None:
        self._finish(node, done=False)

    @hookimpl
    def pentora_scan_complete(self, scan: Any) -> None:
        if self.active:
            self.active = False
            self.ticker.kill()
            self._update()
            if self.tty:
                self._stop()
            # Plain output printed its last line as the last node ended.

    # -- drawing ----------------------------------------------------------------------------

    def _tick(self) -> None:
        import gevent

        while self.active:
            gevent.sleep(REDRAW_EVERY if self.tty else SAMPLE_EVERY)
            self._update()
            if self.tty:
                self.bar.refresh()
            elif time.monotonic() - self.last_plain >= self.plain_every:
                self._plain()

    def _stop(self) -> None:
        atexit.unregister(self._stop)
        if self.bar.live.is_started:
            self.bar.refresh()
            self.bar.stop()
        set_live_console(None)

    def work(self) -> tuple[int, int]:
        """Items done and planned: each node's reported count, or 1 for a node that
        reports none; an ended node's planned items are all done unless it failed or was
        cancelled."""
        done, total = self.ended_items - self.undone, self.ended_items
        for count in self.running.values():
            done += count[0] if count else 0
            total += _planned(count, ended=False)
        unstarted = self.nodes - self.ended - len(self.running)
        return done, total + max(unstarted, 0)

    def running_text(self) -> str:
        parts = []
        for node_id in list(self.running)[:SHOWN_RUNNING]:
            name = clean(node_id, 40)  # a node id from the DAG file, drawn on a terminal
            count = self.running[node_id]
            if count is None:
                parts.append(name)
            else:
                parts.append(f"{name} {count[0]}/{count[1]}" if count[1] else f"{name} {count[0]}")
        more = len(self.running) - SHOWN_RUNNING
        return ("running: " + ", ".join(parts) + (f" +{more} more" if more > 0 else "")) if parts else ""

    def rate(self, done: int) -> float | None:
        """Items per second over the last ``RATE_WINDOW`` seconds (None until an item is done)."""
        now = time.monotonic()
        self.samples.append((now, done))
        while len(self.samples) > 2 and self.samples[1][0] <= now - RATE_WINDOW:
            self.samples.popleft()  # keep one sample at or before the window's start
        then, done_then = self.samples[0]
        if now - then >= 0.2:
            return (done - done_then) / (now - then)
        # Too little time for a window: the whole scan's average, once there is one.
        return done / (now - self.started) if done and now > self.started else None

    def _fields(self, done: int, total: int) -> dict[str, Any]:
        rate = self.rate(done)
        left = total - done
        # All nodes ended: nothing is left to wait for, whatever was not done.
        eta = 0.0 if not left or self.ended >= self.nodes else left / rate if rate else None
        return {"pct": 100 * done // total if total else 100,  # 100 only when all is done
                "rate": f"{rate:,.0f}/s" if rate is not None else "-/s", "eta": clock(eta),
                "elapsed": clock(time.monotonic() - self.started),
                "nodes": f"nodes {self.ended}/{self.nodes}", "running": self.running_text()}

    def _update(self) -> None:
        done, total = self.work()
        self.bar.update(self.task, completed=done, total=total, **self._fields(done, total))

    def line(self) -> str:
        """The plain line: ``progress: 42% 1234/2900 items, 310/s, elapsed 0:04, eta 0:05,
        nodes 4/17, running: port_scan 1200/2800``."""
        task = self.bar.tasks[0]
        f = task.fields
        text = (f"progress: {f['pct']}% {task.completed:.0f}/{task.total:.0f} items, {f['rate']}, "
                f"elapsed {f['elapsed']}, eta {f['eta']}, {f['nodes']}")
        return text + (f", {f['running']}" if f["running"] else "")

    def _plain(self) -> None:
        self.last_plain = time.monotonic()
        self.out.write(self.line() + "\n")
        self.out.flush()
