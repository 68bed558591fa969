"""Sharding: the split of the target × port space (property tests), the scanners' use of
it against real listeners on 127.0.0.1, and the pieces of the Celery executor that need
no broker (record wire format and merge, which nodes run on workers)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pentora_plugins.engine
import pentora_plugins.portscan
import pentora_plugins.portscan.connect_scanner as connect_scan
import pentora_plugins.portscan.syn_scanner as syn_scan
import pentora_plugins.portscan.udp_scanner as udp_scan
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pentora_plugins.distributed._runner import run_shard
from pentora_plugins.distributed._split import local_dag, remote_dag, remote_nodes
from pentora_plugins.distributed._wire import Deduper, ShardResults, decode, encode, merge_values, shippable
from pentora_plugins.kit.records import Banner, Host, Port, Target
from pentora_plugins.kit.shard import Shard, ShardSpace, host_indexer, shard_sizes
from pentora_plugins.kit.targetset import TargetSet

from pentora import DagBuilder, Orchestrator, PentoraError
from pentora.testing import RecordCollector, free_port

# -- the split ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(hosts=st.integers(1, 40), nports=st.integers(1, 40), count=st.integers(1, 12),
       seed=st.integers(0, 2**32))
def test_every_item_is_in_exactly_one_shard(hosts: int, nports: int, count: int, seed: int) -> None:
    owners: dict[int, int] = {}
    for k in range(1, count + 1):
        for item in ShardSpace(Shard(k, count, seed), hosts, nports).items():
            assert item not in owners, f"item {item} in shards {owners[item]} and {k}"
            owners[item] = k
    assert sorted(owners) == list(range(hosts * nports))


@settings(max_examples=25, deadline=None)
@given(hosts=st.integers(100, 300), nports=st.integers(20, 120), count=st.integers(2, 16),
       seed=st.integers(0, 2**32))  # ≥ 125 items a shard: ±1 item is within 1%
def test_shards_are_balanced_within_one_percent(hosts: int, nports: int, count: int, seed: int) -> None:
    sizes = shard_sizes(count, hosts, nports, seed)
    assert sum(sizes) == hosts * nports
    assert max(sizes) - min(sizes) <= 1  # a permutation dealt round-robin
    mean = hosts * nports / count
    assert all(abs(s - mean) <= 0.01 * mean for s in sizes), sizes


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_every_shard_gets_an_even_mix_of_hosts(seed: int) -> None:
    hosts, nports, count = 64, 64, 8
    for k in range(1, count + 1):
        space = ShardSpace(Shard(k, count, seed), hosts, nports)
        touched = {item // nports for item in space.items()}
        # 64 items a host, 1 in 8 theirs: a host missing from a shard is a 2e-4 chance
        assert len(touched) >= 0.9 * hosts, (k, len(touched))


def test_same_seed_same_split_other_seed_other_split() -> None:
    def split(seed: int) -> list[list[int]]:
        return [list(ShardSpace(Shard(k, 4, seed), 10, 10).items()) for k in range(1, 5)]
    assert split(7) == split(7)
    assert split(7) != split(8)


@pytest.mark.parametrize("text", ["0/8", "9/8", "3", "x/8", "3-8", "3/0", ""])
def test_bad_shard_specs_say_how_to_write_one(text: str) -> None:
    with pytest.raises(PentoraError, match=r"K/N|1 <= K <= N"):
        Shard.parse(text)


def test_host_index_follows_the_target_set_order() -> None:
    targets = TargetSet.parse("127.0.0.5-7,127.0.0.1")
    size, index = host_indexer(targets)
    assert size == 4
    assert [index(a) for a in ("127.0.0.1", "127.0.0.5", "127.0.0.6", "127.0.0.7")] == [0, 1, 2, 3]
    assert 0 <= index("127.9.9.9") < 4  # a host found some other way gets a stable slot
    assert index("127.9.9.9") == index("127.9.9.9")
    size, index = host_indexer([Target("127.0.0.2"), Target("127.0.0.1")])
    assert (size, index("127.0.0.1"), index("127.0.0.2")) == (2, 0, 1)


# -- the scanners, sharded, against real listeners ---------------------------------------------


@pytest.fixture
def listeners() -> Iterator[list[int]]:
    socks = []
    for _ in range(12):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        socks.append(s)
    yield sorted(s.getsockname()[1] for s in socks)
    for s in socks:
        s.close()


def _scan(module: Any, mtype: str, ports: str, shard: list[int] | None,
          recorder: RecordCollector | None = None, **config: Any) -> list[tuple[str, int, str]]:
    orch = Orchestrator(plugins=[pentora_plugins.portscan, pentora_plugins.engine,
                                 *([recorder] if recorder else [])], autoload=False)
    orch.load_dag(DagBuilder().add_node("scan", mtype, config={
        "input": "targets", "ports": ports, "timeout": "300ms", **config}).build())
    options = {} if shard is None else {"shard": shard}
    result = orch.execute(initial={"targets": TargetSet.parse("127.0.0.1")}, options=options)
    assert result.ok, result.nodes["scan"].error
    return [(p.host, p.port, p.state) for p in result.context.get("open_ports")]


def test_connect_scanner_shards_partition_its_findings(listeners: list[int]) -> None:
    spec = ",".join(map(str, [*listeners, free_port()]))
    whole = _scan(connect_scan, "connect_scanner", spec, None)
    assert [p for _, p, _ in whole] == listeners
    parts = []
    for k in (1, 2, 3):
        recorder = RecordCollector()
        found = _scan(connect_scan, "connect_scanner", spec, [k, 3, 0], recorder)
        assert sorted(r.port for kind, r in recorder.records if kind == "port") == [p for _, p, _ in found]
        parts.append(found)
    merged = [item for part in parts for item in part]
    assert sorted(merged) == whole  # every open port in exactly one shard
    assert all(len(part) >= 2 for part in parts)  # 12 ports over 3 shards: no shard is empty


def test_syn_scanner_shards_partition_its_findings(listeners: list[int]) -> None:
    try:
        syn_scan.open_receive_socket().close()
    except PermissionError as e:
        pytest.skip(f"raw sockets need root or CAP_NET_RAW ({e}); the connect scanner test covers it")
    spec = ",".join(map(str, [*listeners, free_port()]))
    whole = _scan(syn_scan, "syn_scanner", spec, None)
    assert [p for _, p, _ in whole] == listeners
    parts = [_scan(syn_scan, "syn_scanner", spec, [k, 4, 9]) for k in (1, 2, 3, 4)]
    assert sorted(item for part in parts for item in part) == whole


def test_udp_scanner_probes_only_its_shard(udp_server) -> None:
    servers = [udp_server(reply=b"pong") for _ in range(6)]
    spec = ",".join(str(s.port) for s in servers)
    seen = []
    for k in (1, 2):
        seen += _scan(udp_scan, "udp_scanner", spec, [k, 2, 5], retries=0)
    assert sorted(p for _, p, _ in seen) == sorted(s.port for s in servers)
    assert all(len(s.received) == 1 for s in servers)  # each port probed once, by one shard


# -- the wire and the merge ----------------------------------------------------------------------


def test_records_cross_the_wire_as_json_and_come_back() -> None:
    records = [Port("127.0.0.1", 22), Host("127.0.0.1", latency_ms=0.3),
               Banner("127.0.0.1", 22, data="SSH-2.0-x\r\n\xff")]
    wire = encode(records)
    assert shippable(wire) and wire[0]["__kind__"] == "port"
    assert decode(wire) == records
    assert not shippable(encode(TargetSet.parse("127.0.0.1")))  # lazy sets stay home


def test_merge_drops_repeats_across_shards_and_sorts() -> None:
    shard1 = [Host("127.0.0.2", latency_ms=1.0), Port("127.0.0.2", 80), Port("127.0.0.1", 22)]
    shard2 = [Host("127.0.0.2", latency_ms=2.0), Port("127.0.0.1", 22), Port("127.0.0.1", 21)]
    hosts = merge_values([[r for r in s if isinstance(r, Host)] for s in (shard1, shard2)])
    assert hosts == [Host("127.0.0.2", latency_ms=1.0)]  # the first shard's copy wins
    ports = merge_values([[r for r in s if isinstance(r, Port)] for s in (shard1, shard2)])
    assert [(p.host, p.port) for p in ports] == [("127.0.0.1", 21), ("127.0.0.1", 22), ("127.0.0.2", 80)]
    seen = Deduper()
    assert [seen.new("port", p) for p in (Port("127.0.0.1", 1), Port("127.0.0.1", 1))] == [True, False]


def test_a_shard_whose_result_arrives_twice_is_merged_once(listeners: list[int]) -> None:
    """A shard sent again (its worker looked dead) may finish twice: once per worker. Each
    run here is real (the worker's code, scanning listeners on 127.0.0.1); the second
    result of shard 1 adds nothing, wherever it comes in the order."""
    dag = DagBuilder().add_node("targets", "target_parser", config={"targets": "127.0.0.1"}) \
        .add_node("scan", "connect_scanner", depends_on=["targets"],
                  config={"input": "targets", "ports": ",".join(map(str, listeners)), "timeout": "300ms"}) \
        .build().to_dict()

    def shard(k: int) -> dict[str, Any]:
        result = run_shard({"dag": dag, "vars": {}, "shard": [k, 2, 0], "disabled": []}, f"worker-{k}")
        return json.loads(json.dumps(result))  # as it comes back through the result backend

    first, second, again = shard(1), shard(2), shard(1)
    assert first["records"] and again["records"] == first["records"]
    results = ShardResults()
    emitted = []
    for result in (first, second, again):
        new = results.add(result)
        emitted.append(None if new is None else [(kind, r.port) for kind, r in new if kind == "port"])
    assert emitted[2] is None  # the repeat is recognised by its shard, not merged again
    ports = [port for found in emitted[:2] for _, port in (found or [])]
    assert sorted(ports) == listeners  # each open port emitted exactly once
    merged = results.merged(["scan"])
    assert [p.port for p in merged["__outputs__"]["open_ports"]] == listeners
    assert merged["scan"]["statuses"] == {1: "completed", 2: "completed"}

    alone = ShardResults()
    for result in (again, second, first):  # the late copy first: the same merge
        alone.add(result)
    assert alone.merged(["scan"]) == merged


# -- what runs where ---------------------------------------------------------------------------------


def test_asset_profiles_and_reporters_stay_on_the_submitting_side() -> None:
    orch = Orchestrator()
    orch.load_dag(orch_profile(orch, "service-scan"))
    orch.validate(vars={"targets": "127.0.0.1", "icmp": False})
    remote = remote_nodes(orch.dag, orch.registry)
    assert remote == ["target_ingestion", "discover.icmp", "discover.tcp_probe", "discover.arp",
                      "discover.merge", "port_scan", "connect_scan", "udp_scan", "banner_grab", "fingerprint"]
    shipped = remote_dag(orch.dag, remote, 60.0)
    assert [n["instance_id"] for n in shipped["nodes"]] == remote
    assert shipped["engine"]["global_timeout"] == 60.0
    local = local_dag(orch.dag, remote, orch.validated.produces, orch.registry)
    # as the discovery fragment says: it runs when -Pn switched both probes off
    assert local.node_map()["discover.merge"].trigger_rule == "all_done"
    assert [(n.instance_id, n.module_type) for n in local.nodes][:2] == [
        ("shards", "celery_shards"), ("target_ingestion", "shard_result")]
    assert local.node_map()["asset_profile"].module_type == "asset_profiler"
    orch.load_dag(local)
    orch.validate(vars={"targets": "127.0.0.1", "icmp": False})  # the stand-ins keep the data contract


def orch_profile(orch: Orchestrator, name: str) -> Any:
    from pentora.cli._common import profile_path
    return profile_path(orch, name)


def test_the_plugin_and_the_shard_module_load_without_celery() -> None:
    code = ("import sys; import pentora_plugins.distributed, pentora_plugins.kit.shard; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu')], 'celery loaded'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_cli_shard_option_runs_one_shard(run_cli, listeners: list[int], tmp_path: Path) -> None:
    spec = ",".join(map(str, listeners))
    found: list[int] = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}.jsonl"
        done = run_cli("scan", "-t", "127.0.0.1", "-p", spec, "--profile", "port-scan", "--set",
                       "icmp=false", "--shard", f"{k}/2", "-q", "-o", str(out))
        assert done.returncode == 0, done.stderr
        found += [r["port"] for r in map(json.loads, out.read_text().splitlines()) if r["kind"] == "port"]
    assert sorted(found) == listeners


@pytest.mark.parametrize("argv, message", [
    (["--shard", "9/8"], "shard 9/8 does not exist"),
    (["--shards", "4"], "--broker and --shards go with --executor celery"),
    (["--executor", "celery"], "--executor celery needs --broker URL"),
    (["--executor", "celery", "--broker", "redis://127.0.0.1:1/0", "--shard", "1/2"], "give --shards N"),
])
def test_cli_sharding_mistakes_are_usage_errors(run_cli, argv: list[str], message: str) -> None:
    done = run_cli("scan", "-t", "127.0.0.1", "-p", "1", "--profile", "port-scan", *argv)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_pentora_scan_execute_lets_a_plugin_run_the_scan(run_cli, tmp_path: Path) -> None:
    """The generic hook the sharding options reach their plugin through (any plugin may use it)."""
    hooks = tmp_path / "hooks.py"
    hooks.write_text("import pentora\n\n"
                     "@pentora.hookimpl\n"
                     "def pentora_scan_execute(orch, args, variables, options):\n"
                     "    print('run by the hook', sorted(variables), sorted(options))\n"
                     "    return orch.execute(vars=variables, options={**options, 'shard': [2, 2, 0]})\n")
    out = tmp_path / "out.jsonl"
    done = run_cli("scan", "-t", "127.0.0.1", "-p", "1", "--profile", "port-scan", "--set", "icmp=false",
                   "--hooks", str(hooks), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "run by the hook ['icmp', 'ports', 'targets'] [" in done.stdout and "'progress'" in done.stdout
    assert '"kind": "scan"' in out.read_text()  # outputs and reporters ran as ever
