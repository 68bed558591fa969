"""NodeContext: what a module's ``run`` sees of the scan."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import gevent
import gevent.pool
from gevent import GreenletExit

from ._errors import ContextKeyError, HubInterrupt, ModuleExit
from ._log import logger

if TYPE_CHECKING:
    from ._context import DataContext
    from ._dag import NodeSpec
    from ._records import NodeRecord, ScanInfo
    from ._registry import ModuleType

T = TypeVar("T")
R = TypeVar("R")
_MISSING = object()


def record_kind(record: Any) -> str:
    """The JSONL kind of a finding: its ``kind`` attribute (or key, for a dict), else its
    class name, lowercased."""
    if isinstance(record, dict) and record.get("kind"):
        return str(record["kind"])
    return str(getattr(record, "kind", None) or type(record).__name__.lower())


@dataclass
class NodeRestore:
    """Saved progress of one node, as ``pentora_node_restore`` returns it.

    ``completed``: the node finished in an earlier run; ``outputs`` (DataContext key →
    value) are put back and ``records`` (``(kind, record)`` findings) announced again,
    and the node does not run. Otherwise the node runs and continues: ``items`` maps
    each per-target item it finished (``ctx.checkpoint``) to that item's findings.
    """

    completed: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    records: list[tuple[str, Any]] = field(default_factory=list)
    items: dict[str, list[Any]] = field(default_factory=dict)


class NodeContext:
    """Reads and writes of one node (or one fan-out branch) against the DataContext.

    ``ctx.map`` / ``ctx.spawn`` run work on the node's bounded greenlet pool
    (``max_parallel_targets``); the engine kills that pool when the node times out or
    the scan is cancelled. ``ctx.progress(done, total)`` reports item progress.
    ``ctx.module_type`` is the registry's entry for the node's module (what the engine
    instantiates); ``None`` for a context made without one, outside the engine.
    """

    def __init__(self, scan: ScanInfo, node: NodeSpec, record: NodeRecord, config: dict[str, Any],
                 requires: tuple[str, ...], max_parallel: int,
                 on_progress: Callable[[NodeContext, int, int | None], None],
                 item: Any = _MISSING, records: Callable[[], dict[str, NodeRecord]] | None = None,
                 emit: Callable[[NodeContext, str, Any], None] | None = None,
                 index: int = -1,
                 checkpoint: Callable[[NodeContext, str, list[Any]], None] | None = None,
                 module_type: ModuleType | None = None) -> None:
        self.scan = scan
        self.node = node
        self.node_id = node.instance_id
        self.record = record
        self.module_type = module_type
        self.config = config
        self.requires = requires
        self.vars = scan.vars
        self._data: DataContext = scan.context
        self._max_parallel = max_parallel
        self._pool: gevent.pool.Pool | None = None
        self._on_progress = on_progress
        self._item = item
        self._records = records
        self._emit = emit
        self.index = index  # the node's position in the DAG (what the engine's callbacks key on)
        self.outputs: dict[str, Any] | None = {} if item is not _MISSING else None
        self._log: Any = None
        self._checkpoint = checkpoint
        self.saved: NodeRestore | None = None  # progress of earlier runs/attempts (resume)
        self.written: set[str] = set()  # DataContext keys this node set (saved for a resume)

    @property
    def log(self) -> Any:
        """A loguru logger bound to this node (made on first use: most nodes never log)."""
        if self._log is None:
            self._log = logger.bind(component="module", node=self.node_id)
        return self._log

    # -- data --------------------------------------------------------------------------

    @property
    def item(self) -> Any:
        """The item of this fan-out branch (``for_each``); ``None`` outside a branch."""
        return None if self._item is _MISSING else self._item

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if self._item is not _MISSING and key == self.node.for_each:
            return [self._item]
        if self.outputs is not None and key in self.outputs:
            return self.outputs[key]
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            if default is not _MISSING:
                return default
            raise ContextKeyError(key, self.node_id, requires=key in self.requires)
        return value

    def set(self, key: str, value: Any) -> None:
        if self.outputs is not None:
            self.outputs[key] = value  # a branch's outputs are merged when all branches end
        else:
            self._data.set(key, value)
            self.written.add(key)

    def has(self, key: str) -> bool:
        return (self.outputs is not None and key in self.outputs) or self._data.has(key)

    def keys(self) -> list[str]:
        extra = list(self.outputs or ())
        return sorted(set(self._data.keys()) | set(extra))

    def node_records(self) -> dict[str, NodeRecord]:
        """Every node's record so far (reporters use it to report failures)."""
        return dict(self._records()) if self._records else {}

    # -- concurrency -------------------------------------------------------------------

    @property
    def pool(self) -> gevent.pool.Pool:
        if self._pool is None:
            self._pool = gevent.pool.Pool(self._max_parallel)
        return self._pool

    @property
    def max_parallel(self) -> int:
        return self._max_parallel

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> gevent.Greenlet:
        return self.pool.spawn(_contained(fn), *args, **kwargs)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items`` on the bounded pool; results in input order. The first
        item (in order) that raised raises here, as ``pool.imap`` would."""
        return list(_unwrapped(self.pool.imap(_captured(fn), items)))

    def imap_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        return _unwrapped(self.pool.imap_unordered(_captured(fn), items))

    def kill(self) -> None:
        if self._pool is not None:
            self._pool.kill(block=True, timeout=1)

    # -- reporting ---------------------------------------------------------------------

    def progress(self, done: int, total: int | None = None) -> None:
        self._on_progress(self, done, total)

    def emit(self, record: Any, kind: str | None = None) -> None:
        """Announce a finding as soon as it is made (``pentora_record`` hook): outputs
        stream it, so an interrupted scan keeps it. ``kind`` defaults to ``record.kind``."""
        if self._emit is not None:
            self._emit(self, kind or record_kind(record), record)

    # -- resuming ------------------------------------------------------------------------

    def checkpoint(self, item: str, records: Iterable[Any] = ()) -> None:
        """Say that the per-target ``item`` (a host, ``host:port``…) is finished and
        ``records`` are its findings (already emitted). A resumed scan, or a retry of
        this node, skips it: ``done_items()`` lists it and ``restored_records()`` gives
        its findings back (``pentora_node_checkpoint`` saves it)."""
        if self._checkpoint is not None:
            self._checkpoint(self, item, list(records))

    def done_items(self) -> frozenset[str]:
        """Items finished by an earlier run or attempt of this node: skip them."""
        return frozenset(self.saved.items) if self.saved is not None else frozenset()

    def restored_records(self) -> list[Any]:
        """The findings of ``done_items()``, to include in this node's outputs. They were
        announced again (``pentora_record``) when the node started: do not emit them."""
        if self.saved is None:
            return []
        return [r for records in self.saved.items.values() for r in records]


def _contained(fn: Callable[..., R]) -> Callable[..., R]:
    """``fn`` as a pool greenlet runs it: a SystemExit (or other non-Exception) it raises
    becomes a ModuleExit. gevent's hub would otherwise hand a SystemExit in any greenlet to
    the main greenlet, ending the process."""

    def run(*args: Any, **kwargs: Any) -> R:
        try:
            return fn(*args, **kwargs)
        except (Exception, GreenletExit):
            raise
        except BaseException as e:
            raise ModuleExit(e) from e

    return run


class _Raised:
    """What an item of ``map`` raised, carried out as its result: the error reaches the
    module (and the node's record) without gevent printing a traceback for the greenlet."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _captured(fn: Callable[[T], R]) -> Callable[[T], R | _Raised]:
    def run(item: T) -> R | _Raised:
        try:
            return fn(item)
        except GreenletExit:
            raise
        except BaseException as e:  # SystemExit too: the module's error, never the process's
            return _Raised(e if isinstance(e, (Exception, HubInterrupt)) else ModuleExit(e))

    return run


def _unwrapped(results: Iterable[R | _Raised]) -> Iterator[R]:
    for r in results:
        if type(r) is _Raised:
            raise r.error
        if isinstance(r, GreenletExit):  # gevent gives a killed item's GreenletExit as its value
            raise r
        yield r  # type: ignore[misc]
