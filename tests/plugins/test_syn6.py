"""syn_scanner over IPv6: the IPv6 SYN template against scapy, reply matching by keyed
hash, and real scans on raw AF_INET6 sockets: ::1, a simulated IPv6 prefix in two
network namespaces, IPv4 and IPv6 targets in one scan, and the connect scan without
privilege."""

from __future__ import annotations

import ipaddress
import random
import shutil
import socket
from typing import Any

import pytest
from pentora_plugins.kit.net.rawrecv import BatchReceiver
from pentora_plugins.kit.net.rawtcp import SeqHasher, Syn6Template, reply_filter6
from pentora_plugins.portscan._synchunk import _Chunk, _Chunk6
from pentora_plugins.portscan._synmatch import CLOSED, OPEN, ReplyMatcher6
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6

from pentora.testing import free_port, simulated_network
from tests.plugins.test_simnet import assert_exactly_expected, namespaces, sweep
from tests.plugins.test_syn_scan import needs_raw, raw_sockets_unavailable, run_scan, scan_in_ns


def packed(address: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, address)


# -- packets -------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst", "sport", "dport", "seq"), [
    ("::1", "::1", 61000, 80, 0xDEADBEEF),
    ("2001:2:0:ffff::1", "2001:2::fff", 64999, 65535, 0xFFFFFFFF),
    ("2001:2:0:ffff::1", "2001:2::1", 61001, 1, 0),
    ("fe80::1", "2001:2:0:ffff:ffff:ffff:ffff:ffff", 62000, 443, 0x00010001),
])
def test_template_equals_the_packet_scapy_builds(src: str, dst: str, sport: int, dport: int,
                                                 seq: int) -> None:
    template = Syn6Template(src, hop_limit=64, window=1024, mss=1440)
    expected = bytes(IPv6(src=src, dst=dst, hlim=64)
                     / TCP(sport=sport, dport=dport, seq=seq, flags="S", window=1024,
                           options=[("MSS", 1440)]))
    assert template.build(dst, sport, dport, seq) == expected


def test_template_patching_reuses_one_buffer_per_host() -> None:
    template = Syn6Template("2001:2:0:ffff::1")
    buf, tcp_sum = template.for_destination(packed("2001:2::42"))
    rng = random.Random(6)
    for _ in range(200):
        sport, dport, seq = rng.randrange(61000, 65000), rng.randrange(1, 65536), rng.getrandbits(32)
        Syn6Template.fill(buf, tcp_sum, sport, dport, seq)
        packet = IPv6(bytes(buf))
        assert (packet[TCP].sport, packet[TCP].dport, packet[TCP].seq) == (sport, dport, seq)
        del packet[TCP].chksum  # scapy recomputes it, pseudo-header included
        assert bytes(packet) == bytes(buf)


def test_bpf_program_is_seven_instructions() -> None:
    assert len(reply_filter6(61000, 61001)) == 7 * 8


# -- reply matching ------------------------------------------------------------------


def segment(hasher: SeqHasher, flags: str, *, port: int = 8080, our_port: int = 61000,
            ack_delta: int = 1, ours: str = "::1", theirs: str = "::1") -> bytes:
    """A reply as an AF_INET6 raw socket hands it over: the TCP segment alone."""
    seq = hasher.seq(packed(ours), packed(theirs), port, our_port)
    return bytes(TCP(sport=port, dport=our_port, flags=flags, seq=99, ack=(seq + ack_delta) & 0xFFFFFFFF))


