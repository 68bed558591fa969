"""Stateless raw host discovery on the simulated network: ICMP echo, ICMPv6 echo, TCP SYN
and ACK pings find exactly the addresses that are up, each once; forged replies and
silent addresses are not counted, silent ones are retried; without privilege the
datagram / connect methods still find them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pentora.testing import SimNet, simulated_network
from tests.plugins.test_syn_scan import RUNNER, raw_sockets_unavailable
from tests.unprivileged import UnprivilegedUser, run_as_unprivileged


def resolve_router(net: SimNet) -> None:
    """Make the scanner namespace learn the target's link address (and the target the
    scanner's) with one connection: until then the kernel queues only a few hundred
    packets per neighbour and drops the rest, and the exact probe counts below would
    include the retries of those."""
    address = net.addresses()[0]
    net.python("-c", "import socket, sys; socket.create_connection((sys.argv[1], sys.argv[2]), "
               "timeout=5).close()", address, str(net.ports[0]))


@pytest.fixture(scope="module")
def slash20() -> Iterator[SimNet]:
    """One simulated /20 (4,096 addresses, ports 22, 80, 443) for the sweeps that only read it."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    with simulated_network("198.18.0.0/20") as net:
        resolve_router(net)
        yield net


def discover(net: SimNet, module_type: str, config: dict[str, Any],
             targets: list[str] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Run ``module_type`` in the scanner namespace over ``targets`` (default: every address
    of the prefix); the host records it published and its log."""
    spec = {"plugin": "pentora_plugins.discovery", "module_type": module_type,
            "targets": targets if targets is not None else net.addresses(),
            "config": config, "keys": ["discovered_hosts"]}
    proc = net.python(RUNNER, json.dumps(spec), check=False, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed", (out, proc.stderr[-3000:])
    return out["discovered_hosts"], proc.stderr


def probe_line(log: str, module_type: str) -> tuple[int, int, int]:
    """(probes sent, hosts up, hosts silent) from the raw sweep's summary line; its
    presence proves the raw method ran, not a fallback."""
    m = re.search(rf"{module_type}: (\d+) probes \(.*?\), (\d+) up, (\d+) silent", log)
    assert m, log[-3000:]
    sent, up, silent = map(int, m.groups())
    return sent, up, silent


def assert_exactly(hosts: list[dict[str, Any]], expected: list[str], method: str) -> None:
    found = [h["address"] for h in hosts]
    assert len(found) == len(set(found)), "a host was listed twice"
    missing, extra = set(expected) - set(found), set(found) - set(expected)
    assert not missing and not extra, (sorted(missing)[:10], sorted(extra)[:10])
    assert {h["method"] for h in hosts} == {method} and all(h["alive"] for h in hosts)


def test_icmp_sweep_of_a_slash_20_finds_every_address_once(slash20: SimNet) -> None:
    hosts, log = discover(slash20, "icmp_discovery", {"mode": "raw", "timeout": "1s"})
    assert_exactly(hosts, slash20.addresses(), "icmp")
    assert {h["reason"] for h in hosts} == {"echo-reply"}
    assert all(h["ttl"] == 64 and h["latency_ms"] >= 0 for h in hosts)
    assert probe_line(log, "icmp_discovery") == (4096, 4096, 0), log[-2000:]


@pytest.mark.parametrize(("probe", "ports", "reasons"), [
    ("syn", [80], {"syn-ack"}),        # listened on: SYN-ACK
    ("syn", [3389], {"rst"}),          # nobody listens: RST-ACK
    ("ack", [80], {"rst"}),            # an ACK out of the blue is reset, open port or not
])
def test_tcp_ping_sweep_of_a_slash_20_finds_every_address_once(
        slash20: SimNet, probe: str, ports: list[int], reasons: set[str]) -> None:
    hosts, log = discover(slash20, "tcp_probe_discovery",
                          {"mode": "raw", "probe": probe, "ports": ports, "timeout": "1s"})
    assert_exactly(hosts, slash20.addresses(), "tcp_probe")
    assert {h["reason"] for h in hosts} == reasons
    assert probe_line(log, "tcp_probe_discovery") == (4096, 4096, 0), log[-2000:]


def test_tcp_ping_on_several_ports_sends_the_later_ones_only_to_silent_hosts(slash20: SimNet) -> None:
    hosts, log = discover(slash20, "tcp_probe_discovery",
                          {"mode": "raw", "ports": "22,80,443,3389", "timeout": "1s"})
    assert_exactly(hosts, slash20.addresses(), "tcp_probe")
    sent, up, silent = probe_line(log, "tcp_probe_discovery")
    assert (up, silent) == (4096, 0)
    # replies come back while the first port's pass is still sending: most hosts are
    # settled before their second port's turn
    assert 4096 <= sent < 4 * 4096, log[-2000:]


def test_icmpv6_sweep_finds_every_address_once() -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    with simulated_network("2001:2::/118") as net:
        resolve_router(net)
        hosts, log = discover(net, "icmp_discovery", {"mode": "raw", "timeout": "1s"})
    assert len(net.addresses()) == 1023
    assert_exactly(hosts, net.addresses(), "icmp")
    assert all(h["ttl"] == 64 for h in hosts)  # the hop limit, from IPV6_RECVHOPLIMIT
    assert probe_line(log, "icmp_discovery") == (1023, 1023, 0), log[-2000:]


@pytest.mark.parametrize(("probe", "ports", "reasons"), [
    ("syn", [80], {"syn-ack"}),
    ("syn", [3389], {"rst"}),
    ("ack", [80], {"rst"}),
])
def test_tcp_ping_sweep_of_an_ipv6_prefix_is_raw_and_finds_every_address_once(
        probe: str, ports: list[int], reasons: set[str]) -> None:
    """IPv6 hosts get raw pings too, not connects: the summary line of the raw sweep
    counts them, and an ACK ping (which a connect cannot send) finds them."""
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    with simulated_network("2001:2::/118") as net:
        resolve_router(net)
        hosts, log = discover(net, "tcp_probe_discovery",
                              {"mode": "raw", "probe": probe, "ports": ports, "timeout": "1s"})
    assert_exactly(hosts, net.addresses(), "tcp_probe")
    assert {h["reason"] for h in hosts} == reasons
    assert all(h["ttl"] == 64 for h in hosts)  # the hop limit, from IPV6_RECVHOPLIMIT
    assert probe_line(log, "tcp_probe_discovery") == (1023, 1023, 0), log[-2000:]


# Runs in the target namespace: echo replies "from" the silent addresses to the scanner,
# with random id/sequence (the key is the scanner's secret), until stdin closes.
FORGER = r"""
import os, random, select, socket, struct, sys
def csum(b):
    s = sum(struct.unpack(f"!{len(b)//2}H", b)); s = (s & 0xFFFF) + (s >> 16)
    return ~(s + (s >> 16)) & 0xFFFF
dst, sources = socket.inet_aton(sys.argv[1]), [socket.inet_aton(a) for a in sys.argv[2:]]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
payload, sent = b"pentora-discovery\0", 0
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0.002)[0]:
    for src in sources:
        ident, seq = random.randrange(65536), random.randrange(65536)
        icmp = struct.pack("!BBHHH", 0, 0, 0, ident, seq) + payload
        icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, src, dst)
        s.sendto(ip + icmp, (sys.argv[1], 0))
        sent += 1
