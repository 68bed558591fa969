"""Sharded ``-Pn`` sweeps walk their own items only: the shard's walk over the inverse
permutation (unit tests), and sweeps of the simulated network in 2..8 shards — the union
of the shards' open ports is exactly the simulated set, each (host, port) in one shard,
each shard sending about 1/N of the probes, memory bounded by the chunk, and a killed
sweep resumed without probing its finished batches again."""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pentora_plugins.kit.assumed import AssumedHosts
from pentora_plugins.kit.shard import Shard, ShardSpace
from pentora_plugins.kit.targetset import FeistelPermutation, TargetSet
from pentora_plugins.portscan._synwalk import Walk

from pentora.testing import SimNet, simulated_network
from tests.plugins.test_syn_scan import RUNNER, raw_sockets_unavailable

PORTS = "21,22,80,443"  # one closed: every probe is answered, open or RST
# "syn_scanner: 1234 probes (...), 56 open, 78 closed, 9 filtered"
STATS = re.compile(r"syn_scanner: (\d+) probes \(.*?\), (\d+) open, (\d+) closed, (\d+) filtered")

# -- the walk ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(hosts=st.integers(1, 60), nports=st.integers(1, 20), count=st.integers(1, 9),
       seed=st.integers(0, 2**32))
def test_a_shards_walk_is_exactly_its_items(hosts: int, nports: int, count: int, seed: int) -> None:
    for k in range(1, count + 1):
        space = ShardSpace(Shard(k, count, seed), hosts, nports)
        walked = list(space.walk())
        assert len(walked) == space.walk_size == len(set(walked))
        assert sorted(walked) == list(space.items())
        # in batches, as the scanner takes it: the same steps, none twice
        assert [i for s in range(0, space.walk_size, 7) for i in space.walk(s, s + 7)] == walked


class CountingPermutation(FeistelPermutation):
    calls = 0

    def inverse(self, x: int) -> int:
        CountingPermutation.calls += 1
        return super().inverse(x)

    def __call__(self, i: int) -> int:
        CountingPermutation.calls += 1
        return super().__call__(i)


def test_a_shard_computes_only_its_own_share_of_the_space() -> None:
    hosts, nports, count = 4096, 3, 8
    space = ShardSpace(Shard(3, count, 1), hosts, nports)
    assert space._perm is not None
    space._perm = CountingPermutation(space.size, 1)
    CountingPermutation.calls = 0
    walked = sum(1 for _ in space.walk())
    assert walked == hosts * nports // count
    assert CountingPermutation.calls == walked  # one inversion an item, none for the others'


class FakeScan:
    """What ``Walk.batches`` asks of the ``SynScan``: the chunks, here the lists of what
    would go in them."""

    def chunks(self, addresses: Any, hosts: int) -> list[list[str]]:
        return [list(addresses)]

    def item_chunk(self, probes: Any) -> list[tuple[str, int]]:
        return list(probes)


def test_a_shards_batches_are_its_items_in_address_order_and_skip_finished_steps() -> None:
    targets = TargetSet.parse("198.18.0.0/26,198.18.1.0/27")
    walk = Walk(targets, 3, Shard(2, 3, 5), chunk_probes=40)  # 10 steps a batch
    assert walk.probes == walk.steps == 96 * 3 // 3  # 96 hosts, 3 ports, 3 shards
    batches = list(walk.batches(FakeScan(), frozenset()))
    every = [f"walk:{a}-{min(a + 9, 95)}" for a in range(0, 96, 10)]
    assert [item for item, _ in batches] == every
    probes = [p for _, (chunk,) in batches for p in chunk]
    for _, (chunk,) in batches:  # ascending (address, port index): the chunk's lookup
        keys = [(ipaddress.ip_address(a), pi) for a, pi in chunk]
        assert keys == sorted(keys)
    index = {t.address: i for i, t in enumerate(targets)}
    space = ShardSpace(Shard(2, 3, 5), targets.size, 3)
    assert sorted(index[a] * 3 + pi for a, pi in probes) == list(space.items())
    # finished steps, in batches of another size: a batch inside them is skipped
    left = [item for item, _ in walk.batches(FakeScan(), frozenset({"walk:0-14", "walk:15-24",
                                                                       "hosts:0-99", "10.0.0.1"}))]
    assert left == every[2:]
    assert walk.finished(frozenset({"walk:0-14", "walk:15-24"})) == [(0, 24)]