def test_reply_matching_by_keyed_hash_rejects_forgeries() -> None:
    hasher = SeqHasher(b"k" * 16)
    matcher = ReplyMatcher6(hasher, 61000, 61001)
    secret = hasher.host_secret(packed("::1"), packed("::1"))
    assert matcher.match(segment(hasher, "SA"), secret) == (8080, OPEN)
    assert matcher.match(segment(hasher, "RA", our_port=61001), secret) == (8080, CLOSED)
    # a wrong ack is somebody else's reply, or a forged one
    assert matcher.match(segment(hasher, "SA", ack_delta=2), secret) is None
    assert matcher.match(segment(hasher, "RA", ack_delta=0), secret) is None
    # computed under another scan's key
    assert matcher.match(segment(SeqHasher(b"x" * 16), "SA"), secret) is None
    # the right ack for 2001:2::1, sent from ::1: the secret of ::1 does not take it
    other = segment(hasher, "SA", ours="2001:2:0:ffff::1", theirs="2001:2::1")
    assert matcher.match(other, hasher.host_secret(packed("2001:2:0:ffff::1"), packed("2001:2::1"))) == (
        8080, OPEN)
    assert matcher.match(other, secret) is None


def test_own_probes_and_kernel_resets_are_not_replies() -> None:
    hasher = SeqHasher()
    matcher = ReplyMatcher6(hasher, 61000, 61001)
    secret = hasher.host_secret(packed("::1"), packed("::1"))
    seq = hasher.seq(packed("::1"), packed("::1"), 8080, 61000)
    own_syn = Syn6Template("::1").build("::1", 61000, 8080, seq)
    assert matcher.match(own_syn[Syn6Template.TCP_OFFSET:], secret) is None
    assert matcher.match(segment(hasher, "R"), secret) is None                 # RST without ACK
    assert matcher.match(segment(hasher, "SA", our_port=62000), secret) is None  # not our source port
    assert matcher.match(segment(hasher, "A"), secret) is None                 # a plain ACK
    assert matcher.match(bytes(13), secret) is None                            # truncated


def halves(address: str) -> tuple[int, int]:
    raw = packed(address)
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


def chunk6(addresses: list[str]) -> _Chunk6:
    chunk = _Chunk6(nports=2)
    for i, address in enumerate(addresses):
        chunk.add6(*halves(address), secret=i, dsum=0, source=0)
    chunk.seal()
    return chunk


@pytest.mark.parametrize("addresses", [
    [f"2001:2::{i:x}" for i in range(1, 300)],                    # one range: by subtraction
    [f"2001:2::{i:x}" for i in range(1, 300, 7)],                 # ascending, with gaps
    [f"2001:2:{i % 5:x}::{i:x}" for i in range(300, 1, -3)],      # in no order, several /64s
])
def test_the_ipv6_chunk_finds_each_host_and_nothing_else(addresses: list[str]) -> None:
    chunk = chunk6(addresses)
    assert len(chunk) == len(addresses) and len(chunk.states) == 2 * len(addresses)
    for i, address in enumerate(addresses):
        hi = chunk.find6(*halves(address))
        assert hi is not None and chunk.address(hi) == ipaddress.ip_address(address).compressed
        assert chunk.secret[hi] == i
    for stranger in ("2001:2::", "2001:2::ffff", "2001:3::1", "::1", "2001:2:1::2"):
        if stranger not in addresses:
            assert chunk.find6(*halves(stranger)) is None


@pytest.mark.parametrize("order", ["in a row", "apart"])
def test_an_address_given_twice_is_held_once(order: str) -> None:
    """Two copies of a host in one chunk: replies would settle one copy only, and the
    other's probes be called filtered."""
    v6 = ["2001:2::1", "2001:2::1", "2001:2::2"] if order == "in a row" else [
        "2001:2::1", "2001:2::2", "2001:2::1"]
    chunk = chunk6(v6)
    assert [chunk.address(i) for i in range(len(chunk))] == ["2001:2::1", "2001:2::2"]
    assert chunk.secret.tolist() == ([0, 2] if order == "in a row" else [0, 1]) and chunk.pending == 4
    v4 = _Chunk(nports=1)
    for i, dst in enumerate([5, 5, 7] if order == "in a row" else [7, 5, 7, 3]):
        v4.add(dst, i, 0)
    v4.seal()
    assert v4.dst.tolist() == ([5, 7] if order == "in a row" else [7, 5, 3])
    assert v4.secret.tolist() == ([0, 2] if order == "in a row" else [0, 1, 3])
    assert v4.find(7) == 1 if order == "in a row" else v4.find(7) == 0


