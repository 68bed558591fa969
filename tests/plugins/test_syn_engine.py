"""The SYN scanner's engine: batched receive with the kernel's drop count (on loopback
raw sockets), the adaptive rate, and sweeps of the simulated network: the exact open set
at full speed, the exact set again through 20% packet loss (retransmission, the rate
backing off), and memory that does not grow with the range."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import shutil
import socket
import time
from types import SimpleNamespace
from typing import Any

import pytest
from pentora_plugins.kit.net.ratelimit import AdaptiveRate
from pentora_plugins.kit.net.rawrecv import BatchReceiver
from pentora_plugins.kit.net.rawsend import SendPass, open_send_socket
from pentora_plugins.kit.records import Port, address_key
from pentora_plugins.portscan._synchunk import _Chunk
from pentora_plugins.portscan._synscan import LOST_LEFT, STEADY, SynScan, _Steering
from scapy.layers.inet import IP, TCP

from pentora.testing import SimNet, simulated_network
from tests.plugins.test_simnet import assert_exactly_expected, sweep
from tests.plugins.test_syn_scan import RUNNER, raw_sockets_unavailable

# An IP protocol number set aside for experiments (RFC 3692): no other traffic of the
# machine reaches a raw socket of it, and the token tells this test's packets apart.
EXPERIMENTAL_PROTOCOL = 253


def raw_pair(rcvbuf: int | None = None) -> tuple[socket.socket, socket.socket]:
    """(receiving, sending) raw sockets of the experimental protocol on loopback."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    recv = socket.socket(socket.AF_INET, socket.SOCK_RAW, EXPERIMENTAL_PROTOCOL)
    if rcvbuf is not None:
        recv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    send = socket.socket(socket.AF_INET, socket.SOCK_RAW, EXPERIMENTAL_PROTOCOL)
    return recv, send


def drain(receiver: BatchReceiver, token: bytes) -> list[bytes]:
    """This test's payloads waiting on the socket (the IP header cut off)."""
    out = []
    while packets := receiver.receive():
        out += [p[20:] for p in packets if p[20:].startswith(token)]
    return out


def test_batch_receiver_reads_many_packets_a_call() -> None:
    recv, send = raw_pair()
    token = os.urandom(8)
    with recv, send:
        receiver = BatchReceiver(recv, snap=64, batch=32)
        for i in range(200):  # what the default buffer holds
            send.sendto(token + i.to_bytes(4, "big"), ("127.0.0.1", 0))
        got = drain(receiver, token)
        assert got == [token + i.to_bytes(4, "big") for i in range(200)]
        assert receiver.received >= 200
        # 200 packets in calls of up to 32 each, not one call a packet
        assert receiver.calls <= 10, receiver.calls
        assert receiver.drops() == 0
        assert receiver.receive() == []  # nothing waiting: returns at once


def test_batch_receiver_cuts_packets_to_the_snap_length() -> None:
    recv, send = raw_pair()
    token = os.urandom(8)
    with recv, send:
        receiver = BatchReceiver(recv, snap=32)
        send.sendto(token + b"x" * 500, ("127.0.0.1", 0))
        packets = [p for p in receiver.receive() if p[20:28] == token]
        assert [len(p) for p in packets] == [32]


def test_batch_receiver_without_recvmmsg_reads_one_packet_a_call() -> None:
    recv, send = raw_pair()
    token = os.urandom(8)
    with recv, send:
        receiver = BatchReceiver(recv)
        receiver._recvmmsg = None  # as on a libc without it
        assert receiver.receive() == []  # returns at once, does not wait
        for i in range(3):
            send.sendto(token + bytes([i]), ("127.0.0.1", 0))
        assert drain(receiver, token) == [token + bytes([i]) for i in range(3)]
        assert receiver.calls == receiver.received >= 3


def test_batch_receiver_counts_the_packets_the_kernel_dropped() -> None:
    recv, send = raw_pair(rcvbuf=4096)  # the kernel doubles it; a few packets fit
    token = os.urandom(8)
    with recv, send:
        receiver = BatchReceiver(recv)
        for i in range(2000):  # nobody reads meanwhile: most are dropped
            send.sendto(token + i.to_bytes(4, "big"), ("127.0.0.1", 0))
        got = drain(receiver, token)
        assert 0 < len(got) < 2000
        # other traffic of this protocol would only add drops: at least ours are counted
        assert receiver.drops() >= 2000 - len(got)


