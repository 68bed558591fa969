"""Host discovery against real sockets: loopback, and namespaces the tests create.

ICMP and ARP need privilege or a sysctl that only a namespace of our own may change;
those tests run the scanner inside a fresh network namespace (198.18.0.0/15 addresses,
no route anywhere else) and skip with the reason when they cannot.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pentora_plugins
import pentora_plugins.discovery
import pentora_plugins.engine.modules
import pytest
from pentora_plugins.discovery._sweep import Answer, Probe, Sweep
from pentora_plugins.discovery.discovery_merger import merge_hosts
from pentora_plugins.kit.records import Host, Target

import pentora
from pentora import DagBuilder, Orchestrator, hookimpl
from pentora.testing import NetNs, RecordCollector, network_namespace

PLUGINS = (pentora_plugins.discovery, pentora_plugins.engine)
# Drop CAP_NET_RAW for good (bounding set) while staying uid 0, so files stay readable.
UNPRIVILEGED = ("setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw", "--")

# Runs one discovery node inside a namespace; prints the result as JSON.
RUNNER = """
import json, sys
spec = json.loads(sys.argv[1])
if spec["patch"]:  # as the CLI runs: the standard library monkey-patched by gevent
    from gevent import monkey; monkey.patch_all()
import pentora_plugins.engine.modules, pentora_plugins.discovery
from pentora import DagBuilder, Orchestrator
from pentora_plugins.kit.records import Target
orch = Orchestrator(plugins=[pentora_plugins.discovery, pentora_plugins.engine], autoload=False)
dag = (DagBuilder()
       .add_node("seed", "set", config={"values": {"targets": [Target(a) for a in spec["targets"]]}})
       .add_node("discover", spec["module"], ["seed"], config=spec["config"]).build())
