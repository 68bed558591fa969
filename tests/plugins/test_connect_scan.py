"""connect_scanner against real sockets: listeners on 127.0.0.1 and ::1 from the
fixtures, and whole port ranges inside a fresh network namespace (``netns``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pentora_plugins.engine
import pentora_plugins.portscan
import pentora_plugins.portscan.connect_scanner as connect_scan
import pytest
import voluptuous as vol
from pentora_plugins.kit.net.connect import FD_MARGIN
from pentora_plugins.kit.net.ratelimit import TokenBucket
from pentora_plugins.kit.records import Port, Target

from pentora import DagBuilder, Orchestrator, ValidationError
from pentora.testing import RecordCollector

HERE = Path(__file__).parent
LISTEN = str(HERE / "_listen.py")
RUNNER = str(HERE / "_connect_runner.py")


Recorder = RecordCollector  # what the scan emits, as (kind, record) pairs


def run_scan(hosts: list[str], recorder: Recorder | None = None, **config: Any) -> Any:
    orch = Orchestrator(plugins=[pentora_plugins.portscan, pentora_plugins.engine,
                                 *([recorder] if recorder else [])],
                        autoload=False)
    config.setdefault("input", "targets")
    orch.load_dag(DagBuilder().add_node("scan", "connect_scanner", config=config).build())
    result = orch.execute(initial={"targets": [Target(address=h) for h in hosts]})
    assert result.ok, result.nodes["scan"].error
    return result


def open_ports(result: Any) -> list[tuple[str, int]]:
    return [(p.host, p.port) for p in result.context.get("open_ports")]


# -- loopback, in this process ------------------------------------------------------------


def test_finds_open_ports_and_not_closed_ones(tcp_server, closed_tcp_port):
    servers = [tcp_server(banner=b"hello\r\n") for _ in range(3)]
    wanted = sorted(s.port for s in servers)
    recorder = Recorder()
    spec = ",".join(str(p) for p in [*wanted, closed_tcp_port])
    result = run_scan(["127.0.0.1"], recorder, ports=spec, timeout="500ms")
    ports = result.context.get("open_ports")
    assert ports == [Port(host="127.0.0.1", port=p, protocol="tcp", state="open",
                          method="connect", reason="syn-ack") for p in wanted]
    assert sorted(r.port for kind, r in recorder.records if kind == "port") == wanted
    assert recorder.progress[0] == (0, 4)  # the planned probes, before the first (--progress)
    assert recorder.progress[-1] == (4, 4)


def test_each_host_gets_only_its_own_listeners(tcp_server):
    one = tcp_server(host="127.0.0.1")
    two = tcp_server(host="127.0.0.2")
    result = run_scan(["127.0.0.2", "127.0.0.1"], ports=f"{one.port},{two.port}")
    assert open_ports(result) == [("127.0.0.1", one.port), ("127.0.0.2", two.port)]


def _ipv6_loopback() -> str | None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError as e:
        return f"IPv6 loopback ::1 is not available here: {e}"
    return None


def test_ipv6_loopback(tcp_server, closed_tcp_port):
    reason = _ipv6_loopback()
    if reason:
        pytest.skip(reason)
    server = tcp_server(host="::1")
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        closed = s.getsockname()[1]
    result = run_scan(["::1"], ports=f"{server.port},{closed}")
    assert open_ports(result) == [("::1", server.port)]


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A 127.0.0.1 port whose accept queue is full, so the kernel drops every new SYN."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(2):  # Linux queues backlog + 1 connections
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(listener.getsockname())
        fillers.append(c)
    try:
        yield listener.getsockname()[1]
    finally:
        for s in [*fillers, listener]:
            s.close()


def test_a_node_timeout_stops_the_scan_and_closes_its_sockets(closed_tcp_port):
    def scan(port: int, **node: Any) -> Any:
        orch = Orchestrator(plugins=[pentora_plugins.portscan], autoload=False)
        config = {"input": "targets", "ports": str(port), "timeout": "30s"}
        orch.load_dag(DagBuilder().add_node("scan", "connect_scanner", config=config, **node).build())
        return orch.execute(initial={"targets": [Target(address="127.0.0.1")]})

    assert scan(closed_tcp_port).ok  # the hub and the rest are set up now
    with silent_port() as port:
        before = open_sockets()
        result = scan(port, timeout="300ms")
        after = open_sockets()
    record = result.nodes["scan"]
    assert record.status == "failed" and "timeout" in record.error
    # No socket the scan opened is still open. (Counting all descriptors was order-dependent:
    # earlier tests' server threads close their connections whenever they time out.)
    assert after - before == set()


def open_sockets() -> set[str]:
    """``socket:[inode]`` of every socket this process holds."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def test_silent_ports_are_retried_then_filtered(tcp_server, closed_tcp_port):
    server = tcp_server()
    found: list[tuple[str, int, str, str]] = []
    engine = connect_scan.ConnectEngine(timeout=0.1, retries=2, on_result=lambda *r: found.append(r))
    with silent_port() as port:
        stats = engine.scan([("127.0.0.1", [port, server.port, closed_tcp_port])], total=3)
    assert found == [("127.0.0.1", server.port, "open", "syn-ack"),
                     ("127.0.0.1", port, "filtered", "no-response")]
    assert (stats.probes, stats.retried, stats.open, stats.closed, stats.filtered) == (5, 2, 1, 1, 1)
    assert stats.peak_inflight == 1


