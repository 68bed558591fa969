"""Making the standard library cooperative (gevent's ``monkey.patch_all``), cheaply.

gevent announces each module it patches to the entry points of a group of its own
(``gevent.plugins.monkey.*``), and asks ``importlib.metadata`` for them every time: some
two dozen scans of every installed distribution, most of the cost of ``patch_all`` and
more than a scan's whole start-up allows. The installed distributions do not change while
it patches, so the entry points are read once here and gevent is answered from them.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def entry_points_read_once() -> Iterator[None]:
    """Inside the block, ``importlib.metadata.entry_points`` answers from one reading of
    the installed distributions' entry points."""
    everything = md.entry_points()
    saved = md.entry_points

    def cached(**params: Any) -> Any:
        return everything.select(**params) if params else everything

    md.entry_points = cached  # type: ignore[assignment]
    try:
        yield
    finally:
        md.entry_points = saved


def patch_all() -> None:
    """``gevent.monkey.patch_all()``, the entry points it announces to read once."""
    from gevent import monkey

    with entry_points_read_once():
        monkey.patch_all()
