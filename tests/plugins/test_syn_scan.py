"""syn_scanner: packet templates against scapy, reply matching, and real scans on
loopback (root) and inside test network namespaces (full range, filtered port,
fallback to a connect scan after dropping privileges)."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import gevent
import pentora_plugins.engine.modules
import pentora_plugins.portscan.connect_scanner
import pentora_plugins.portscan.syn_scanner
import pytest
from pentora_plugins.kit.net.rawsend import EXIT_SWITCHED, SendPass, open_send_socket
from pentora_plugins.kit.net.rawtcp import SeqHasher, SynTemplate, checksum, reply_filter
from pentora_plugins.kit.records import Port
from pentora_plugins.portscan._synmatch import CLOSED, OPEN, ReplyMatcher
from pentora_plugins.portscan.syn_scanner import open_receive_socket
from scapy.layers.inet import IP, TCP
from scapy.utils import checksum as scapy_checksum

import pentora
from pentora import DagBuilder, Orchestrator
from pentora.testing import RecordCollector

RUNNER = str(Path(__file__).with_name("_netns_scan.py"))
LISTEN = str(Path(__file__).with_name("_listen.py"))


def raw_sockets_unavailable() -> str | None:
    try:
        open_receive_socket().close()
    except PermissionError as e:
        return f"raw sockets need root or CAP_NET_RAW ({e})"
    return None


needs_raw = pytest.mark.skipif(raw_sockets_unavailable() is not None,
                               reason=str(raw_sockets_unavailable()))


Emitted = RecordCollector  # what the scan emits, as (kind, record) pairs


def run_scan(config: dict[str, Any], targets: list[str], module_type: str = "syn_scanner"
             ) -> tuple[pentora.ScanResult, Emitted]:
    emitted = Emitted()
    orch = Orchestrator(plugins=[pentora_plugins.portscan, pentora_plugins.engine, emitted],
                        autoload=False)
    orch.load_dag(DagBuilder("syn")
                  .add_node("targets", "set", config={"values": {"targets": targets}})
                  .add_node("scan", module_type, ["targets"], {**config, "input": "targets"})
                  .build())
    result = orch.execute()
    assert result.nodes["scan"].status == "completed", result.nodes["scan"].stack_trace
    return result, emitted


def scan_in_ns(ns: Any, spec: dict[str, Any]) -> tuple[dict[str, Any], str]:
    spec = {"plugin": "pentora_plugins.portscan", "module_type": "syn_scanner", **spec}
    proc = ns.python(RUNNER, json.dumps(spec), check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed", (out, proc.stderr[-3000:])
    return out, proc.stderr


def ports_of(records: list[dict[str, Any]]) -> set[int]:
    return {r["port"] for r in records}


# -- packets -------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst", "sport", "dport", "seq"), [
    ("127.0.0.1", "127.0.0.1", 61000, 80, 0xDEADBEEF),
    ("127.0.0.1", "127.1.2.3", 64999, 65535, 0xFFFFFFFF),
    ("198.18.0.1", "198.18.0.2", 61001, 1, 0),
    ("198.19.255.254", "198.18.0.255", 62000, 443, 0x00010001),
])
def test_template_equals_the_packet_scapy_builds(src: str, dst: str, sport: int, dport: int,
                                                 seq: int) -> None:
    template = SynTemplate(src, ip_id=4321, ttl=64, window=1024, mss=1460)
    expected = bytes(IP(src=src, dst=dst, id=4321, ttl=64)
                     / TCP(sport=sport, dport=dport, seq=seq, flags="S", window=1024,
                           options=[("MSS", 1460)]))
    assert template.build(dst, sport, dport, seq) == expected


def test_template_patching_reuses_one_buffer_per_host() -> None:
    template = SynTemplate("127.0.0.1", ip_id=7)
    buf, tcp_sum = template.for_destination(bytes([127, 0, 0, 1]))
    rng = random.Random(4)
    for _ in range(200):
        sport, dport, seq = rng.randrange(61000, 65000), rng.randrange(1, 65536), rng.getrandbits(32)
        SynTemplate.fill(buf, tcp_sum, sport, dport, seq)
        assert bytes(buf) == template.build("127.0.0.1", sport, dport, seq)
        packet = IP(bytes(buf))
        assert (packet[TCP].sport, packet[TCP].dport, packet[TCP].seq) == (sport, dport, seq)
        del packet.chksum, packet[TCP].chksum  # scapy recomputes both
        assert bytes(packet) == bytes(buf)


@pytest.mark.parametrize("size", [0, 1, 2, 19, 20, 44, 1499])
def test_checksum_agrees_with_scapy(size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert checksum(data) == scapy_checksum(data)


def test_bpf_program_is_eight_instructions() -> None:
    assert len(reply_filter(61000, 61001)) == 8 * 8


# -- reply matching ------------------------------------------------------------------


def reply(hasher: SeqHasher, flags: str, *, port: int = 8080, our_port: int = 61000,
          ack_delta: int = 1, ours: str = "127.0.0.1", theirs: str = "127.0.0.1") -> bytes:
    seq = hasher.seq(bytes(map(int, ours.split("."))), bytes(map(int, theirs.split("."))), port,
                     our_port)
    return bytes(IP(src=theirs, dst=ours)
                 / TCP(sport=port, dport=our_port, flags=flags, seq=99,
                       ack=(seq + ack_delta) & 0xFFFFFFFF))


def match(matcher: ReplyMatcher, packet: bytes) -> tuple[bytes, int, int] | None:
    """The one reply ``matcher`` finds in a batch of ``packet`` alone, or None."""
    hits = list(matcher.matches([packet]))
    assert len(hits) <= 1
    return (hits[0][0].to_bytes(4, "big"), *hits[0][1:]) if hits else None


def test_reply_matching_by_keyed_hash() -> None:
    hasher = SeqHasher(b"k" * 16)
    matcher = ReplyMatcher(hasher, 61000, 61001)
    assert match(matcher, reply(hasher, "SA")) == (bytes([127, 0, 0, 1]), 8080, OPEN)
    assert match(matcher, reply(hasher, "RA", our_port=61001)) == (bytes([127, 0, 0, 1]), 8080, CLOSED)
    # the same reply with a wrong ack is somebody else's (or forged): rejected
    assert match(matcher, reply(hasher, "SA", ack_delta=2)) is None
    assert match(matcher, reply(hasher, "RA", ack_delta=0)) is None
    # a reply computed under another scan's key
    assert match(matcher, reply(SeqHasher(b"x" * 16), "SA")) is None
    # the hash covers the address pair and the ports
    assert match(matcher, reply(hasher, "SA", theirs="127.0.0.2")) == (bytes([127, 0, 0, 2]), 8080, OPEN)
    forged = bytearray(reply(hasher, "SA"))
    forged[12:16] = bytes([127, 0, 0, 9])  # same ack, other source address
    assert match(matcher, bytes(forged)) is None


def test_a_batch_keeps_only_its_replies() -> None:
    """Replies of one address pair come in runs; a forged one inside a run, or one from
    another pair right after it, is still checked against its own hash."""
    hasher = SeqHasher(b"k" * 16)
    matcher = ReplyMatcher(hasher, 61000, 61001)
    forged = bytearray(reply(hasher, "SA"))
    forged[12:16] = bytes([127, 0, 0, 9])
    batch = [reply(hasher, "SA"), reply(hasher, "RA", ack_delta=0), reply(hasher, "RA", our_port=61001),
             bytes(forged), reply(hasher, "SA", theirs="127.0.0.2"), b"\x45" + bytes(10),
             reply(SeqHasher(b"x" * 16), "SA"), reply(hasher, "SA")]
    assert list(matcher.matches(batch)) == [(0x7F000001, 8080, OPEN), (0x7F000001, 8080, CLOSED),
                                            (0x7F000002, 8080, OPEN), (0x7F000001, 8080, OPEN)]


def test_own_probes_and_kernel_resets_are_not_replies() -> None:
    hasher = SeqHasher()
    matcher = ReplyMatcher(hasher, 61000, 61001)
    own_syn = SynTemplate("127.0.0.1").build("127.0.0.1", 61000, 8080,
                                             hasher.seq(b"\x7f\0\0\1", b"\x7f\0\0\1", 8080, 61000))
    assert match(matcher, own_syn) is None
    assert match(matcher, reply(hasher, "R")) is None          # RST without ACK
    assert match(matcher, reply(hasher, "SA", our_port=62000)) is None  # not our source port
    assert match(matcher, reply(hasher, "A")) is None          # a plain ACK
    assert match(matcher, b"\x45" + bytes(10)) is None         # truncated


def test_seq_is_keyed() -> None:
    a, b = SeqHasher(b"a" * 16), SeqHasher(b"b" * 16)
    args = (b"\x7f\0\0\1", b"\x7f\0\0\1", 80, 61000)
    assert a.seq(*args) == SeqHasher(b"a" * 16).seq(*args)
    assert a.seq(*args) != b.seq(*args)
    assert a.seq(*args) != a.seq(b"\x7f\0\0\1", b"\x7f\0\0\1", 81, 61000)


# -- config --------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value"), [("rate", -1), ("retries", 11), ("source_port", 80),
                                            ("timeout", "soon"), ("ports", "1-99999")])
def test_bad_config_is_rejected_naming_the_key(key: str, value: Any) -> None:
    orch = Orchestrator(plugins=[pentora_plugins.portscan, pentora_plugins.engine],
                        autoload=False)
    orch.load_dag(DagBuilder().add_node("t", "set", config={"values": {"targets": ["127.0.0.1"]}})
                  .add_node("scan", "syn_scanner", ["t"], {key: value, "input": "targets"}).build())
    with pytest.raises(pentora.ValidationError, match=f"config.{key}"):
        orch.validate()


# -- scans ---------------------------------------------------------------------------


def test_port_scanner_is_the_syn_scanner_under_a_generic_name(tcp_server: Any, closed_tcp_port: int) -> None:
    server = tcp_server()
    result, _ = run_scan({"ports": f"{server.port},{closed_tcp_port}", "timeout": "500ms"},
                         ["127.0.0.1"], module_type="port_scanner")
    # SYN with raw sockets, else the connect scan it falls back to
    method = "syn" if raw_sockets_unavailable() is None else "connect"
    assert [(p.port, p.state, p.method) for p in result.context.get("open_ports")] == [
        (server.port, "open", method)]
    assert result.nodes["scan"].module_type == "port_scanner"


@needs_raw
def test_loopback_finds_open_ports_and_not_closed_ones(tcp_server: Any, closed_tcp_port: int) -> None:
    servers = [tcp_server(banner=b"hi\r\n"), tcp_server()]
    ports = sorted([s.port for s in servers] + [closed_tcp_port])
    result, emitted = run_scan({"ports": ",".join(map(str, ports)), "timeout": "500ms"},
                               ["127.0.0.1"])
    opened = result.context.get("open_ports")
    assert [(p.host, p.port, p.state, p.method) for p in opened] == sorted(
        ("127.0.0.1", s.port, "open", "syn") for s in servers)
    assert [r for _, r in emitted.records] and {r.port for k, r in emitted.records if k == "port"} == {
        s.port for s in servers}
    assert closed_tcp_port not in {p.port for p in result.context.get("port_states")}


def test_full_range_in_a_namespace_finds_exactly_the_listeners(netns: Any) -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    listening = [1, 22, 80, 443, 8080, 31337, 40000, 61000, 65535]
    out, _ = scan_in_ns(netns, {"tcp": listening, "config": {"ports": "-", "rate": 0}})
    assert ports_of(out["open_ports"]) == set(listening)
    assert {r["method"] for r in out["open_ports"]} == {"syn"}
    assert out["port_states"] == []


def firewall_drop(ns: Any, port: int) -> None:
    if shutil.which("iptables"):
        ns.run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP")
    elif shutil.which("nft"):
        ns.run("nft", "add table inet pentora_test")
        ns.run("nft", "add chain inet pentora_test input { type filter hook input priority 0 ; }")
        ns.run("nft", f"add rule inet pentora_test input tcp dport {port} drop")
    else:
        pytest.skip("neither iptables nor nft is installed (apt-get install iptables) to make a "
                    "filtered port")


@pytest.mark.parametrize("record_filtered", [True, False])
def test_port_behind_a_drop_rule_is_filtered(netns: Any, record_filtered: bool) -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    firewall_drop(netns, 2222)
    out, stderr = scan_in_ns(netns, {"tcp": [22, 2222], "config": {
        "ports": "21-23,2222", "timeout": "300ms", "retries": 1, "record_filtered": record_filtered}})
    assert ports_of(out["open_ports"]) == {22}
    expected = [(2222, "filtered", "no-response")] if record_filtered else []
    assert [(r["port"], r["state"], r["reason"]) for r in out["port_states"]] == expected
    assert "1 open, 2 closed, 1 filtered" in stderr


def test_refused_sends_are_counted_warned_once_and_the_ports_filtered(netns: Any) -> None:
    """An OUTPUT rule makes the kernel refuse some probes (EPERM from sendmmsg): the
    sender process skips each refused packet, the rest of its batch still goes out."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    if not shutil.which("iptables"):
        pytest.skip("iptables is not installed (apt-get install iptables) to refuse probes")
    netns.run("iptables", "-A", "OUTPUT", "-p", "tcp", "--dport", "3000:3009", "--tcp-flags", "SYN,ACK",
              "SYN", "-j", "REJECT")
    out, stderr = scan_in_ns(netns, {"tcp": [22, 3005, 4000], "config": {
        "ports": "1-5000", "timeout": "300ms", "retries": 1}})
    assert ports_of(out["open_ports"]) == {22, 4000}
    assert [r["port"] for r in out["port_states"]] == list(range(3000, 3010))
    assert stderr.count("sending to 127.0.0.1 failed") == 1
    assert "Operation not permitted" in stderr