def test_config_is_validated_with_the_key_named():
    orch = Orchestrator(plugins=[pentora_plugins.portscan], autoload=False)
    orch.load_dag(DagBuilder().add_node("scan", "connect_scanner",
                                        config={"input": "targets", "ports": "1-10", "rate": -5,
                                                "retries": True}).build())
    with pytest.raises(ValidationError) as e:
        orch.validate(initial_keys=["targets"])
    text = str(e.value)
    assert "rate" in text and "retries" in text


def test_schema_defaults_and_descriptions():
    schema = connect_scan.ConnectScanner.config_schema
    defaults = {k.schema: k.default() for k in schema if isinstance(k, vol.Optional)}
    assert defaults == {"ports": "top-1000", "timeout": "1s", "retries": 1, "rate": 0,
                        "concurrency": connect_scan.DEFAULT_CONCURRENCY, "input": "discovered_hosts",
                        "host_timeout": 0}
    assert all(k.description for k in schema)


def test_concurrency_is_capped_by_the_open_file_limit():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connect_scan.fd_budget(10) == min(10, soft - FD_MARGIN)
    assert connect_scan.fd_budget(10**9) <= soft - FD_MARGIN


def test_token_bucket_paces_to_its_rate():
    now = [0.0]
    bucket = TokenBucket(100, clock=lambda: now[0])
    assert bucket.take(50) == 1  # no burst at the start
    taken = 0
    for _ in range(1000):  # 10 s in 10 ms steps
        now[0] += 0.01
        taken += bucket.take(10**6)
    assert 999 <= taken <= 1001
    assert 0.01 < bucket.delay(2) <= 0.02 + 1e-9  # a token or less left over
    now[0] += 10  # idle for long: saves up one burst only
    assert bucket.take(10**6) == bucket.burst == 2
    assert TokenBucket(0).take(123) == 123


# -- inside a network namespace -----------------------------------------------------------