print(sent, flush=True)
"""


def test_silent_addresses_are_retried_and_forged_replies_not_counted() -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    with simulated_network("198.18.4.0/24") as net:
        # The upper half stops answering: the target takes only the lower half as its own
        # and drops the rest (a blackhole route; it forwards nothing anyway).
        net.target.run("ip", "route", "del", "local", "198.18.4.0/24", "dev", "lo", "table", "local")
        net.target.run("ip", "route", "add", "local", "198.18.4.0/25", "dev", "lo")
        net.target.run("ip", "route", "add", "blackhole", "198.18.4.128/25")
        resolve_router(net)
        up = [a for a in net.addresses() if int(a.rsplit(".", 1)[1]) < 128]
        silent = [a for a in net.addresses() if a not in up]
        forger = net.target.popen(sys.executable, "-c", FORGER, net.scanner_address, *silent,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert forger.stdout is not None and forger.stdout.readline().strip() == "ready"
            hosts, log = discover(net, "icmp_discovery",
                                  {"mode": "raw", "timeout": "500ms", "retry": 2, "include_down": True})
        finally:
            assert forger.stdin is not None
            forger.stdin.close()
            forged = int(forger.stdout.readline() or 0) if forger.stdout else 0
            forger.wait(timeout=10)
    assert forged > len(silent), "the forger sent no replies: the test proves nothing"
    assert_exactly([h for h in hosts if h["alive"]], up, "icmp")
    down = {h["address"]: h["reason"] for h in hosts if not h["alive"]}
    assert down == dict.fromkeys(silent, "no-response")
    # each silent host: the first try and both retries; each live one: one echo
    assert probe_line(log, "icmp_discovery") == (len(up) + 3 * len(silent), len(up), len(silent))


def test_unprivileged_discovery_still_finds_every_address(unprivileged: UnprivilegedUser) -> None:
    with simulated_network("198.18.5.0/24") as net:
        done = run_as_unprivileged(["scan", "-sn", "-t", net.prefix, "-o", "out.jsonl"],
                                   unprivileged, netns=net.scanner)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = [json.loads(line) for line in (unprivileged.home / "out.jsonl").read_text().splitlines()]
    hosts = [r for r in lines if r.get("kind") == "host"]
    found = [h["address"] for h in hosts]
    assert len(found) == len(set(found)) and set(found) == set(net.addresses())
    # no raw socket: the connect pings found them (a namespace's ping_group_range allows no group)
    assert all("tcp_probe" in h["methods"] for h in hosts)


def test_a_host_listed_twice_is_probed_and_listed_once(slash20: SimNet) -> None:
    targets = slash20.addresses()[:600]
    # chunks of 256: some duplicates fall in the same chunk, some in a later one
    hosts, log = discover(slash20, "icmp_discovery", {"mode": "raw", "concurrency": 256},
                          targets + targets[::-1])
    assert_exactly(hosts, targets, "icmp")
    assert probe_line(log, "icmp_discovery") == (600, 600, 0), log[-2000:]


def test_connect_mode_still_connects_when_privileged(slash20: SimNet) -> None:
    targets = slash20.addresses()[:256]
    hosts, log = discover(slash20, "tcp_probe_discovery", {"mode": "connect", "ports": [80]}, targets)
    assert_exactly(hosts, targets, "tcp_probe")
    assert "probes (" not in log  # the raw sweep's line: it did not run


def test_ack_pings_without_raw_sockets_fail_saying_what_to_set(slash20: SimNet) -> None:
    spec = {"plugin": "pentora_plugins.discovery", "module_type": "tcp_probe_discovery",
            "targets": slash20.addresses()[:4], "config": {"mode": "connect", "probe": "ack"},
            "keys": ["discovered_hosts"]}
    proc = slash20.python(RUNNER, json.dumps(spec), check=False, timeout=60)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "failed" and "Traceback" not in proc.stderr
    assert "probe: ack needs mode raw or auto" in out["error"] and "probe: syn" in out["error"]