def test_unsharded_batches_follow_the_targets_order_shuffled_too() -> None:
    for seed in (None, 4):
        targets = TargetSet.parse("198.18.0.0/28,198.18.2.7", seed=seed)
        walk = Walk(targets, 2, None, chunk_probes=12)  # 6 hosts a batch
        batches = list(walk.batches(FakeScan(), frozenset({"hosts:6-11"})))
        assert [item for item, _ in batches] == ["hosts:0-5", "hosts:12-16"]
        order = list(targets.addresses())
        assert [a for _, (chunk,) in batches for a in chunk] == order[:6] + order[12:]


@pytest.mark.parametrize("spec", ["198.18.0.0/28,2001:2::/126", "198.18.0.1,host.example"])
def test_ipv6_or_unresolved_targets_are_scanned_host_by_host(spec: str) -> None:
    ctx = SimpleNamespace(get=lambda key, default=None: default, scan=SimpleNamespace(options={}))
    assert Walk.of(ctx, AssumedHosts(TargetSet.parse(spec)), 3, 1000) is None  # type: ignore[arg-type]
    v4 = AssumedHosts(TargetSet.parse("198.18.0.0/28"))
    assert Walk.of(ctx, v4, 3, 1000) is not None  # type: ignore[arg-type]
    assert Walk.of(ctx, list(v4), 3, 1000) is None  # type: ignore[arg-type]  # Host records


# -- sweeps of the simulated network ------------------------------------------------------------


