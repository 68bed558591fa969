"""The hub watchdog: a node that blocks the event loop is named, timed out and stopped.

Every node shares one gevent hub. A module that never yields (a ``while True`` loop, a
blocking ``time.sleep`` or socket call, a huge computation) stops every other node, and
the hub's own timers with it: node timeouts, the global timeout, SIGINT and SIGTERM
could not act, and the first node to run after it would take the blame for a timeout it
did not cause. The watchdog closes that hole in three parts:

- **a heartbeat**: a repeating libev timer in the hub notes when the loop last ran;
- **a watch thread** (a real OS thread, unpatched primitives) that notices when the
  heartbeat stops for longer than ``POKE_AFTER``, and then pokes the main thread with
  ``SIGURG`` (default action: ignore, so a stray one is harmless) every ``POKE_EVERY``;
  a real signal interrupts blocking system calls (EINTR), and Python runs the handler at
  the next bytecode, even inside a spinning loop;
- **the handler** runs in the main thread, in the greenlet that blocks. It names the node
  that greenlet belongs to (a warning and the node record's ``warnings``), and raises
  there when that node's timeout has passed (``NodeTimeout``), or ``GreenletExit`` when
  the scan is stopping (SIGINT, SIGTERM, ``cancel()``, the global timeout): the module
  stops as if the hub had killed it, within about a second.

When nothing regains the hub (the module swallows every exception, or blocks in C code
that never returns to Python) for ``GIVE_UP_AFTER`` seconds once a stop or a timeout is
due, the watch thread calls the orchestrator's ``on_scan_abandoned`` callbacks (the CLI
closes its outputs there, so the JSONL holds everything found) and ends the process
with ``os._exit``: the scan store then reads the scan as interrupted, ready to resume.
Without such a callback (a library caller), the watchdog warns and pokes but never
ends the process.

Signals reach Python handlers only in the main thread: a scan run from another thread
gets the heartbeat and the warnings (naming the code location, from the thread's
frames) but no interruption.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import gevent
from gevent import GreenletExit
from gevent.monkey import get_original

from ._errors import HubInterrupt
from ._log import logger
from ._units import format_duration

if TYPE_CHECKING:
    from ._execute import Executor

log = logger.bind(component="watchdog")

BEAT_EVERY = 0.1   # heartbeat period of the hub timer
POKE_AFTER = 0.5   # hub silent this long: poke the main thread (it is blocked, not busy)
POKE_EVERY = 0.25  # then again this often while it stays silent
WARN_AFTER = 1.0   # a node blocking this long is named in a warning and its record
GIVE_UP_AFTER = 5.0  # a due stop or timeout that nothing could deliver: end the process
CALLBACKS_BOUND = 10.0  # then at most this long for the abandon callbacks
POKE_SIGNAL = signal.SIGURG
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

# The watch thread must not be a greenlet: under monkey-patching, these are the originals.
_start_thread: Callable[..., Any] = get_original("_thread", "start_new_thread")
_real_sleep: Callable[[float], None] = get_original("time", "sleep")
_get_ident: Callable[[], int] = get_original("_thread", "get_ident")


# The watchdogs running in this process. A process may run several scans in one hub at
# once (a scan server): the signal handler and the wakeup fd are the process's, so they
# are shared. The first watchdog to start installs one handler that asks every running
# watchdog about a poke (each knows its own scan's nodes), and the last to stop puts back
# what was there before; the wakeup fd is the newest running watchdog's pipe. A scan
# restoring what it found at its start would put back a finished scan's closed pipe.
_RUNNING: list[Watchdog] = []
_BEFORE: dict[str, Any] = {}  # "handler" and "wakeup": the process's, before the first


def _poke_all(signum: int, frame: FrameType | None) -> None:
    for dog in list(_RUNNING):
        dog._on_poke(signum, frame)


class Watchdog:
    """Watches the hub for one ``Executor.run``; ``start()`` then ``stop()``, hub thread."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.beat = time.monotonic()
        self.stopping = False
        self.main = False  # the hub runs in the main thread: signals reach it (start())
        self.hub_ident = _get_ident()
        self.warned: set[int] = set()      # nodes named in this blocking episode
        self.blocker: int | None = None    # the node the handler found blocking, if any
        self.signalled: float | None = None  # when SIGINT/SIGTERM arrived (wakeup fd)
        self.signal_name = "a signal"
        self._timer: Any = None
        self._wakeup_set = False
        self._stopped = False
        self._stop_signals = 0  # SIGINT/SIGTERM seen during this blocking episode
        self._poked: tuple[Any, float] | None = None  # (greenlet, beat) the last poke found
        self._given_up = False
        self._pipe: tuple[int, int] | None = None
        self._episode_start: float | None = None
        self._thread_warned = False

    # -- life cycle (hub thread) -------------------------------------------------------------

    def start(self) -> None:
        self._timer = gevent.get_hub().loop.timer(BEAT_EVERY, BEAT_EVERY, ref=False)
        self._timer.start(self._on_beat)
        try:  # refused outside the main thread (only it runs Python signal handlers)
            previous = signal.signal(POKE_SIGNAL, _poke_all)
            if not _RUNNING:
                _BEFORE["handler"] = previous
            self.main = True
        except ValueError:
            self.main = False
        _RUNNING.append(self)
        if self.main:
            try:
                r, w = os.pipe()
            except OSError as e:  # out of descriptors: the scan runs, SIGINT waits for the hub
                log.debug("no wakeup pipe for the watchdog: {}", e)
            else:
                os.set_blocking(r, False)
                os.set_blocking(w, False)
                self._pipe = (r, w)
                try:  # the C signal handler writes each signal's number here, even while
                    # Python code cannot run: the watch thread learns of SIGINT during a block
                    previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
                    if not any(dog._wakeup_set for dog in _RUNNING):
                        _BEFORE["wakeup"] = previous
                    self._wakeup_set = True
                except ValueError:
                    pass
        try:
            _start_thread(self._watch, ())
        except RuntimeError as e:  # no thread to be had: the scan runs unwatched
            log.warning("the event-loop watchdog could not start ({}): a module that blocks "
                        "will not be interrupted", e)
            self.stop()
            self._close_pipe()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
        if self in _RUNNING:
            _RUNNING.remove(self)
        if self.main and not any(dog.main for dog in _RUNNING):
            before = _BEFORE.pop("handler", None)
            signal.signal(POKE_SIGNAL, before if before is not None else signal.SIG_DFL)
        if self._wakeup_set:
            self._give_back_wakeup()
        # Only now may the thread close the pipe: no signal can write to its fd any more.
        self.stopping = True
        # The pipe is closed by the watch thread as it leaves: it may be reading it now.

    def _give_back_wakeup(self) -> None:
        """The wakeup fd to the newest watchdog still running, else to what the process
        had before the first; unless it is not ours any more (set since by someone else:
        it stays theirs)."""
        self._wakeup_set = False
        ours = self._pipe[1] if self._pipe else None
        newest = [dog._pipe[1] for dog in _RUNNING if dog._wakeup_set and dog._pipe]
        after = newest[-1] if newest else _BEFORE.pop("wakeup", -1)
        try:
            current = signal.set_wakeup_fd(after)
        except ValueError:  # not the main thread any more (an interpreter shutting down)
            return
        except OSError:  # what was there before is closed by now: none
            current = signal.set_wakeup_fd(-1)
        if current not in (ours, -1):
            try:
                signal.set_wakeup_fd(current)
            except OSError:
                signal.set_wakeup_fd(-1)

    def _on_beat(self) -> None:
        self.beat = time.monotonic()
        if self._episode_start is not None:
            self._episode_start = None
            self.warned.clear()
            self.blocker = None
            self._thread_warned = False
            self._given_up = False
        # The hub ran: a signal it received went through the normal path (the CLI's cancel).
        self.signalled = None
        self._stop_signals = 0

    # -- the watch thread --------------------------------------------------------------------

    def _watch(self) -> None:
        last_poke = 0.0
        try:
            while not self.stopping:
                _real_sleep(BEAT_EVERY)
                self._read_signals()
                now = time.monotonic()
                silent = now - self.beat
                if silent < POKE_AFTER or self.stopping:
                    continue
                if self._episode_start is None:
                    self._episode_start = self.beat
                due = self._due(now)
                # Pokes interrupt system calls (EINTR): only while there is something to do,
                # naming the blocker once, or delivering a stop or a timeout.
                wanted = due is not None or not (self.warned or self._thread_warned)
                if self.main and wanted and now - last_poke >= POKE_EVERY:
                    last_poke = now
                    try:
                        signal.pthread_kill(self.hub_ident, POKE_SIGNAL)
                    except (OSError, ValueError):  # the thread is gone: the run is ending
                        return
                if silent >= WARN_AFTER + POKE_AFTER and not self._thread_warned and self.blocker is None:
                    # The handler has not run (C code, or not the main thread): say where
                    # the hub thread is, from its frames.
                    self._thread_warned = True
                    _say(f"warning: the event loop has been blocked for "
                         f"{format_duration(round(silent, 1))} at "
                         f"{_where(sys._current_frames().get(self.hub_ident))}: nodes, timeouts "
                         "and signals wait for it")
                hurry = self._stop_signals >= 2  # a second Ctrl-C: now, not in 5 s
                if due is not None and not self._given_up and (
                        hurry or now - max(due[0], self.beat) >= GIVE_UP_AFTER):
                    self._given_up = True
                    # A second Ctrl-C exits as it does with a free hub (130); otherwise as
                    # a stopped scan does (3).
                    self._give_up(due[1], silent, 130 if hurry else None)
        finally:
            self._close_pipe()

    def _close_pipe(self) -> None:
        pipe, self._pipe = self._pipe, None
        for fd in pipe or ():
            os.close(fd)

    def _read_signals(self) -> None:
        if self._pipe is None:
            return
        try:
            data = os.read(self._pipe[0], 512)
        except (BlockingIOError, OSError):
            return
        stops = [b for b in data if b in STOP_SIGNALS]
        if stops and time.monotonic() - self.beat >= BEAT_EVERY * 2:  # the hub is not running
            self._stop_signals += len(stops)
            if self.signalled is None:
                self.signal_name = signal.Signals(stops[0]).name
                self.signalled = time.monotonic()

    def _due(self, now: float) -> tuple[float, str] | None:
        """(since when, why) a stop or a timeout is due that the blocked hub cannot act on."""
        sched = self.ex.scheduler
        blocker = self.blocker
        deadlines = self.ex.attempts.deadlines
        # A reporter running after a stop is bound by its own (reporter) timeout only.
        reporter = blocker is not None and self.ex.always[blocker]
        if not reporter:
            if self.signalled is not None:
                return self.signalled, f"interrupted by {self.signal_name}"
            if sched.stop_reason is not None and sched.stop_requested_at is not None:
                return sched.stop_requested_at, sched.stop_reason
            if sched.deadline is not None and now >= sched.deadline:
                return sched.deadline, "global timeout"
        for i in ([blocker] if blocker is not None else list(deadlines)):
            d = deadlines.get(i)
            if d is not None and now >= d:
                return d, f"node '{self.ex.nodes[i].instance_id}' timed out"
        return None

    def _give_up(self, why: str, silent: float, code: int | None) -> None:
        """Nothing regains the hub: with abandon callbacks, end the process keeping what was
        found; without (a library caller), say so once for this episode and keep watching.
        Messages go straight to stderr: the stuck thread may hold the logger's lock."""
        blocker = self.blocker
        culprit = (f"node '{self.ex.nodes[blocker].instance_id}'" if blocker is not None
                   else _where(sys._current_frames().get(self.hub_ident)))
        callbacks = self.ex.abandon_callbacks
        took = format_duration(round(silent))
        if not callbacks:
            _say(f"error: the event loop has been blocked for {took} by {culprit} and ignores "
                 f"interruption ({why}); nothing can stop it from here")
            return
        if time.monotonic() - self.beat < POKE_AFTER:
            return  # the hub came back meanwhile: nothing to abandon
        code = self.ex.abandon_exit_code if code is None else code
        # The callbacks run beside a stuck thread that may hold a lock one of them needs:
        # whatever happens, the process ends within the bound.
        _start_thread(_exit_after, (CALLBACKS_BOUND, code))
        reason = (f"abandoned: {culprit} blocked the event loop for {took} and could not be "
                  f"interrupted ({why})")
        _say(f"error: {reason}; ending the process with what was found so far")
        result = self.ex.abandoned_result(reason, blocker)
        for fn in callbacks:
            try:
                fn(result)
            except BaseException as e:  # noqa: BLE001 - the process is ending: say it and go on
                _say(f"error: on_scan_abandoned callback failed: {type(e).__name__}: {e}")
        os._exit(code)

    # -- the handler (main thread, in whatever greenlet blocks) ------------------------------

    def _on_poke(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping or time.monotonic() - self.beat < POKE_AFTER:
            return  # the hub ran meanwhile: nothing blocks
        current = gevent.getcurrent()
        if current is gevent.get_hub():
            return  # blocked in a hub callback, not a node: only the thread's warning applies
        # The same greenlet twice, with no beat in between: it is the one blocking (the
        # first bytecode after a long GC pause or hub callback may belong to any greenlet).
        seen, self._poked = self._poked, (current, self.beat)
        if seen is None or seen[0] is not current or seen[1] != self.beat:
            return
        if _inside_machinery(frame):
            return  # a logger's, a hook's or gevent's own code: raising there corrupts it
        i = self.ex.node_of(current)
        if i is None:
            return
        self.blocker = i
        silent = time.monotonic() - self.beat
        rec = self.ex.records[i]
        if i not in self.warned and silent >= WARN_AFTER:
            self.warned.add(i)
            note = (f"blocked the event loop for {format_duration(round(silent, 1))} at "
                    f"{_where(frame)}: its module calls blocking code (use gevent's cooperative "
                    "calls or ctx.map; CPU-heavy work belongs in a thread pool)")
            rec.warnings.append(note)
            log.warning("node '{}' ({}) {}", rec.node, rec.module_type, note)
        sched = self.ex.scheduler
        if not self.ex.always[i]:  # a reporter after a stop: only its own timeout applies
            if sched.stop_reason is None and self.signalled is not None:
                # The CLI's handler asked the hub to cancel, but the hub cannot run that:
                # stop here (in a node's greenlet, where the scheduler's stop() is safe).
                self.ex.stop(f"interrupted by {self.signal_name}", "cancelled")
            elif sched.stop_reason is None and sched.deadline is not None \
                    and time.monotonic() >= sched.deadline:
                self.ex.stop(f"global timeout after "
                             f"{format_duration(self.ex.engine.global_timeout or 0)}", "timeout")
            if sched.stop_reason is not None:
                raise GreenletExit  # the scan is stopping: end this node as the hub's kill would
        deadline = self.ex.attempts.deadlines.get(i)
        if deadline is not None and time.monotonic() >= deadline:
            # Not an Exception: module code that catches Exception (or OSError, a
            # TimeoutError's base) cannot swallow it; the node's attempt turns it into
            # its NodeTimeout.
            raise HubInterrupt(f"while its module blocked the event loop (at {_where(frame)})")


# Code the handler must not raise into: it holds locks or half-updated state.
_MACHINERY = ("loguru", "gevent", "greenlet", "pluggy", "sqlite3", "logging", "threading",
              "pentora._notify", "pentora._sinks", "pentora._schedule", "pentora._execute",
              "pentora._watchdog", "pentora._records", "pentora._context")
_BOUNDARY = ("pentora._attempts", "pentora._nodectx", "pentora._fanout")


def _inside_machinery(frame: FrameType | None) -> bool:
    """Whether the interrupted code, from the innermost frame out to where the engine
    called the module, runs inside a logger, a hook call, gevent or the engine itself."""
    depth = 0
    while frame is not None and depth < 64:
        name = frame.f_globals.get("__name__", "")
        if name.startswith(_BOUNDARY):
            return False
        if name.startswith(_MACHINERY):
            return True
        frame, depth = frame.f_back, depth + 1
    return False


def _say(text: str) -> None:
    """A line to stderr without the logger (whose lock the stuck thread may hold)."""
    try:
        os.write(2, (text + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def _exit_after(seconds: float, code: int) -> None:
    _real_sleep(seconds)
    os._exit(code)


def _where(frame: FrameType | None) -> str:
    """``file:line in function`` of the innermost frame: where the blocking code is."""
    if frame is None:
        return "an unknown place"
    code = frame.f_code
    return f"{os.path.basename(code.co_filename)}:{frame.f_lineno} in {code.co_name}"