orch.load_dag(dag)
result = orch.execute()
node = result.nodes["discover"]
hosts = [h.to_dict() for h in result.context.get(spec["config"].get("output", "discovered_hosts"), [])]
print(json.dumps({"status": node.status, "error": node.error, "hosts": hosts}))
"""


Recorder = RecordCollector  # what the scan emits, as (kind, record) pairs


def run_discovery(module: str, config: dict[str, Any], targets: Any,
                  recorder: Recorder | None = None) -> tuple[Any, list[Host]]:
    orch = Orchestrator(plugins=(*PLUGINS, *((recorder,) if recorder else ())), autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("seed", "set", config={"values": {"targets": targets}})
                  .add_node("discover", module, ["seed"], config=config).build())
    result = orch.execute()
    return result, result.context.get(config.get("output", "discovered_hosts"), [])


def run_in_ns(ns: NetNs, module: str, config: dict[str, Any], targets: list[str],
              unprivileged: bool = False, patch: bool = False) -> dict[str, Any]:
    if unprivileged and shutil.which("setpriv") is None:
        pytest.skip("dropping CAP_NET_RAW needs setpriv (Debian's util-linux), not installed")
    spec = json.dumps({"module": module, "config": config, "targets": targets, "patch": patch})
    prefix = UNPRIVILEGED if unprivileged else ()
    proc = ns.run(*prefix, sys.executable, "-c", RUNNER, spec, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def by_address(hosts: list[Any]) -> dict[str, Any]:
    return {(h["address"] if isinstance(h, dict) else h.address): h for h in hosts}


def can_open_raw_sockets() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        return True
    except PermissionError:
        return False


def need_raw_sockets() -> None:
    if not can_open_raw_sockets():
        pytest.skip("raw sockets need root or CAP_NET_RAW; this process has neither")


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def default_ttl() -> int:
    with open("/proc/sys/net/ipv4/ip_default_ttl") as f:
        return int(f.read())


def ns_has_ipv6(ns: NetNs) -> bool:
    return "::1" in ns.run("ip", "-6", "addr", "show", "dev", "lo", check=False).stdout


# -- icmp_discovery ------------------------------------------------------------------------

def test_icmp_raw_socket_on_loopback_records_latency_and_ttl():
    need_raw_sockets()
    recorder = Recorder()
    result, hosts = run_discovery("icmp_discovery", {"mode": "raw", "timeout": "2s"},
                                  [Target("127.0.0.1")], recorder)
    assert result.nodes["discover"].status == "completed", result.nodes["discover"].error
    [host] = hosts
    assert (host.address, host.alive, host.method, host.reason) == ("127.0.0.1", True, "icmp",
                                                                    "echo-reply")
    assert host.ttl == default_ttl() == 64
    assert host.latency_ms is not None and host.latency_ms >= 0
    assert recorder.records == [("host", host)]


def test_icmpv6_echo_on_ipv6_loopback():
    need_raw_sockets()
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this host")
    result, hosts = run_discovery("icmp_discovery", {"mode": "raw"}, ["::1", "127.0.0.1"])
    assert result.ok, result.nodes["discover"].error
    assert [h.address for h in hosts] == ["127.0.0.1", "::1"]  # sorted, IPv4 first
    assert by_address(hosts)["::1"].ttl == 64  # the hop limit, from IPV6_RECVHOPLIMIT


def test_icmp_datagram_socket_where_ping_group_range_allows(netns):
    netns.run("sysctl", "-w", "net.ipv4.ping_group_range=0 2147483647")
    targets = ["127.0.0.1", "127.0.0.2"] + (["::1"] if ns_has_ipv6(netns) else [])
    out = run_in_ns(netns, "icmp_discovery", {"mode": "dgram", "timeout": "2s"}, targets)
    assert out["status"] == "completed", out["error"]
    hosts = by_address(out["hosts"])
    assert sorted(hosts) == sorted(targets)
    for host in hosts.values():
        assert host["alive"] and host["method"] == "icmp"
        assert host["ttl"] == 64  # from IP_RECVTTL / IPV6_RECVHOPLIMIT ancillary data
        assert host["latency_ms"] is not None


def test_icmp_auto_mode_falls_back_to_datagram_socket_without_cap_net_raw(netns):
    netns.run("sysctl", "-w", "net.ipv4.ping_group_range=0 2147483647")
    out = run_in_ns(netns, "icmp_discovery", {"timeout": "2s"}, ["127.0.0.1"], unprivileged=True,
                    patch=True)
    assert out["status"] == "completed", out["error"]
    assert [(h["address"], h["alive"], h["ttl"]) for h in out["hosts"]] == [("127.0.0.1", True, 64)]


def test_icmp_auto_mode_skips_icmp_without_privilege_or_ping_group_range(netns):
    # the warning line it logs is checked, as a user sees it, by tests/cli/test_unprivileged.py
    netns.run("sysctl", "-w", "net.ipv4.ping_group_range=1 0")
    out = run_in_ns(netns, "icmp_discovery", {}, ["127.0.0.1"], unprivileged=True)
    assert (out["status"], out["error"], out["hosts"]) == ("completed", None, [])


def test_icmp_says_what_is_missing_when_its_mode_is_asked_for(netns):
    netns.run("sysctl", "-w", "net.ipv4.ping_group_range=1 0")
    out = run_in_ns(netns, "icmp_discovery", {"mode": "dgram"}, ["127.0.0.1"], unprivileged=True)
    assert out["status"] == "failed"
    assert "net.ipv4.ping_group_range, which is '1 0'" in out["error"]
    assert "tcp_probe_discovery" in out["error"]

    raw_only = run_in_ns(netns, "icmp_discovery", {"mode": "raw"}, ["127.0.0.1"], unprivileged=True)
    assert raw_only["status"] == "failed"
    assert "CAP_NET_RAW" in raw_only["error"] and "ping_group_range" not in raw_only["error"]


# -- tcp_probe_discovery -------------------------------------------------------------------

def test_tcp_probe_open_port_answers_syn_ack(tcp_server):
    server = tcp_server()
    recorder = Recorder()
    result, hosts = run_discovery("tcp_probe_discovery", {"ports": [server.port]},
                                  [Target("127.0.0.1")], recorder)
    assert result.ok, result.nodes["discover"].error
    [host] = hosts
    assert (host.address, host.alive, host.method, host.reason) == ("127.0.0.1", True, "tcp_probe",
                                                                    "syn-ack")
    assert host.latency_ms is not None
    assert host.methods == ["tcp_probe"]
    assert recorder.records == [("host", host)]


def test_discovery_emit_false_publishes_without_emitting(closed_tcp_port):
    recorder = Recorder()
    result, hosts = run_discovery("tcp_probe_discovery", {"ports": [closed_tcp_port], "emit": False},
                                  [Target("127.0.0.1")], recorder)
    assert result.ok, result.nodes["discover"].error
    assert [(h.address, h.alive) for h in hosts] == [("127.0.0.1", True)]
    assert recorder.records == []  # a merger downstream emits them


def test_tcp_probe_closed_port_rst_means_up(closed_tcp_port):
    result, hosts = run_discovery("tcp_probe_discovery", {"ports": str(closed_tcp_port)},
                                  [{"address": "127.0.0.1"}])
    assert result.ok, result.nodes["discover"].error
    assert [(h.address, h.alive, h.reason) for h in hosts] == [("127.0.0.1", True, "rst")]


def test_tcp_probe_ipv6_loopback(tcp_server):
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this host")
    server = tcp_server(host="::1")
    result, hosts = run_discovery("tcp_probe_discovery", {"ports": [server.port]}, ["::1"])
    assert [(h.address, h.reason) for h in hosts] == [("::1", "syn-ack")]


def test_tcp_probe_reads_target_parser_output(closed_tcp_port):
    import pentora_plugins.targets.target_parser

    orch = Orchestrator(plugins=(*PLUGINS, pentora_plugins.targets), autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("targets", "target_parser", config={"targets": "127.0.0.1-4"})
                  .add_node("discover", "tcp_probe_discovery", ["targets"],
                            config={"ports": [closed_tcp_port]}).build())
    result = orch.execute()
    assert result.ok, result.failures()
    hosts = result.context.get("discovered_hosts")
    assert [h.address for h in hosts] == ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]


class LazyTargets:
    """A re-iterable collection of 127.0.x.y targets that records how far it was read."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.yielded = 0

    def __iter__(self) -> Iterator[Target]:
        for i in range(self.count):
            self.yielded += 1
            yield Target(f"127.0.{1 + i // 250}.{1 + i % 250}")

    def __len__(self) -> int:
        return self.count