def run_shard(net: SimNet, k: int, n: int, **extra: Any) -> tuple[dict[str, Any], str]:
    spec = {"plugin": "pentora_plugins.portscan", "module_type": "syn_scanner", "assume_up": True,
            "prefix": net.prefix, "options": {"shard": [k, n, 11]},
            "config": {"ports": PORTS, "timeout": "1s", "rate": 0}, **extra}
    proc = net.python(RUNNER, json.dumps(spec), check=False, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed", (out, proc.stderr[-3000:])
    return out, proc.stderr


def stats(log: str) -> tuple[int, int, int, int]:
    found = STATS.search(log)
    assert found, log[-3000:]
    sent, opened, closed, silent = map(int, found.groups())
    return sent, opened, closed, silent


@pytest.mark.parametrize("count", [2, 5, 8])
def test_shards_of_a_pn_sweep_walk_a_partition_of_the_space(simnet: SimNet, count: int) -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    nports = len(PORTS.split(","))
    space = len(simnet.addresses()) * nports
    parts, answered = [], 0
    for k in range(1, count + 1):
        out, log = run_shard(simnet, k, count)
        assert f"shard {k}/{count} walks its" in log  # the walk, not a pass over every host
        sent, opened, closed, silent = stats(log)
        owned = opened + closed + silent  # every item of the shard, settled once
        assert abs(owned - space / count) <= 1, (k, owned, space / count)
        # a probe an item; resends only for what a try lost (none on a quiet veth, a few at most)
        assert owned <= sent <= 1.05 * owned, (k, sent, owned)
        answered += opened + closed
        parts.append([(r["host"], r["port"]) for r in out["open_ports"]])
        print(f"shard {k}/{count}: {sent} probes of {space} ({sent / space:.3f} of the space)")
    merged = [pair for part in parts for pair in part]
    assert len(merged) == len(set(merged))  # no open port in two shards
    assert set(merged) == simnet.expected()
    assert answered == space  # closed ones too: the shards cover the space, nothing twice


def test_a_shards_memory_is_bounded_by_its_chunk_not_the_range() -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    peaks = {}
    for prefix in ("198.18.0.0/20", "198.18.0.0/18"):
        # closed ports only: no findings to keep; chunks of 4096 probes, several a shard
        with simulated_network(prefix, ports=(22,)) as net:
            spec = {"plugin": "pentora_plugins.portscan", "module_type": "syn_scanner",
                    "assume_up": True, "prefix": prefix, "options": {"shard": [2, 4, 3]},
                    "trace_memory": True, "chunk_probes": 16384,
                    "config": {"ports": "23,8080", "timeout": "1s", "rate": 0}}
            proc = net.python(RUNNER, json.dumps(spec), check=False, timeout=280)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        hosts = 1 << (32 - int(prefix.split("/")[1]))
        sent, opened, closed, _ = stats(proc.stderr)
        assert opened == 0 and closed == 2 * hosts // 4, proc.stderr[-2000:]
        peaks[prefix] = int(out["peak_memory"])
    small, large = peaks.values()
    print(f"peak traced memory, shard 2/4: /20 {small / 1e6:.2f} MB, /18 {large / 1e6:.2f} MB")
    assert large < 1.5 * small, peaks  # four times the range, the same chunks


# -- resume ------------------------------------------------------------------------------------

CHUNK = 1024  # probes a chunk in the killed scan: a batch of its walk is 256 of them
# pentora scan with small chunks, so that a /20 makes some batches to kill the scan between
SMALL_CHUNKS = ("import sys, pentora_plugins.portscan.syn_scanner as s; s.CHUNK_PROBES = "
                f"{CHUNK}; from pentora.cli import main; sys.exit(main())")


def checkpoints(db: Path) -> list[str]:
    """The port scan's checkpoint items in the store."""
    try:
        with sqlite3.connect(db) as conn:
            return [item for (item,) in conn.execute("SELECT item FROM checkpoints WHERE node = 'port_scan'")]
    except sqlite3.OperationalError:  # not created yet
        return []


def steps(items: list[str], kind: str) -> int:
    """How many steps of a walk the checkpoint items ``kind:A-B`` cover."""
    out = 0
    for item in items:
        if found := re.fullmatch(rf"{kind}:(\d+)-(\d+)", item):
            out += int(found.group(2)) - int(found.group(1)) + 1
    return out


# unsharded, a batch is hosts (each with every port); sharded, steps of the shard's walk
@pytest.mark.parametrize(("shard", "kind"), [(None, "hosts"), ("2/3", "walk")])
def test_a_killed_pn_sweep_resumes_without_probing_its_finished_batches(
        simnet: SimNet, tmp_path: Path, shard: str | None, kind: str) -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    db = tmp_path / "scans.db"
    # the shard is this machine's part of the scan, not the scan's: given again on resume
    sharding = ["--shard", shard, "--shard-seed", "11"] if shard else []
    scan = [sys.executable, "-c", SMALL_CHUNKS, "scan", "--targets", simnet.prefix, "-Pn",
            "-p", PORTS, *sharding, "--max-rate", "3000", "--store", str(db), "-q"]
    proc = simnet.popen(*scan, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len([i for i in checkpoints(db) if i.startswith(f"{kind}:")]) < 3:
            assert proc.poll() is None, f"the scan ended before it could be killed: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no batch checkpoints after 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        proc.wait()
    items = checkpoints(db)
    done = steps(items, kind)
    assert all(i.startswith(f"{kind}:") for i in items), items  # a row a batch, none a host
    with sqlite3.connect(db) as conn:
        sid = conn.execute("SELECT id FROM scans").fetchone()[0]
    resumed = simnet.run(sys.executable, "-c", SMALL_CHUNKS, "scan", "--resume", sid, "--store", str(db),
                         *sharding, "-v", "-o", str(tmp_path / "resumed.jsonl"), check=False, timeout=280)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    unit = "walk steps" if shard else "hosts"
    assert f"{done} {unit} finished by an earlier run are skipped" in resumed.stderr
    sent = stats(resumed.stderr)[0]
    nports, hosts = len(PORTS.split(",")), len(simnet.addresses())
    owned = hosts * nports // 3 if shard else hosts * nports
    left = owned - (done if shard else done * nports)
    print(f"resume: {done} {unit} done at the kill; the resumed run sent {sent} of {owned}")
    # the finished batches' probes are not sent again (resends only for what a try lost)
    assert left <= sent <= 1.05 * left, (sent, left)
    # the open ports, exactly: restored ones and new ones, each once
    lines = [json.loads(x) for x in (tmp_path / "resumed.jsonl").read_text().splitlines()]
    ports = [(x["host"], x["port"]) for x in lines if x.get("kind") == "port"]
    assert len(ports) == len(set(ports))
    if shard:
        whole, _ = run_shard(simnet, 2, 3)
        assert set(ports) == {(r["host"], r["port"]) for r in whole["open_ports"]}
    else:
        assert set(ports) == simnet.expected()