@pytest.mark.parametrize("recvmmsg", [True, False])
def test_batch_receiver_gives_each_packet_its_sender(recvmmsg: bool) -> None:
    """What an AF_INET6 raw socket needs: the address the payload came from (a datagram
    socket on ::1 reports its senders the same way)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as recv, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as b:
        recv.bind(("::1", 0))
        a.bind(("::1", 0))
        b.bind(("::1", 0))
        receiver = BatchReceiver(recv, name_size=28)
        if not recvmmsg:
            receiver._recvmmsg = None  # as on a libc without it
        for i in range(6):
            (a if i % 2 else b).sendto(bytes([i]), recv.getsockname())
        got: list[tuple[bytes, bytes]] = []
        while len(got) < 6 and (batch := receiver.receive_from()):
            got += batch
        assert [p for p, _ in got] == [bytes([i]) for i in range(6)]
        for i, (_, name) in enumerate(got):
            sender = a if i % 2 else b
            assert name[8:24] == packed("::1")
            assert int.from_bytes(name[2:4], "big") == sender.getsockname()[1]
        assert receiver.receive_from() == []


# -- scans ---------------------------------------------------------------------------


@needs_raw
def test_loopback_finds_open_and_closed_ports_by_syn(tcp_server: Any, log_messages: list[str]) -> None:
    server = tcp_server(host="::1")
    closed = free_port("::1")
    # given in full: recorded in compressed form
    result, emitted = run_scan({"ports": f"{server.port},{closed}", "timeout": "500ms", "retries": 0},
                               ["0:0:0:0:0:0:0:1"])
    assert [(p.host, p.port, p.state, p.method) for p in result.context.get("open_ports")] == [
        ("::1", server.port, "open", "syn")]
    assert [(r.host, r.port) for k, r in emitted.records if k == "port"] == [("::1", server.port)]
    assert result.context.get("port_states") == []
    assert any("1 open, 1 closed, 0 filtered" in line for line in log_messages), log_messages
    assert not any("connect-scanning" in line for line in log_messages)


@needs_raw
def test_ipv4_and_ipv6_targets_are_both_syn_scanned(tcp_server: Any, log_messages: list[str]) -> None:
    v4, v6 = tcp_server(), tcp_server(host="::1")
    ports = {v4.port, v6.port}  # one port, should both families' listeners get the same number
    result, _ = run_scan({"ports": ",".join(map(str, ports)), "timeout": "500ms", "retries": 0},
                         ["::1", "127.0.0.1", "127.0.0.2"])
    found = sorted((p.host, p.port, p.method) for p in result.context.get("open_ports"))
    # each listener answers on its own family only
    assert found == sorted([("127.0.0.1", v4.port, "syn"), ("::1", v6.port, "syn")])
    closed = 3 * len(ports) - 2
    assert any(f"2 open, {closed} closed, 0 filtered" in line for line in log_messages), log_messages


def test_the_kernel_resets_the_half_open_connections(netns: Any) -> None:
    """Our kernel has no socket for the SYN-ACK and answers it with an RST: the target
    keeps no connection in SYN-RECV (it would retransmit its SYN-ACK for a minute)."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    out, _ = scan_in_ns(netns, {"tcp6": [22, 8080], "targets": ["::1"],
                                "config": {"ports": "22,23,8080", "timeout": "300ms"}})
    assert {(r["host"], r["port"], r["method"]) for r in out["open_ports"]} == {
        ("::1", 22, "syn"), ("::1", 8080, "syn")}
    half_open = netns.run("ss", "-Htan", "state", "syn-recv").stdout
    assert half_open.strip() == ""


def test_sweep_of_a_simulated_ipv6_prefix_is_exact() -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    with simulated_network("2001:2::/116") as net:
        found, log = sweep(net, "syn_scanner", {"timeout": "1s", "rate": 0})
        names = {net.name, net.target.name}
    assert len(net.addresses()) == 4095
    assert_exactly_expected(net, found)  # nothing twice, nothing missing, no false open
    # 4,095 hosts x 6 ports, all SYN-scanned: no connect fallback
    assert "24570 probes" in log and "12285 open, 12285 closed, 0 filtered" in log, log[-2000:]
    assert "connect-scanning" not in log and "falling back" not in log
    assert not names & namespaces()