def test_adaptive_rate_halves_on_loss_and_climbs_back_to_the_ceiling() -> None:
    rate = AdaptiveRate(40000)
    assert rate.rate == 40000
    assert rate.lost(achieved=39000) == 19500  # from what was achieved, when lower
    assert rate.lost(achieved=19500) == 9750
    for _ in range(20):
        rate.clean()
    assert rate.rate == 40000  # never above the ceiling
    for _ in range(40):
        rate.lost(achieved=rate.rate)
    assert rate.rate == 1000  # the floor: the scan still ends


def test_adaptive_rate_unlimited_starts_from_the_achieved_rate() -> None:
    rate = AdaptiveRate(0)
    assert rate.rate == 0 and rate.clean() == 0  # unlimited until the first loss
    assert rate.lost(achieved=80000) == 40000
    assert rate.clean() == 50000


@pytest.mark.parametrize("addresses", [
    list(range(1000, 1100)),                  # one range: found by subtraction
    list(range(1000, 3000, 7)),               # ascending with gaps: binary search
    [5, 900, 3, 70000, 12, 4294967295, 0],    # any order: a sorted copy
])
def test_chunk_finds_each_host_of_a_reply_and_nothing_else(addresses: list[int]) -> None:
    chunk = _Chunk(nports=3)
    for a in addresses:
        chunk.add(a, secret=a ^ 0x5A5A5A5A, source=0)
    chunk.seal()
    assert len(chunk.states) == 3 * len(addresses) == chunk.pending
    assert [chunk.find(a) for a in addresses] == list(range(len(addresses)))
    strangers = {a + d for a in addresses for d in (-1, 1)} - set(addresses)
    assert all(chunk.find(a) is None for a in strangers if 0 <= a < 1 << 32)
    assert chunk.address(0) == socket.inet_ntoa(addresses[0].to_bytes(4, "big"))


def test_port_records_convert_and_sort_as_before_their_fast_paths() -> None:
    port = Port(host="198.18.0.7", port=443, method="syn", reason="syn-ack")
    assert port.to_dict() == dataclasses.asdict(port)
    assert list(port.to_dict()) == [f.name for f in dataclasses.fields(Port)]
    addresses = ["198.18.0.10", "host.example", "::1", "198.18.0.9", "01.2.3.4", "1.2.3"]
    numeric = [a for a in addresses if a.count(".") == 3 and not a.startswith("0")]
    assert sorted(addresses, key=address_key) == [
        *sorted(numeric, key=lambda a: int(ipaddress.ip_address(a))), "::1",
        *sorted(["host.example", "01.2.3.4", "1.2.3"])]


def test_lost_left_estimates_the_replies_still_lost_from_the_answers_of_each_try() -> None:
    clean = _Chunk(nports=1)
    assert [clean.lost_left(a) for a in (800, 0)] == [0.0, 0.0]  # silent means filtered
    lossy = _Chunk(nports=1)  # a fifth of the tries lost: each retry gets a fifth as many
    lost = [lossy.lost_left(a) for a in (800, 160, 32, 6, 1, 0, 0, 0, 0)]
    assert lost[0] == 0.0 and lossy.loss == pytest.approx(1 / 5, rel=0.05)
    assert lost[1] == pytest.approx(40) and lost[2] == pytest.approx(8, rel=0.05)
    # a quiet retry does not end it (a reply may still be lost), several do
    assert min(lost[5:8]) > LOST_LEFT > lost[-1]
    assert all(a >= b for a, b in zip(lost[1:], lost[2:], strict=False))


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __getattr__(self, level: str) -> Any:
        return lambda message: self.lines.append(f"{level} {message}")


