"""Sweeps of a /16 and beyond, after the probes: -Pn's hosts as a lazy view of the
targets, streamed to the SYN scanner and the store; silent hosts counted, not listed
port by port; the terminal summary capped with its counts whole; -sn through the CLI."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pentora_plugins.discovery
import pentora_plugins.engine
import pentora_plugins.targets
import pytest
from pentora_plugins.discovery.discovery_merger import _merge, _merge_any
from pentora_plugins.kit.assumed import AssumedHosts
from pentora_plugins.kit.inputs import hostnames, iter_hosts
from pentora_plugins.kit.records import Host, Port
from pentora_plugins.kit.shard import host_indexer
from pentora_plugins.kit.targetset import TargetSet
from pentora_plugins.output.summary import blocks, plain
from pentora_plugins.store._codec import dumps, loads

from pentora import DagBuilder, Orchestrator
from pentora.testing import RecordCollector, simulated_network
from tests.plugins.test_syn_scan import RUNNER, raw_sockets_unavailable


def assume_up(targets: str, **config: Any) -> tuple[Any, RecordCollector]:
    collector = RecordCollector()
    orch = Orchestrator(plugins=[pentora_plugins.targets, pentora_plugins.discovery,
                                 pentora_plugins.engine, collector], autoload=False)
    orch.load_dag(DagBuilder("pn")
                  .add_node("targets", "target_parser", config={"targets": targets})
                  .add_node("merge", "discovery_merger", ["targets"], {"assume_up": True, **config})
                  .build())
    return orch.execute(), collector


def test_assume_up_publishes_a_view_of_the_targets_not_a_host_each() -> None:
    result, collector = assume_up("127.0.0.0/22")
    hosts = result.context.get("discovered_hosts")
    assert isinstance(hosts, AssumedHosts) and len(hosts) == 1024
    assert "127.0.2.7" in hosts and "127.0.4.0" not in hosts
    first = next(iter(hosts))
    assert (first.address, first.method, first.methods, first.reason) == (
        "127.0.0.0", "assumed", ["assumed"], "user-set")
    # under emit_limit: each host is still emitted, one record each, in order
    emitted = collector.of("host")
    assert [h.address for h in emitted] == list(hosts.targets.addresses())


def test_assume_up_beyond_emit_limit_emits_no_host_record(log_messages: list[str]) -> None:
    result, collector = assume_up("127.0.0.0/22", emit_limit=1000)
    assert result.nodes["merge"].status == "completed"
    assert len(result.context.get("discovered_hosts")) == 1024
    assert collector.of("host") == []
    assert any("more than emit_limit (1,000)" in line for line in log_messages), log_messages


def test_the_view_streams_to_the_scanners_and_round_trips_through_the_store() -> None:
    targets = TargetSet.parse("127.0.0.0/24, 127.1.0.0/30", seed=3)
    view = AssumedHosts(targets)
    ctx = SimpleNamespace(get=lambda key, *default: view)
    pairs = list(iter_hosts(ctx, {"input": "discovered_hosts"}))  # type: ignore[arg-type]
    assert pairs == [(a, None) for a in targets.addresses()] and len(pairs) == 260
    back = loads(dumps({"discovered_hosts": view}))["discovered_hosts"]
    assert isinstance(back, AssumedHosts) and back == view and list(back) == list(view)
    # a shard numbers the view's hosts as it numbers the targets
    assert host_indexer(view)[0] == host_indexer(targets)[0] == 260
    assert host_indexer(view)[1]("127.1.0.2") == host_indexer(targets)[1]("127.1.0.2")
    assert hostnames(ctx) == {}  # type: ignore[arg-type]


def _result(ports: list[Port], hosts: Any) -> Any:
    context = {"open_ports": ports, "discovered_hosts": hosts}
    ctx = SimpleNamespace(get=lambda key, default=None: context.get(key, default),
                          has=lambda key: key in context)
    return SimpleNamespace(context=ctx, nodes={}, hook_errors=(), counts=lambda: {"completed": 1},
                           scan_id="s1", status="completed", duration_ms=1000)


def test_summary_caps_the_port_table_and_keeps_the_counts_whole() -> None:
    ports = [Port(host=f"198.18.0.{h}", port=p, method="syn") for h in range(50) for p in (22, 80, 443)]
    hosts = AssumedHosts(TargetSet.parse("198.18.0.0/24"))
    text = plain(blocks(_result(ports, hosts), max_rows=100))
    assert "256 host(s) up" in text
    assert text.count("/tcp") == 100
    assert "… 50 more open port(s) not shown (150 on 50 host(s) in all)" in text, text[-400:]
    whole = plain(blocks(_result(ports, [Host(address="198.18.0.1")]), max_rows=None))
    assert whole.count("/tcp") == 150 and "more open port" not in whole and "1 host(s) up" in whole


def _ns_scan(net: Any, spec: dict[str, Any]) -> tuple[dict[str, Any], str]:
    proc = net.python(RUNNER, json.dumps(spec), check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed", (out, proc.stderr[-3000:])
    return out, proc.stderr


def _assumed_sweep_memory(prefix: str) -> int:
    with simulated_network(prefix) as net:
        out, log = _ns_scan(net, {
            "plugin": "pentora_plugins.portscan", "module_type": "syn_scanner", "prefix": prefix,
            "assume_up": True, "trace_memory": True,
            "config": {"ports": "23,8080", "timeout": "1s", "rate": 0}})
    hosts = 1 << (32 - int(prefix.split("/")[1]))
    assert f"{2 * hosts} probes" in log and f"{2 * hosts} closed" in log, log[-2000:]
    return int(out["peak_memory"])


def test_assume_up_sweep_memory_does_not_grow_with_the_range() -> None:
    """target_parser → discovery_merger (assume_up) → syn_scanner, as -Pn runs: a Host
    record per target (~450 bytes each) would make the /18 cost several MB more."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    small, large = _assumed_sweep_memory("198.18.0.0/20"), _assumed_sweep_memory("198.18.0.0/18")
    print(f"peak traced memory, -Pn: /20 {small / 1e6:.1f} MB, /18 {large / 1e6:.1f} MB")
    assert large < 1.4 * small, (small, large)  # a Host per target made it 1.56