def test_without_privilege_ipv6_hosts_are_connect_scanned(netns: Any) -> None:
    out, stderr = scan_in_ns(netns, {"tcp": [22], "tcp6": [8080], "drop_privileges": True,
                                     "targets": ["127.0.0.1", "::1"],
                                     "config": {"ports": "22,8080", "timeout": "300ms"}})
    assert out["euid"] == 65534
    assert "raw sockets need root or CAP_NET_RAW" in stderr and "falling back" in stderr
    assert {(r["host"], r["port"], r["method"]) for r in out["open_ports"]} == {
        ("127.0.0.1", 22, "connect"), ("::1", 8080, "connect")}


def test_refused_ipv6_sends_are_counted_warned_once_and_the_ports_filtered(netns: Any) -> None:
    """An ip6tables OUTPUT rule makes the kernel refuse some probes (EPERM from sendmmsg
    on the AF_INET6 socket): the warning names the IPv6 destination, the rest still goes out."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    if not shutil.which("ip6tables"):
        pytest.skip("ip6tables is not installed (apt-get install iptables) to refuse probes")
    netns.run("ip6tables", "-A", "OUTPUT", "-p", "tcp", "--dport", "3000:3009", "--tcp-flags", "SYN,ACK",
              "SYN", "-j", "REJECT")
    out, stderr = scan_in_ns(netns, {"tcp6": [22, 3005, 4000], "targets": ["::1"], "config": {
        "ports": "1-5000", "timeout": "300ms", "retries": 1}})
    assert {(r["host"], r["port"], r["method"]) for r in out["open_ports"]} == {
        ("::1", 22, "syn"), ("::1", 4000, "syn")}
    assert [r["port"] for r in out["port_states"]] == list(range(3000, 3010))
    assert stderr.count("sending to ::1 failed") == 1
    assert "Operation not permitted" in stderr


def test_a_link_local_address_with_a_zone_is_connect_scanned(netns: Any) -> None:
    """sendmmsg's sockaddr_in6 carries no zone: such an address goes to the connect scan,
    which does, while the other IPv6 hosts are still SYN-scanned."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    netns.run("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    for dev in ("d0", "d1"):
        netns.run("ip", "link", "set", dev, "up")
    netns.run("ip", "-6", "addr", "add", "fe80::1/64", "dev", "d0", "nodad")
    out, stderr = scan_in_ns(netns, {"tcp6": [22], "targets": ["fe80::1%d0", "::1"],
                                     "config": {"ports": "22", "timeout": "300ms"}})
    # the listener binds ::1 alone: fe80::1 refuses, and the connect scan says so
    assert [(r["host"], r["port"], r["method"]) for r in out["open_ports"]] == [("::1", 22, "syn")]
    assert "connect-scanning 1 IPv6 host(s): addresses with a zone" in stderr, stderr[-2000:]
    assert "skipping" not in stderr


def test_sweep_of_an_ipv6_prefix_through_packet_loss_is_exact() -> None:
    """One packet in five lost on the way into the target: the IPv6 probes are retried and
    the rate steered as IPv4 ones are."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    if shutil.which("ip6tables") is None:
        pytest.skip("ip6tables is not installed: no way to drop packets in the target namespace")
    with simulated_network("2001:2::/116") as net:
        net.target.run("ip6tables", "-A", "INPUT", "-p", "tcp", "-m", "statistic", "--mode",
                       "random", "--probability", "0.2", "-j", "DROP")
        found, log = sweep(net, "syn_scanner", {"timeout": "1s", "rate": 0, "retries": 1})
    assert_exactly_expected(net, found)
    assert "12285 open, 12285 closed, 0 filtered" in log, log[-2000:]
    assert "replies lost (a retry got" in log, log[-2000:]
