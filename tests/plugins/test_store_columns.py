"""The store's column form of record lists (a sweep's host list): exact round trips, the
same refusals as a record each, and a resume that restores a node's big output."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pentora_plugins.kit.records import Host, Port
from pentora_plugins.store import StorePlugin
from pentora_plugins.store._codec import (
    COLUMNS_FROM,
    RefusedTypeError,
    UnstorableError,
    decode,
    dumps,
    encode,
    loads,
)
from voluptuous import Optional

from pentora import Module, NodeContext, Orchestrator, hookimpl


def hosts(n: int) -> list[Host]:
    """Hosts as discovery leaves them, with the values a column must keep apart: None,
    floats, lists, an empty list, a name."""
    return [Host(address=f"198.18.{i >> 8}.{i & 255}", hostname="a.test" if i % 7 == 0 else None,
                 alive=i % 5 != 0, method="icmp+tcp_probe" if i % 2 else "icmp",
                 methods=["icmp", "tcp_probe"] if i % 2 else ([] if i % 3 == 0 else ["icmp"]),
                 latency_ms=None if i % 4 == 0 else i / 3, ttl=64 if i % 3 else None,
                 reason="echo-reply") for i in range(n)]


def test_a_long_record_list_is_stored_as_columns_and_comes_back_equal() -> None:
    value = {"discovered_hosts": hosts(5000), "n": 3}
    text = dumps(value)
    stored = json.loads(text)["discovered_hosts"]
    assert stored["$rows"] == "pentora_plugins.kit.records:Host"
    assert set(stored["columns"]) == {f.name for f in dataclasses.fields(Host)}
    assert all(len(column) == 5000 for column in stored["columns"].values())
    back = loads(text)
    assert back == value
    assert all(type(h) is Host for h in back["discovered_hosts"])
    # each record's lists are its own, not shared through the column
    back["discovered_hosts"][1].methods.append("arp")
    assert back["discovered_hosts"][3].methods == ["icmp", "tcp_probe"]


def test_short_mixed_or_unusual_lists_keep_a_record_each() -> None:
    short = hosts(COLUMNS_FROM - 1)
    mixed: list[Any] = [*hosts(COLUMNS_FROM), Port(host="198.18.0.1", port=22)]
    odd = hosts(COLUMNS_FROM)
    odd[4].extra = "not a field"  # type: ignore[attr-defined]
    for value in (short, mixed, odd):
        stored = encode(value)
        assert isinstance(stored, list) and all("$obj" in item for item in stored)
        back = decode(stored)
        assert back == value and "extra" not in vars(back[4])


def test_columns_keep_values_json_has_no_form_for() -> None:
    ports = [Port(host="198.18.0.1", port=p) for p in range(COLUMNS_FROM * 2)]
    for p in ports[::3]:
        p.reason = ("kept", "a tuple")  # type: ignore[assignment]
    stored = encode(ports)
    assert stored["$rows"] == "pentora_plugins.kit.records:Port"
    back = decode(json.loads(json.dumps(stored)))
    assert back == ports and back[0].reason == ("kept", "a tuple") and back[1].reason is None


@pytest.mark.parametrize("crafted, error", [
    ({"$rows": "os:system", "columns": {"address": ["x"]}}, "not a record type pentora stores"),
    ({"$rows": "pentora_plugins.kit.records:Host", "columns": {"address": ["a"], "__class__": ["x"]}},
     "does not declare"),
    ({"$rows": "pentora_plugins.kit.records:Host", "columns": {"address": ["a", "b"], "ttl": [1]}},
     "different lengths"),
    ({"$rows": "pentora_plugins.kit.records:Host", "columns": {"ttl": [1]}}, "cannot be rebuilt"),
    ({"$rows": "pentora_plugins.kit.records:Host", "columns": ["a"]}, "no field columns"),
    ({"$rows": "pentora_plugins.kit.targetset:TargetSet", "columns": {}}, "no field columns"),
])
def test_crafted_columns_are_refused_as_a_crafted_record_is(crafted: dict[str, Any], error: str) -> None:
    with pytest.raises(UnstorableError, match=error) as refused:
        decode(crafted)
    if "os:system" in str(crafted):
        assert isinstance(refused.value, RefusedTypeError)


class Sweep(Module):
    """Publishes ``count`` hosts, counting its runs."""

    module_type = "host_sweep"
    produces = ("discovered_hosts",)
    config_schema = {Optional("count", default=3000): int}
    runs: ClassVar[int] = 0

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        Sweep.runs += 1
        ctx.set("discovered_hosts", hosts(config["count"]))


class Fails(Module):
    """Fails: the scan stops after the sweep, to be resumed."""

    module_type = "fails_once"
    requires = ("discovered_hosts",)
    produces = ("seen",)
    fail: ClassVar[bool] = True

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        if Fails.fail:
            raise RuntimeError("stopped here")
        ctx.set("seen", len(ctx.get("discovered_hosts")))


class Modules:
    @hookimpl
    def pentora_register_modules(self, registry: Any) -> None:
        registry.register(Sweep)
        registry.register(Fails)


DAG = """
name: columns
engine: {fail_fast: false}
nodes:
  - {instance_id: sweep, module_type: host_sweep}
  - {instance_id: after, module_type: fails_once, depends_on: [sweep]}
"""


def run(db: Path, **kw: Any) -> Any:
    orch = Orchestrator(plugins=(Modules(), StorePlugin(db)), autoload=False)
    orch.load_dag(DAG)
    return orch.execute(**kw)


def test_a_resumed_scan_restores_a_node_output_stored_as_columns(tmp_path: Path) -> None:
    db = tmp_path / "scans.db"
    Sweep.runs, Fails.fail = 0, True
    first = run(db)
    assert first.nodes["after"].status == "failed" and Sweep.runs == 1
    with sqlite3.connect(db) as conn:
        (outputs,) = conn.execute("SELECT outputs FROM nodes WHERE node = 'sweep'").fetchone()
    assert json.loads(outputs)["discovered_hosts"]["$rows"] == "pentora_plugins.kit.records:Host"
    Fails.fail = False
    again = run(db, scan_id=first.scan_id, options={"resume": True})
    assert again.ok, again.failures()
    assert again.nodes["sweep"].reason == "restored from an earlier run" and Sweep.runs == 1
    assert again.context.get("discovered_hosts") == hosts(3000)
    assert again.context.get("seen") == 3000