@contextlib.contextmanager
def listeners(ns: Any, open: list[str] = (), stuck: list[str] = ()) -> Iterator[None]:  # noqa: A002
    proc = ns.popen(sys.executable, LISTEN, "--open", *open, "--stuck", *stuck,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def engine_scan(ns: Any, targets: list[tuple[str, str]], **opts: Any) -> list[dict[str, Any]]:
    opts["targets"] = targets
    done = ns.python(RUNNER, json.dumps(opts), check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


LISTENING = [1, 22, 80, 443, 8080, 33333, 40000, 50000, 60999, 65535]


def test_whole_range_in_a_namespace_through_the_cli(netns, tmp_path):
    dag = tmp_path / "scan.yaml"
    dag.write_text(json.dumps({"name": "whole-range", "nodes": [
        {"instance_id": "targets", "module_type": "set",
         "config": {"values": {"targets": [{"address": "127.0.0.1"}]}}},
        {"instance_id": "scan", "module_type": "connect_scanner", "depends_on": ["targets"],
         "config": {"input": "targets", "ports": "-", "timeout": "1s"}}]}))
    found = tmp_path / "found.jsonl"
    hooks = tmp_path / "hooks.py"
    hooks.write_text(
        "import json, pentora\n"
        "@pentora.hookimpl\n"
        "def pentora_record(kind, record):\n"
        f"    with open({str(found)!r}, 'a') as f:\n"
        "        f.write(json.dumps({'kind': kind, **record.to_dict()}) + '\\n')\n")
    with listeners(netns, open=[f"127.0.0.1:{p}" for p in LISTENING]):
        done = netns.run(sys.executable, "-m", "pentora", "dag", "run", str(dag), "--hooks",
                         str(hooks), check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in found.read_text().splitlines()]
    assert sorted(r["port"] for r in records) == LISTENING
    assert {(r["kind"], r["host"], r["state"], r["method"]) for r in records} == {
        ("port", "127.0.0.1", "open", "connect")}


def test_whole_range_ipv6_in_a_namespace(netns):
    with listeners(netns, open=["[::1]:22", "[::1]:65535", "127.0.0.1:80"]):
        [run] = engine_scan(netns, [("::1", "-")])
    assert run["open"] == [["::1", 22], ["::1", 65535]]
    assert run["stats"]["closed"] == 65533


def test_a_socket_connected_to_itself_is_not_an_open_port(netns):
    # With a single ephemeral port, a connect to that port must use it as its own
    # source port: the kernel connects the socket to itself.
    netns.run("sh", "-c", "echo '40000 40001' > /proc/sys/net/ipv4/ip_local_port_range")
    runs = engine_scan(netns, [("127.0.0.1", "39990-40010")], repeat=20)
    assert all(run["open"] == [] for run in runs)
    assert sum(run["stats"]["self_connects"] for run in runs) > 0
    assert all(run["stats"]["closed"] == 21 for run in runs)


def test_the_ephemeral_range_scanned_again_and_again_shows_nothing_open(netns):
    runs = engine_scan(netns, [("127.0.0.1", "32768-60999")], repeat=3)
    assert [run["open"] for run in runs] == [[], [], []]


def test_running_out_of_file_descriptors_slows_down_but_loses_nothing(netns):
    opened = list(range(20000, 20600, 3))  # 200 listeners
    stuck = list(range(30000, 30150))      # 150 ports that never answer: sockets in flight
    with listeners(netns, open=[f"127.0.0.1:{p}" for p in opened],
                   stuck=[f"127.0.0.1:{p}" for p in stuck]):
        [baseline] = engine_scan(netns, [("127.0.0.1", "19000-31000")],
                                 engine={"timeout": 0.3, "retries": 1})
        [starved] = engine_scan(netns, [("127.0.0.1", "19000-31000")],
                                engine={"timeout": 0.3, "retries": 1}, nofile=256, free_fds=40,
                                hog=True)
    assert baseline["open"] == [["127.0.0.1", p] for p in opened]
    assert starved["open"] == baseline["open"]
    assert starved["filtered"] == baseline["filtered"] == [["127.0.0.1", p, "no-response"] for p in stuck]
    assert starved["stats"]["closed"] == baseline["stats"]["closed"] == 12001 - 350
    assert starved["limit"] == 256 - FD_MARGIN
    assert starved["stats"]["fd_waits"] > 0
    assert starved["stats"]["peak_inflight"] < 40


def test_silent_ports_are_retried_then_filtered_within_the_concurrency_bound(netns):
    stuck = list(range(7000, 7024))
    with listeners(netns, open=["127.0.0.1:7100"], stuck=[f"127.0.0.1:{p}" for p in stuck]):
        [run] = engine_scan(netns, [("127.0.0.1", "7000-7100")],
                            engine={"timeout": 0.1, "retries": 2, "concurrency": 8})
    assert run["open"] == [["127.0.0.1", 7100]]
    assert run["filtered"] == [["127.0.0.1", p, "no-response"] for p in stuck]
    assert run["stats"]["retried"] == 2 * len(stuck)
    assert run["stats"]["probes"] == 101 + 2 * len(stuck)
    assert run["stats"]["peak_inflight"] == 8


def test_rate_limit_is_honoured_within_ten_percent(netns):
    [run] = engine_scan(netns, [("127.0.0.1", "1-3000")], engine={"rate": 1500})
    assert run["stats"]["probes"] == 3000
    assert 0.9 * 1500 <= run["rate"] <= 1.1 * 1500


def _firewall(ns: Any, *rules: list[str]) -> None:
    tool = shutil.which("iptables")
    if tool is None:
        pytest.skip("iptables is not installed (Debian package 'iptables'): cannot make a filtered port")
    for rule in rules:
        done = ns.run(tool, *rule, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot add a firewall rule in the namespace: {done.stderr.strip()}")


def test_firewalled_ports_are_filtered_not_open(netns):
    _firewall(netns, ["-A", "INPUT", "-p", "tcp", "--dport", "9001", "-j", "DROP"],
              ["-A", "INPUT", "-p", "tcp", "--dport", "9002", "-j", "REJECT",
               "--reject-with", "icmp-host-prohibited"],
              ["-A", "INPUT", "-p", "tcp", "--dport", "9003", "-j", "REJECT",
               "--reject-with", "tcp-reset"])
    with listeners(netns, open=[f"127.0.0.1:{p}" for p in (9000, 9001, 9002, 9003)]):
        [run] = engine_scan(netns, [("127.0.0.1", "8990-9010")],
                            engine={"timeout": 0.3, "retries": 1})
    assert run["open"] == [["127.0.0.1", 9000]]
    assert run["filtered"] == [["127.0.0.1", 9001, "no-response"], ["127.0.0.1", 9002, "host-unreach"]]
    assert run["stats"]["closed"] == 18