def test_rate_is_honoured_within_ten_percent(netns: Any) -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    _, stderr = scan_in_ns(netns, {"tcp": [22], "config": {"ports": "1-3000", "rate": 2000}})
    [pps] = re.findall(r"3000 probes \(([\d,]+)/s while sending\)", stderr)
    assert 0.9 * 2000 <= int(pps.replace(",", "")) <= 1.1 * 2000


def test_many_hosts_are_split_between_sender_processes(netns: Any) -> None:
    """Hosts, not ports, are divided when there are enough of them: every (host, port)
    is probed once per try, whichever process sends it."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    hosts = [f"127.0.0.{i}" for i in range(1, 41)]
    out, stderr = scan_in_ns(netns, {"tcp": [22, 80], "targets": hosts,
                                     "config": {"ports": "22,80,443", "timeout": "300ms"}})
    # listeners bind 127.0.0.1 only: the other 39 addresses answer with RSTs
    assert {(r["host"], r["port"]) for r in out["open_ports"]} == {("127.0.0.1", 22), ("127.0.0.1", 80)}
    assert "120 probes" in stderr and "2 open, 118 closed, 0 filtered" in stderr


def test_without_privilege_it_falls_back_to_a_connect_scan(netns: Any) -> None:
    out, stderr = scan_in_ns(netns, {"tcp": [22, 8080], "drop_privileges": True,
                                     "config": {"ports": "1-9000", "timeout": "300ms"}})
    assert out["euid"] == 65534
    assert "raw sockets need root or CAP_NET_RAW" in stderr and "falling back" in stderr
    assert ports_of(out["open_ports"]) == {22, 8080}
    assert {r["method"] for r in out["open_ports"]} == {"connect"}


def test_unprivileged_process_falls_back_in_process(tcp_server: Any, log_messages: list[str]) -> None:
    if raw_sockets_unavailable() is None:
        pytest.skip("this process may open raw sockets; the namespace test drops privileges instead")
    server = tcp_server()
    result, _ = run_scan({"ports": str(server.port), "timeout": "500ms"}, ["127.0.0.1"])
    assert [(p.port, p.method) for p in result.context.get("open_ports")] == [(server.port, "connect")]
    assert any("raw sockets need root or CAP_NET_RAW" in line for line in log_messages)




# -- sender processes never run the parent's greenlets --------------------------------


@needs_raw
def test_a_sender_process_that_switches_greenlets_dies_before_they_run(tmp_path: Path) -> None:
    """A sender process is a fork of a process whose hub holds the scan's greenlets: a
    job that yields (as a monkey-patched ``time.sleep`` would) must end the child there,
    not run the parent's greenlets in the copy."""
    trail = tmp_path / "trail"

    def parent_greenlet() -> None:
        gevent.sleep(0.05)  # not yet due when the child yields: it is the child's to run
        with trail.open("a") as f:
            f.write(f"{os.getpid()}\n")

    def job(out: Any, pace: Any, result: Any) -> None:
        gevent.sleep(0.2)

    waiting = gevent.spawn(parent_greenlet)
    gevent.sleep(0)
    with open_send_socket() as sock:
        send = SendPass([job], 0, SynTemplate.LENGTH, sock)
        send.start()
        try:
            while send.alive():
                gevent.sleep(0.01)
        finally:
            send.close()
    waiting.join(timeout=10)
    assert trail.read_text().split() == [str(os.getpid())]  # written once, by this process
    [(where, error)] = send.errors()
    assert where == "-" and f"exited with {EXIT_SWITCHED}" in str(error)
    assert "switch greenlets" in str(error)