def test_discovery_reads_targets_lazily_within_its_window(closed_tcp_port):
    targets, window = LazyTargets(600), 8
    lead: list[int] = []

    class Watcher(Recorder):
        @hookimpl
        def pentora_record(self, kind: str, record: Any) -> None:
            super().pentora_record(kind, record)
            lead.append(targets.yielded - len(self.records))

    recorder = Watcher()
    result, hosts = run_discovery("tcp_probe_discovery",
                                  {"ports": [closed_tcp_port], "concurrency": window},
                                  targets, recorder)
    assert result.ok, result.nodes["discover"].error
    assert len(hosts) == 600 and all(h.alive for h in hosts)
    assert max(lead) <= window + 1  # never more than the window read ahead of the answers


def test_cli_scan_streams_merged_discovery(tmp_path, run_cli, closed_tcp_port):
    icmp = can_open_raw_sockets()  # else ICMP needs the host's ping_group_range: not ours to set
    nodes = [
        {"instance_id": "targets", "module_type": "target_parser",
         "config": {"targets": "${targets}"}},
        {"instance_id": "tcp", "module_type": "tcp_probe_discovery", "depends_on": ["targets"],
         "config": {"ports": [closed_tcp_port], "output": "tcp_hosts"}},
    ]
    if icmp:
        nodes.append({"instance_id": "icmp", "module_type": "icmp_discovery",
                      "depends_on": ["targets"], "config": {"output": "icmp_hosts"}})
    nodes.append({"instance_id": "hosts", "module_type": "discovery_merger",
                  "depends_on": [n["instance_id"] for n in nodes[1:]],
                  "config": {"inputs": ["tcp_hosts"] + (["icmp_hosts"] if icmp else []),
                             "emit": True}})
    dag = tmp_path / "discover.yaml"
    dag.write_text(json.dumps({"name": "discover", "vars": {"targets": "127.0.0.1"}, "nodes": nodes}))
    out = tmp_path / "out.jsonl"
    proc = run_cli("scan", "--targets", "127.0.0.1,127.0.0.2", "--dag", str(dag), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    hosts = [line for line in lines if line["kind"] == "host"]
    merged = "tcp_probe+icmp" if icmp else "tcp_probe"
    assert {(h["address"], h["method"]) for h in hosts} >= {
        ("127.0.0.1", "tcp_probe"), ("127.0.0.2", "tcp_probe"), ("127.0.0.1", merged)}
    first_host = next(i for i, line in enumerate(lines) if line["kind"] == "host")
    tcp_done = next(i for i, line in enumerate(lines) if line.get("node") == "tcp")
    assert first_host < tcp_done  # streamed as found, before the node's own line


def test_discovery_profile_gives_one_host_record_per_address(tmp_path, run_cli):
    # ICMP echo and TCP probes both find each loopback address; the JSONL holds one host
    # line for each, its methods merged, valid against the records' JSON Schema.
    need_raw_sockets()
    jsonschema = pytest.importorskip("jsonschema", reason="the test extra installs jsonschema")
    out = tmp_path / "out.jsonl"
    proc = run_cli("scan", "--targets", "127.0.0.1,127.0.0.2,127.0.0.3", "--profile", "discovery-only",
                   "-o", str(out), "--no-store")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    hosts = [line for line in lines if line["kind"] == "host"]
    assert sorted(h["address"] for h in hosts) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    for host in hosts:
        assert (host["alive"], host["methods"], host["method"]) == (
            True, ["icmp", "tcp_probe"], "icmp+tcp_probe"), host
        assert host["ttl"] is not None  # ICMP's fact, kept by the merge
    schema = json.loads((Path(pentora_plugins.__file__).parent / "data"
                         / "pentora-records.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for host in hosts:
        validator.validate(host)


# -- silence: nothing answers inside a namespace -------------------------------------------

@pytest.fixture
def lab_link(netns: NetNs) -> NetNs:
    """``netns`` with 198.18.0.1/24 on a veth whose peer (same namespace) holds no address."""
    a, b = f"pa{uuid.uuid4().hex[:8]}", f"pb{uuid.uuid4().hex[:8]}"
    netns.run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    netns.run("ip", "addr", "add", "198.18.0.1/24", "dev", a)
    netns.run("ip", "link", "set", a, "up")
    netns.run("ip", "link", "set", b, "up")
    return netns


@pytest.mark.parametrize("module", ["icmp_discovery", "tcp_probe_discovery"])
def test_no_answer_means_not_alive(lab_link, module):
    if module == "icmp_discovery":
        need_raw_sockets()
    config = {"timeout": "300ms", "retry": 1, "include_down": True}
    out = run_in_ns(lab_link, module, config, ["198.18.0.99", "127.0.0.1"])
    assert out["status"] == "completed", out["error"]
    hosts = by_address(out["hosts"])
    assert hosts["198.18.0.99"]["alive"] is False
    assert hosts["198.18.0.99"]["reason"] == "no-response"
    assert hosts["127.0.0.1"]["alive"] is True

    out = run_in_ns(lab_link, module, {"timeout": "300ms"}, ["198.18.0.99"], patch=True)
    assert out["status"] == "completed", out["error"]
    assert out["hosts"] == []  # only live hosts by default


# -- arp_discovery -------------------------------------------------------------------------

@pytest.fixture
def lab_pair() -> Iterator[tuple[NetNs, NetNs, str, str]]:
    """Two namespaces joined by a veth: 198.18.0.1/24 (scanner) and 198.18.0.2/24.
    Yields (scanner ns, peer ns, scanner interface, peer MAC)."""
    with network_namespace("pentora-arp") as scanner, network_namespace("pentora-arp") as peer:
        a, b = f"pa{uuid.uuid4().hex[:8]}", f"pb{uuid.uuid4().hex[:8]}"
        add = ["ip", "link", "add", a, "netns", scanner.name, "type", "veth", "peer", "name", b,
               "netns", peer.name]
        import subprocess

        subprocess.run(add, check=True, capture_output=True)
        scanner.run("ip", "addr", "add", "198.18.0.1/24", "dev", a)
        peer.run("ip", "addr", "add", "198.18.0.2/24", "dev", b)
        scanner.run("ip", "link", "set", a, "up")
        peer.run("ip", "link", "set", b, "up")
        mac = json.loads(peer.run("ip", "-j", "link", "show", b).stdout)[0]["address"]
        yield scanner, peer, a, mac


def test_arp_finds_the_neighbour_and_its_mac(lab_pair):
    need_raw_sockets()
    scanner, _, iface, mac = lab_pair
    out = run_in_ns(scanner, "arp_discovery", {"timeout": "500ms", "include_down": True},
                    ["198.18.0.2", "198.18.0.99", "127.0.0.1", "::1"])
    assert out["status"] == "completed", out["error"]
    hosts = by_address(out["hosts"])
    assert set(hosts) == {"198.18.0.2", "198.18.0.99"}  # loopback and IPv6 are not ARP's
    peer = hosts["198.18.0.2"]
    assert (peer["alive"], peer["method"], peer["mac"], peer["reason"]) == (True, "arp", mac,
                                                                            "arp-response")
    assert peer["latency_ms"] is not None
    assert hosts["198.18.0.99"]["alive"] is False

    named = run_in_ns(scanner, "arp_discovery", {"interface": iface, "timeout": "500ms"},
                      ["198.18.0.2"], patch=True)
    assert [h["mac"] for h in named["hosts"]] == [mac]


def test_arp_unknown_interface_is_named(lab_pair):
    need_raw_sockets()
    scanner, *_ = lab_pair
    out = run_in_ns(scanner, "arp_discovery", {"interface": "nosuch0"}, ["198.18.0.2"])
    assert out["status"] == "failed" and "no interface 'nosuch0'" in out["error"]


# -- discovery_merger ----------------------------------------------------------------------

ICMP_HOSTS = [
    Host("10.0.0.1", alive=True, method="icmp", latency_ms=2.5, ttl=64, reason="echo-reply"),
    Host("10.0.0.2", alive=False, method="icmp", reason="no-response"),
    Host("10.0.0.3", alive=False, method="icmp", reason="no-response"),
]
ARP_HOSTS = [
    {"address": "10.0.0.1", "alive": True, "method": "arp", "latency_ms": 0.4,
     "mac": "02:00:00:00:00:01", "reason": "arp-response"},
    Host("10.0.0.2", hostname="b.lab", alive=True, method="arp", latency_ms=0.7,
         mac="02:00:00:00:00:02"),
    Host("10.0.0.3", alive=False, method="arp", reason="no-response"),
]


def test_merge_hosts_per_address():
    merged = by_address(merge_hosts([ICMP_HOSTS, ARP_HOSTS]))
    one = merged["10.0.0.1"]
    assert (one.alive, one.method, one.latency_ms, one.ttl, one.mac) == (
        True, "icmp+arp", 0.4, 64, "02:00:00:00:00:01")
    assert one.reason == "echo-reply+arp-response"
    assert one.methods == ["icmp", "arp"]
    two = merged["10.0.0.2"]  # alive if any says alive; methods of the answers only
    assert (two.alive, two.method, two.hostname, two.mac, two.latency_ms) == (
        True, "arp", "b.lab", "02:00:00:00:00:02", 0.7)
    three = merged["10.0.0.3"]
    assert (three.alive, three.method, three.latency_ms) == (False, "icmp+arp", None)
    assert two.methods == ["arp"]


def test_merge_hosts_flattens_already_merged_methods():
    merged = merge_hosts([[Host("10.0.0.1", method="icmp+arp")], [Host("10.0.0.1", method="arp")],
                          ["10.0.0.1"]])
    assert [(h.address, h.method, h.methods) for h in merged] == [
        ("10.0.0.1", "icmp+arp", ["icmp", "arp"])]


def test_merge_hosts_reads_methods_of_records_read_back():
    merged = merge_hosts([[{"address": "10.0.0.1", "methods": ["icmp", "arp"]}],
                          [{"address": "10.0.0.1", "method": "tcp_probe"}]])
    assert [(h.method, h.methods) for h in merged] == [("icmp+arp+tcp_probe",
                                                         ["icmp", "arp", "tcp_probe"])]


def merger_dag(config: dict[str, Any]) -> Any:
    return (DagBuilder()
            .add_node("icmp", "set", config={"values": {"icmp_hosts": ICMP_HOSTS}})
            .add_node("arp", "set", config={"values": {"arp_hosts": ARP_HOSTS}})
            .add_node("merge", "discovery_merger", ["icmp", "arp"], config=config).build())


def test_merger_node_writes_discovered_hosts():
    recorder = Recorder()
    orch = Orchestrator(plugins=(*PLUGINS, recorder), autoload=False)
    orch.load_dag(merger_dag({"inputs": ["icmp_hosts", "arp_hosts"]}))
    result = orch.execute()
    assert result.ok, result.failures()
    hosts = result.context.get("discovered_hosts")
    assert [(h.address, h.method) for h in hosts] == [("10.0.0.1", "icmp+arp"), ("10.0.0.2", "arp")]
    assert recorder.records == []  # inputs already emitted their hosts

    orch = Orchestrator(plugins=(*PLUGINS, recorder), autoload=False)
    orch.load_dag(merger_dag({"inputs": ["icmp_hosts", "arp_hosts"], "include_down": True,
                              "output": "all_hosts", "emit": True}))
    result = orch.execute()
    assert [h.alive for h in result.context.get("all_hosts")] == [True, True, False]
    assert [r.address for _, r in recorder.records] == ["10.0.0.1", "10.0.0.2"]


def test_merger_contract_requires_its_inputs():
    orch = Orchestrator(plugins=PLUGINS, autoload=False)
    orch.load_dag(merger_dag({"inputs": ["icmp_hosts", "syn_hosts"]}))
    with pytest.raises(pentora.ValidationError) as e:
        orch.validate()
    assert "requires 'syn_hosts' but no upstream node produces it" in str(e.value)


def test_discovery_output_option_feeds_a_merger(closed_tcp_port):
    orch = Orchestrator(plugins=PLUGINS, autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("seed", "set", config={"values": {
                      "targets": [Target("127.0.0.1")],
                      "arp_hosts": [Host("127.0.0.1", method="arp", mac="02:00:00:00:00:09")]}})
                  .add_node("tcp", "tcp_probe_discovery", ["seed"],
                            config={"ports": [closed_tcp_port], "output": "tcp_hosts"})
                  .add_node("merge", "discovery_merger", ["tcp"],
                            config={"inputs": ["tcp_hosts", "arp_hosts"]}).build())
    validated = orch.validate()
    assert validated.produces["tcp"] == ("tcp_hosts",)
    assert validated.requires["merge"] == ("tcp_hosts", "arp_hosts")
    result = orch.execute()
    assert result.ok, result.failures()
    [host] = result.context.get("discovered_hosts")
    assert (host.method, host.mac, host.reason) == ("tcp_probe+arp", "02:00:00:00:00:09", "rst")



def test_discovery_nodes_at_the_default_output_add_to_it_and_a_merger_needs_no_inputs(closed_tcp_port):
    """Two methods left at the default output (as ICMP and ARP side by side in a sub-DAG):
    the second adds its hosts to the first's, per address, and a merger without inputs
    reads the one key."""
    orch = Orchestrator(plugins=PLUGINS, autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("seed", "set", config={"values": {
                      "targets": [Target("127.0.0.1")],
                      "discovered_hosts": [Host("127.0.0.1", method="arp", mac="02:00:00:00:00:09"),
                                           Host("127.0.0.9", method="arp", mac="02:00:00:00:00:0a")]}})
                  .add_node("tcp", "tcp_probe_discovery", ["seed"], config={"ports": [closed_tcp_port]})
                  .add_node("merge", "discovery_merger", ["tcp"]).build())
    assert orch.validate().requires["merge"] == ("discovered_hosts",)
    result = orch.execute()
    assert result.ok, result.failures()
    hosts = by_address(result.context.get("discovered_hosts"))
    assert (hosts["127.0.0.1"].method, hosts["127.0.0.1"].mac) == ("arp+tcp_probe", "02:00:00:00:00:09")
    assert hosts["127.0.0.9"].method == "arp"  # kept, though the TCP probes never asked it


# -- configuration -------------------------------------------------------------------------

@pytest.mark.parametrize("module, config, message", [
    ("icmp_discovery", {"mode": "stealth"}, "mode"),
    ("icmp_discovery", {"retry": -1}, "retry"),
    ("tcp_probe_discovery", {"ports": "T:22,80,U:53"}, None),
    ("tcp_probe_discovery", {"ports": "80-"}, "use connect_scanner"),
    ("tcp_probe_discovery", {"ports": "U:53"}, "expected 1 to 256 ports"),
    ("tcp_probe_discovery", {"ports": "http"}, "ports"),
    ("arp_discovery", {"timeout": "soon"}, "timeout"),
    ("icmp_discovery", {"output": ""}, "output"),
])
def test_config_is_validated(module, config, message):
    orch = Orchestrator(plugins=PLUGINS, autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("seed", "set", config={"values": {"targets": []}})
                  .add_node("discover", module, ["seed"], config=config).build())
    if message is None:
        orch.validate()
        return
    with pytest.raises(pentora.ValidationError) as e:
        orch.validate()
    assert message in str(e.value)


def test_modules_are_registered_with_described_options():
    types = Orchestrator(plugins=PLUGINS, autoload=False).registry.modules
    for name in ("icmp_discovery", "tcp_probe_discovery", "arp_discovery", "discovery_merger"):
        schema = types[name].cls.config_schema
        for key in schema:
            assert getattr(key, "description", None), f"{name}.{key} has no description"


# -- the sweep scheduler -------------------------------------------------------------------

class FakeTransport:
    """Answers the hosts in ``live`` shortly after each send; the rest stay silent."""

    method = "fake"

    def __init__(self, live: set[str], fail: dict[str, Exception] | None = None) -> None:
        self.live = live
        self.fail = fail or {}
        self.sends: list[tuple[str, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.discarded: list[str] = []

    def skip_reason(self, address: str, family: int) -> str | None:
        return None

    def send(self, probe: Probe, sweep: Sweep) -> None:
        if probe.address in self.fail:
            raise self.fail[probe.address]
        self.sends.append((probe.address, probe.attempt))
        if probe.attempt == 1:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if probe.address in self.live:
            gevent.spawn_later(0.001, sweep.answer, probe, Answer("yes", 1.0, ttl=7))

    def discard(self, probe: Probe) -> None:
        self.in_flight -= 1
        self.discarded.append(probe.address)

    def close(self) -> None:
        self.closed = True


def sweep_results(transport: FakeTransport, addresses: list[str], **kw: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def on_result(probe: Probe, answer: Answer | None, reason: str) -> None:
        assert probe.address not in results, "one outcome per host"
        results[probe.address] = (answer is not None, reason, probe.attempt)

    options = {"timeout": 0.02, "retry": 2, "window": 4, "rate": 0, **kw}
    Sweep(transport, on_result=on_result, **options).run(Probe(a, None, 4) for a in addresses)
    return results


def test_sweep_retries_silent_hosts_then_gives_up():
    transport = FakeTransport(live={"10.0.0.1"})
    results = sweep_results(transport, ["10.0.0.1", "10.0.0.2"], retry=2)
    assert results == {"10.0.0.1": (True, "yes", 1), "10.0.0.2": (False, "no-response", 3)}
    assert [a for a, _ in transport.sends].count("10.0.0.2") == 3  # 1 + retry
    assert sorted(transport.discarded) == ["10.0.0.1", "10.0.0.2"]


@pytest.mark.parametrize("rate", [0, 1000])
def test_sweep_keeps_at_most_window_hosts_in_flight(rate):
    transport = FakeTransport(live=set())
    addresses = [f"10.0.0.{i}" for i in range(1, 30)]
    results = sweep_results(transport, addresses, window=5, retry=0, rate=rate)
    assert len(results) == 29 and transport.most_in_flight == 5


def test_sweep_send_errors_end_that_host_only():
    import errno

    transport = FakeTransport(live={"10.0.0.2"},
                              fail={"10.0.0.1": OSError(errno.ENETUNREACH, "unreachable")})
    results = sweep_results(transport, ["10.0.0.1", "10.0.0.2"])
    assert results == {"10.0.0.1": (False, "enetunreach", 1), "10.0.0.2": (True, "yes", 1)}


def test_sweep_defers_attempts_the_kernel_could_not_send():
    import errno

    class Busy(FakeTransport):
        refusals = 2

        def send(self, probe: Probe, sweep: Sweep) -> None:
            if self.refusals:
                self.refusals -= 1
                raise OSError(errno.ENOBUFS, "no buffer space")
            super().send(probe, sweep)

    transport = Busy(live={"10.0.0.1"})
    results = sweep_results(transport, ["10.0.0.1"], retry=0)
    assert results == {"10.0.0.1": (True, "yes", 1)}  # the refused attempts did not count

    transport = Busy(live=set())
    transport.refusals = 100
    assert sweep_results(transport, ["10.0.0.1"], retry=0) == {"10.0.0.1": (False, "enobufs", 1)}


def test_killing_a_sweep_stops_its_greenlets_and_closes_the_transport():
    transport = FakeTransport(live=set())
    sweep = Sweep(transport, timeout=60, retry=0, window=2, rate=0, on_result=lambda *a: None)
    runner = gevent.spawn(sweep.run, (Probe(f"10.0.0.{i}", None, 4) for i in range(1, 9)))
    gevent.sleep(0.01)
    assert len(transport.sends) == 2  # the window is full; nothing answers for a minute
    runner.kill()  # as a node timeout or a cancelled scan does
    assert transport.closed
    assert all(g.dead for g in sweep._greenlets)


def test_sweep_raises_what_a_transport_raised():
    transport = FakeTransport(live=set())
    transport.fail["10.0.0.1"] = pentora.ModuleError("no privilege")  # type: ignore[assignment]
    with pytest.raises(pentora.ModuleError, match="no privilege"):
        sweep_results(transport, ["10.0.0.1"])


class _Boom(pentora.Module):
    module_type = "boom"
    produces = ("icmp_hosts",)

    def run(self, ctx: Any, config: dict[str, Any]) -> None:
        raise OSError("no route")


class _BoomPlugin:
    @hookimpl
    def pentora_register_modules(self, registry: Any) -> None:
        registry.register(_Boom)


@pytest.mark.parametrize(("icmp_node", "level"), [
    ({"instance_id": "icmp", "module_type": "set", "condition": "false",
      "config": {"values": {"icmp_hosts": []}}}, "INFO"),
    ({"instance_id": "icmp", "module_type": "boom"}, "WARNING"),
])
def test_merger_warns_of_a_missing_input_only_when_its_node_failed(icmp_node, level, log_messages):
    probe = {"instance_id": "probe", "module_type": "set",
             "config": {"values": {"probe_hosts": [Host("127.0.0.1", method="tcp")]}}}
    merge = {"instance_id": "merge", "module_type": "discovery_merger", "depends_on": ["icmp", "probe"],
             "trigger_rule": "all_done", "config": {"inputs": ["icmp_hosts", "probe_hosts"]}}

    orch = Orchestrator(plugins=[pentora_plugins.engine, pentora_plugins.discovery,
                                 _BoomPlugin()],
                        autoload=False)
    orch.load_dag({"name": "m", "engine": {"fail_fast": False}, "nodes": [icmp_node, probe, merge]})
    result = orch.execute()
    assert [h.address for h in result.context.get("discovered_hosts")] == ["127.0.0.1"]
    [line] = [m for m in log_messages if "'icmp_hosts' is missing" in m]
    assert line.startswith(level)