def test_rate_follows_the_receive_buffer_during_a_pass() -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    recv = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    recv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # small: quickly filled
    send_sock = open_send_socket()
    log = _Log()
    ctx = SimpleNamespace(log=log, scan=SimpleNamespace(options={}))
    config = {"ports": [80], "rate": 40000, "timeout": 1, "retries": 1, "record_filtered": False,
              "host_timeout": 0, "source_port": 0}
    with recv, send_sock:
        scan = SynScan(ctx, config, recv, send_sock)  # type: ignore[arg-type]
        running = SendPass([], scan.pace.rate, 44, send_sock)  # a pass's shared rate, no senders
        steer = _Steering(scan.receiver.drops(), time.monotonic() - 1)
        # segments the reply filter keeps (ACK set, to our source port), left unread: the
        # buffer fills as when the receiver falls behind the replies
        reply = bytes(IP(dst="127.0.0.1") / TCP(sport=9, dport=scan.sports[0], flags="A"))
        for _ in range(120):
            send_sock.sendto(reply, ("127.0.0.1", 0))
        assert scan.receiver.backlog() > 0.25
        scan._steer(running, steer)
        assert running.rate == scan.pace.rate == 20000
        assert any("receive buffer is" in line and "rate lowered to 20,000/s" in line
                   for line in log.lines), log.lines
        while scan.receiver.receive():  # the receiver caught up
            pass
        steer.since -= 1
        steer.calm -= STEADY
        scan._steer(running, steer)
        assert running.rate == scan.pace.rate == 25000  # a quarter up, calm again
        running.close()


def test_sweep_at_full_speed_finds_exactly_the_open_set(simnet: SimNet) -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    found, log = sweep(simnet, "syn_scanner", {"timeout": "1s", "rate": 0})
    assert_exactly_expected(simnet, found)  # nothing missing, doubled or falsely open
    assert "12288 open, 12288 closed, 0 filtered" in log, log[-2000:]


def test_sweep_through_packet_loss_still_finds_exactly_the_open_set(simnet: SimNet) -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    if shutil.which("iptables") is None:
        pytest.skip("iptables is not installed: no way to drop packets in the target namespace")
    # one packet in five lost on the way into the target: probes and the kernel's RSTs
    simnet.target.run("iptables", "-A", "INPUT", "-p", "tcp", "-m", "statistic", "--mode",
                      "random", "--probability", "0.2", "-j", "DROP")
    found, log = sweep(simnet, "syn_scanner", {"timeout": "1s", "rate": 0, "retries": 1})
    assert_exactly_expected(simnet, found)
    assert "12288 open, 12288 closed, 0 filtered" in log, log[-2000:]
    # the rate lowered at the first sign of loss; when the next retry finds as much lost,
    # the loss is the path's, not the rate's: kept, not lowered to a crawl
    assert re.search(r"replies lost \(a retry got \d+ answers to \d+ probes\): rate lowered", log), \
        log[-2000:]
    assert "the loss is not the rate's" in log, log[-2000:]
    assert len(re.findall(r"rate lowered to", log)) <= 2, log[-2000:]


def test_shards_of_a_sweep_partition_the_open_set(simnet: SimNet) -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    parts = []
    for k in (1, 2, 3):
        spec = {"plugin": "pentora_plugins.portscan", "module_type": "syn_scanner",
                "prefix": simnet.prefix, "options": {"shard": [k, 3, 5]},
                "config": {"ports": "21,22,80,443", "timeout": "1s", "rate": 0}}
        proc = simnet.python(RUNNER, json.dumps(spec), check=False, timeout=280)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        parts.append([(r["host"], r["port"]) for r in out["open_ports"]])
    merged = [pair for part in parts for pair in part]
    assert all(parts) and len(merged) == len(set(merged))  # each shard its own share
    assert set(merged) == simnet.expected()


def peak_memory(prefix: str, config: dict[str, Any]) -> int:
    """The scan's peak traced memory in a sweep of every address of ``prefix``."""
    with simulated_network(prefix) as net:
        spec = {"plugin": "pentora_plugins.portscan", "module_type": "syn_scanner",
                "prefix": prefix, "trace_memory": True, "config": config}
        proc = net.python(RUNNER, json.dumps(spec), check=False, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed", (out, proc.stderr[-3000:])
    hosts = 1 << (32 - int(prefix.split("/")[1]))
    assert f"{2 * hosts} probes" in proc.stderr and f"{2 * hosts} closed" in proc.stderr
    return int(out["peak_memory"])


def test_memory_does_not_grow_with_the_range() -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    # Closed ports only: no findings to keep, so what is left is the engine's own state.
    config = {"ports": "23,8080", "timeout": "1s", "rate": 0}
    small, large = peak_memory("198.18.0.0/20", config), peak_memory("198.18.0.0/18", config)
    print(f"peak traced memory: /20 {small / 1e6:.1f} MB, /18 {large / 1e6:.1f} MB")
    # four times the hosts; an object per host made it twice the memory
    assert large < 1.5 * small, (small, large)