RATE_RUNS = 20
OPEN_PORTS = [22, 2222, 8080]


def test_rate_limited_cli_scans_report_each_open_port_exactly_once(netns: Any, tmp_path: Path) -> None:
    """The CLI (monkey-patched, as users run it) at 10, 100 and 1000 probes a second: a
    sender process sleeping between batches used to switch to its copy of the hub, run
    the parent's receiver greenlet on the shared raw socket and steal replies, so the
    summary said "no open ports found" while the JSONL listed ports twice."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    listener = netns.popen(sys.executable, LISTEN, "--open",
                           *[f"127.0.0.1:{p}" for p in OPEN_PORTS],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        ports = ",".join(map(str, [*OPEN_PORTS, 9, 9999]))
        for run in range(RATE_RUNS):
            rate = (10, 100, 1000)[run % 3]
            jsonl = tmp_path / f"run{run}.jsonl"
            scan = netns.run(sys.executable, "-m", "pentora", "scan", "-t", "127.0.0.1", "-p", ports,
                             "--profile", "port-scan", "--set", f"rate={rate}", "--no-store",
                             "-o", str(jsonl), check=False, timeout=120)
            where = f"run {run} at rate {rate}: {scan.stdout}{scan.stderr[-3000:]}"
            assert scan.returncode == 0, where
            assert "Traceback" not in scan.stderr, where
            records = [json.loads(line) for line in jsonl.read_text().splitlines()]
            listed = sorted(r["port"] for r in records if r["kind"] == "port")
            assert listed == OPEN_PORTS, where
            summary = sorted(int(p) for p in re.findall(r"^127\.0\.0\.1\s+(\d+)/tcp\s+open",
                                                        scan.stdout, re.M))
            assert summary == OPEN_PORTS, where
            assert "no open ports found" not in scan.stdout, where
    finally:
        listener.stdin.close()  # type: ignore[union-attr]
        listener.wait(timeout=10)


class _Resume:
    """Says 127.0.0.2 was finished by a killed run (with one open port), and records the
    checkpoints this run announces."""

    def __init__(self) -> None:
        self.checkpoints: list[tuple[str, list[int]]] = []

    @pentora.hookimpl
    def pentora_node_restore(self, node: Any) -> Any:
        if node.instance_id != "scan":
            return None
        restored = Port(host="127.0.0.2", port=4444, method="syn", reason="syn-ack")
        return pentora.NodeRestore(completed=False, items={"127.0.0.2": [restored]})

    @pentora.hookimpl
    def pentora_node_checkpoint(self, node: Any, item: str | None, records: list[Any]) -> None:
        if item is not None:
            self.checkpoints.append((item, [r.port for r in records]))


@needs_raw
def test_resumed_scan_skips_finished_hosts_and_checkpoints_each_new_one(tcp_server: Any,
                                                                       log_messages: list[str]) -> None:
    server = tcp_server()
    resume = _Resume()
    orch = Orchestrator(plugins=[pentora_plugins.portscan, pentora_plugins.engine,
                                 resume],
                        autoload=False)
    orch.load_dag(DagBuilder("syn")
                  .add_node("targets", "set", config={"values": {"targets": ["127.0.0.1", "127.0.0.2"]}})
                  .add_node("scan", "syn_scanner", ["targets"],
                            {"ports": str(server.port), "input": "targets", "timeout": "300ms"})
                  .build())
    result = orch.execute(options={"resume": True})
    assert [(p.host, p.port) for p in result.context.get("open_ports")] == [
        ("127.0.0.1", server.port), ("127.0.0.2", 4444)]
    assert resume.checkpoints == [("127.0.0.1", [server.port])]
    assert any("syn_scanner: 1 probes" in line for line in log_messages)  # 127.0.0.2 not probed


def test_module_is_registered_by_its_entry_point() -> None:
    assert Orchestrator().registry.get("syn_scanner").cls is pentora_plugins.portscan.syn_scanner.SynScanner


@needs_raw
@pytest.mark.parametrize("targets", [["127.0.0.1", "127.0.0.1"], ["127.0.0.1", "127.0.0.2", "127.0.0.1"]])
def test_a_target_given_twice_is_scanned_once(tcp_server: Any, closed_tcp_port: int,
                                              targets: list[str], log_messages: list[str]) -> None:
    """Both copies in one chunk: the replies settle one, and the other's probes must not
    stay unanswered, to be called filtered."""
    server = tcp_server()
    result, _ = run_scan({"ports": f"{server.port},{closed_tcp_port}", "timeout": "300ms", "retries": 0},
                         targets)
    assert result.context.get("port_states") == []
    assert [(p.host, p.port) for p in result.context.get("open_ports")] == [("127.0.0.1", server.port)]
    hosts = len(set(targets))
    assert any(f"{2 * hosts} probes" in line and "0 filtered" in line for line in log_messages), log_messages


def test_a_target_given_again_in_a_later_chunk_is_listed_once(netns: Any) -> None:
    """One host a chunk: the copy of 127.0.0.1 in the third chunk is probed again, and its
    open and filtered ports (a firewall drops the probes to 3000) are listed once."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    netns.run("iptables", "-A", "OUTPUT", "-p", "tcp", "--dport", "3000", "--tcp-flags", "SYN,ACK", "SYN",
              "-j", "DROP")
    out, stderr = scan_in_ns(netns, {"tcp": [22], "chunk_probes": 2,
                                     "targets": ["127.0.0.1", "127.0.0.2", "127.0.0.1"],
                                     "config": {"ports": "22,3000", "timeout": "200ms", "retries": 0}})
    # the listener binds 127.0.0.1: 127.0.0.2 answers with a reset
    assert [(r["host"], r["port"]) for r in out["open_ports"]] == [("127.0.0.1", 22)]
    assert sorted((r["host"], r["port"], r["state"]) for r in out["port_states"]) == [
        ("127.0.0.1", 3000, "filtered"), ("127.0.0.2", 3000, "filtered")]
    assert "6 probes" in stderr, stderr[-2000:]
