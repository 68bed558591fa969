"""DataContext: API, missing keys, greenlet safety, bounded size that never loses data."""

from __future__ import annotations

import threading
from typing import Any

import gevent
import pytest

from pentora import ContextFullError, ContextKeyError, DagBuilder, DataContext, Module, NodeContext
from tests.conftest import make_orch


def test_get_set_has_keys():
    ctx = DataContext()
    ctx.set("b", 2)
    ctx.set("a", [1])
    assert ctx.get("a") == [1] and ctx.has("b") and "a" in ctx and not ctx.has("c")
    assert ctx.keys() == ["a", "b"]
    assert ctx.get("c", None) is None
    with pytest.raises(ContextKeyError, match="Key 'c' not found in DataContext"):
        ctx.get("c")
    with pytest.raises(ContextKeyError, match="Node 'fp' read 'c' but key not found"):
        ctx.get("c", node="fp")
    with pytest.raises(TypeError):
        ctx.set("", 1)


def test_concurrent_greenlets_and_threads_lose_nothing():
    ctx = DataContext(max_size=50_000)

    def writer(prefix: str) -> None:
        for i in range(200):
            ctx.set(f"{prefix}{i}", list(range(i % 50)))
            gevent.sleep(0)
            assert ctx.get(f"{prefix}{i}") == list(range(i % 50))

    gevent.joinall([gevent.spawn(writer, f"g{n}-") for n in range(5)], raise_error=True)
    threads = [threading.Thread(target=lambda n=n: [ctx.set(f"t{n}-{i}", i) for i in range(200)])
               for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ctx.keys()) == 5 * 200 + 3 * 200
    assert all(ctx.get(f"t{n}-{i}") == i for n in range(3) for i in range(200))


def test_lru_spills_to_disk_and_reads_back():
    ctx = DataContext(max_size=3_000)
    blobs = {f"k{i}": b"x" * 1000 for i in range(6)}
    for k, v in blobs.items():
        ctx.set(k, v)
    assert ctx.resident_size <= 3_000
    assert ctx.spills >= 3 and ctx.is_spilled("k0")
    assert all(ctx.get(k) == v for k, v in blobs.items())  # nothing lost
    ctx.close()


def test_eviction_prefers_values_no_pending_node_needs():
    needed = {"needed"}
    ctx = DataContext(max_size=2_500, needed=lambda k: k in needed)
    ctx.set("needed", b"n" * 1000)   # oldest, but still needed
    ctx.set("done", b"d" * 1000)
    ctx.set("new", b"w" * 1000)      # over budget: 'done' goes, not 'needed'
    assert ctx.is_spilled("done") and not ctx.is_spilled("needed")
    assert ctx.get("done") == b"d" * 1000


def test_evict_policy_none_refuses_with_a_clear_error():
    ctx = DataContext(max_size=1_500, evict_policy="none")
    ctx.set("a", b"a" * 1000)
    with pytest.raises(ContextFullError, match="'b' .* would take it past max_size"):
        ctx.set("b", b"b" * 1000)
    assert ctx.get("a") == b"a" * 1000


class Big(Module):
    module_type = "big"
    config_schema = {"key": str}

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (), (config["key"],)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        ctx.set(config["key"], [config["key"]] * 20_000)


class Reader(Module):
    module_type = "reader"
    config_schema = {"keys": [str]}

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return tuple(config["keys"]), ("sizes",)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        ctx.set("sizes", {k: len(ctx.get(k)) for k in config["keys"]})


def test_scan_with_tiny_max_size_loses_no_value_a_pending_node_needs():
    b = DagBuilder().engine(data_context={"max_size": "100KB", "evict_policy": "lru"})
    keys = [f"k{i}" for i in range(8)]
    for k in keys:
        b.add_node(f"w_{k}", "big", config={"key": k})
    b.add_node("read", "reader", [f"w_{k}" for k in keys], {"keys": keys})
    orch = make_orch(Big, Reader)
    orch.load_dag(b.build())
    result = orch.execute()
    assert result.ok
    assert result.context.get("sizes") == {k: 20_000 for k in keys}
    assert result.context.spills > 0
