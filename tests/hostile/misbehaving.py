"""Module types that misbehave, for ``--hooks``: each does what a buggy or hostile module
could do inside the engine's process (exit, raise a BaseException, return the wrong
thing, block or spin in the event loop, swallow every interruption). Loaded by
tests/hostile/test_misbehaving_modules.py; never part of a real scan."""

from __future__ import annotations

import sys
import threading
from typing import Any

import gevent
import gevent.monkey

import pentora
from pentora import Module

# The real sleep, as a module calling C code that does not yield would block.
_blocking_sleep = gevent.monkey.get_original("time", "sleep")


class Exits(Module):
    """Calls sys.exit(0)."""

    module_type = "exits"

    def run(self, ctx: Any, config: Any) -> Any:
        sys.exit(0)


class RaisesBase(Module):
    """Raises a bare BaseException."""

    module_type = "raises_base"

    def run(self, ctx: Any, config: Any) -> Any:
        raise BaseException("not an Exception")


class ExitsInPool(Module):
    """Raises SystemExit inside a greenlet of its pool (ctx.map)."""

    module_type = "exits_in_pool"

    def run(self, ctx: Any, config: Any) -> Any:
        def work(item: int) -> int:
            if item == 2:
                raise SystemExit(7)
            return item

        return {"items": ctx.map(work, range(4))}


class ReturnsList(Module):
    """Returns a list instead of a mapping."""

    module_type = "returns_list"

    def run(self, ctx: Any, config: Any) -> Any:
        return [1, 2, 3]


class ReturnsLock(Module):
    """Returns a lock instead of a mapping."""

    module_type = "returns_lock"

    def run(self, ctx: Any, config: Any) -> Any:
        return threading.Lock()


class Spins(Module):
    """Spins in Python code for ever: never yields to the event loop."""

    module_type = "spins"

    def run(self, ctx: Any, config: Any) -> Any:
        n = 0
        while True:
            n += 1


class SpinsInPool(Module):
    """Spins for ever in a greenlet of its pool."""

    module_type = "spins_in_pool"

    def run(self, ctx: Any, config: Any) -> Any:
        def work(item: int) -> int:
            while True:
                item += 1

        ctx.map(work, range(2))


class Blocks(Module):
    """Sleeps 30 s with the real (blocking) sleep: the event loop stops meanwhile."""

    module_type = "blocks"

    def run(self, ctx: Any, config: Any) -> Any:
        _blocking_sleep(30)


class Naps(Module):
    """Sleeps 1 s cooperatively and writes 'napped'."""

    module_type = "naps"
    produces = ("napped",)

    def run(self, ctx: Any, config: Any) -> Any:
        gevent.sleep(1)
        return {"napped": True}


class Stubborn(Module):
    """Spins and swallows every exception, BaseExceptions included: nothing interrupts it."""

    module_type = "stubborn"

    def run(self, ctx: Any, config: Any) -> Any:
        while True:
            try:
                while True:
                    pass
            except BaseException:  # noqa: BLE001, S110 - the point of this module
                pass


class BlocksAndSwallows(Module):
    """Blocks in short real sleeps, swallowing every Exception (an OSError and a
    TimeoutError included), as a careless socket loop would."""

    module_type = "blocks_and_swallows"

    def run(self, ctx: Any, config: Any) -> Any:
        while True:
            try:
                _blocking_sleep(0.05)
            except Exception:  # noqa: BLE001, S110 - the point of this module
                pass


class SlowReporter(Module):
    """A reporter that blocks for 2 s (a slow synchronous render), then completes."""

    module_type = "slow_reporter"
    always_run = True

    def run(self, ctx: Any, config: Any) -> Any:
        _blocking_sleep(2)
        return {}


MODULES = (Exits, RaisesBase, ExitsInPool, ReturnsList, ReturnsLock, Spins, SpinsInPool, Blocks,
           Naps, Stubborn, BlocksAndSwallows, SlowReporter)


@pentora.hookimpl
def pentora_register_modules(registry: Any) -> None:
    for cls in MODULES:
        registry.register(cls)