def test_assume_up_over_dead_space_lists_no_port_and_stays_small() -> None:
    """A /16 nobody answers in: every probe is silent, and with record_filtered (the
    default) the hosts are counted as all filtered, not listed a port each."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    with simulated_network("198.18.0.0/16") as net:
        # the target no longer takes the prefix as its own: every probe dies there
        net.target.run("ip", "route", "del", "local", "198.18.0.0/16", "dev", "lo", "table", "local")
        net.target.run("ip", "route", "add", "blackhole", "198.18.0.0/16")
        out, log = _ns_scan(net, {
            "plugin": "pentora_plugins.portscan", "module_type": "syn_scanner",
            "prefix": "198.18.0.0/16", "assume_up": True, "trace_memory": True,
            "config": {"ports": "80", "timeout": "300ms", "retries": 0, "rate": 0}})
    assert out["open_ports"] == [] and out["port_states"] == []
    assert "0 open, 0 closed, 65536 filtered" in log, log[-2000:]
    assert "65536 host(s) answered no probe" in log, log[-2000:]
    # 65,536 filtered Port records would be tens of MB; the chunk's arrays are a few
    print(f"peak traced memory, dead /16: {out['peak_memory'] / 1e6:.1f} MB")
    assert out["peak_memory"] < 24e6, out["peak_memory"]


def test_discovery_only_sweep_lists_exactly_every_host_through_the_cli(tmp_path: Path) -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    out = tmp_path / "sn.jsonl"
    with simulated_network("198.18.0.0/20") as net:
        proc = net.run(sys.executable, "-m", "pentora", "scan", "-t", net.prefix, "-sn", "-o", str(out),
                       "--store", str(tmp_path / "store.db"), check=False, timeout=120)
        expected = set(net.addresses())
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    hosts = [r["address"] for r in lines if r["kind"] == "host"]
    assert len(hosts) == len(set(hosts)) and set(hosts) == expected
    assert f"{len(expected)} host(s) up" in proc.stdout, proc.stdout[-2000:]


def test_merging_two_live_answers_quickly_gives_what_the_general_merge_gives() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        pair = []
        for _ in range(2):
            methods = rng.choice([["icmp"], ["tcp_probe"], ["icmp", "arp"], []])
            pair.append(Host(address="198.18.0.9", hostname=rng.choice([None, "a.test"]),
                             method="+".join(methods), methods=methods,
                             latency_ms=rng.choice([None, 1.0, 2.5]), ttl=rng.choice([None, 64, 128]),
                             mac=rng.choice([None, "02:00:00:00:00:01"]),
                             reason=rng.choice([None, "echo-reply", "syn-ack+rst", "rst"])))
        assert _merge(pair) == _merge_any(pair), pair
