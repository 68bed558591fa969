"""ARP and IPv6 neighbour discovery on a real Ethernet segment between namespaces
(``pentora.testing.simulated_link``): the scanner sweeps whole prefixes and must find
exactly the hosts on the link, each with its own MAC, through ``arp_discovery`` alone and
through ``pentora scan``; the frames it sends, captured on the hosts' side, are what scapy
dissects as valid requests and solicitations, and leave at the configured rate. Root only;
skipped with the reason otherwise."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import SimLink, netns_unavailable, simulated_link
from tests.plugins.test_discovery import RUNNER, UNPRIVILEGED, run_in_ns
from tests.plugins.test_simnet import namespaces

HOSTS = 12
# A sweep waits `timeout` for each of 1 + `retry` attempts; with every probe sent at once
# (rate 0) a whole /24 takes about that, however many addresses are silent.
SWEEP = {"timeout": "500ms", "retry": 1, "rate": 0}
# The discovery runner with the log on stderr, to read the module's warnings.
LOGGING_RUNNER = "from pentora._logging import configure\nconfigure('INFO')\n" + RUNNER


@pytest.fixture(scope="module")
def link() -> Iterator[SimLink]:
    if reason := netns_unavailable():
        pytest.skip(reason)
    with simulated_link("198.18.5.0/24", hosts=HOSTS, prefix6="2001:2:0:5::/120") as net:
        yield net


def sweep(net: SimLink, targets: list[str], config: dict[str, Any] | None = None,
          unprivileged: bool = False) -> tuple[dict[str, Any], dict[str, dict[str, Any]], float]:
    """arp_discovery over ``targets`` from the scanner namespace: its outcome, the hosts
    found by address, and how long the run took."""
    started = time.monotonic()
    out = run_in_ns(net.scanner, "arp_discovery", {**SWEEP, **(config or {})}, targets,
                    unprivileged=unprivileged)
    took = time.monotonic() - started
    assert out["status"] == "completed", out["error"]
    return out, {h["address"]: h for h in out["hosts"]}, took


def test_arp_sweep_of_a_slash_24_finds_exactly_the_hosts_and_their_macs(link: SimLink) -> None:
    _, hosts, took = sweep(link, link.addresses())
    assert {a: h["mac"] for a, h in hosts.items()} == link.expected()
    assert len(link.expected()) == HOSTS
    for host in hosts.values():
        assert (host["alive"], host["method"], host["reason"]) == (True, "arp", "arp-response")
        assert host["latency_ms"] is not None
    # Reported, not asserted: the sweep's pace is timeout x attempts, not per host.
    print(f"ARP sweep of 256 addresses, {HOSTS} hosts: {took:.2f} s (process start included)")
    # A hang guard: 256 hosts one after the other would take 256 x 1 s.
    assert took < 60


def test_neighbour_discovery_finds_exactly_the_ipv6_hosts_and_their_macs(link: SimLink) -> None:
    _, hosts, took = sweep(link, link.addresses6())
    assert {a: h["mac"] for a, h in hosts.items()} == link.expected6()
    for host in hosts.values():
        assert (host["alive"], host["method"], host["reason"]) == (True, "arp", "nd-response")
    print(f"neighbour discovery of 255 addresses, {HOSTS} hosts: {took:.2f} s")


# Every frame the scanner's MAC sends on the link, seen from the hosts' side (link1 in the
# target namespace): "ready" once the socket is bound, then, when stdin closes, one JSON
# line of [arrival time, frame hex] pairs.
CAPTURE = r"""
import json, select, socket, sys, time
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
s.bind(("link1", 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
print("ready", flush=True)
frames = []
while True:
    ready, _, _ = select.select([s, sys.stdin], [], [], 30)
    if s in ready:
        frame = s.recv(2048)
        if frame[6:12] == mac:
            frames.append((time.monotonic(), frame.hex()))
    elif sys.stdin in ready or not ready:
        break
print(json.dumps(frames))
"""


def captured(net: SimLink, run: Any) -> tuple[Any, list[tuple[float, bytes]]]:
    """``run()``'s result and the frames the scanner sent on the link meanwhile."""
    mac = net.run("cat", f"/sys/class/net/{net.interface}/address").stdout.strip()
    proc = net.target.popen(sys.executable, "-c", CAPTURE, mac, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready"
        result = run()
        time.sleep(0.2)  # the last frames reach the capture socket
        out, _ = proc.communicate("", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return result, [(at, bytes.fromhex(frame)) for at, frame in json.loads(out)]


def test_the_frames_on_the_wire_are_what_scapy_dissects_as_valid_arp_and_nd(link: SimLink) -> None:
    from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils6 import in6_getnsma, in6_getnsmac

    some = link.hosts[:3]
    silent, silent6 = "198.18.5.251", "2001:2:0:5::fb"
    targets = [h.address for h in some] + [h.address6 for h in some] + [silent, silent6]
    (_, hosts, _), frames = captured(link, lambda: sweep(link, targets, {"retry": 0}))
    # The hosts' kernels answered: they answer well-formed requests only.
    assert {a: h["mac"] for a, h in hosts.items()} == {
        **{h.address: h.mac for h in some}, **{h.address6: h.mac for h in some}}
    mac = Ether(frames[0][1]).src
    asked, solicited = set(), set()
    for _, frame in frames:
        packet = Ether(frame)
        if ARP in packet:
            arp = packet[ARP]
            assert len(frame) == 60 and packet.dst == "ff:ff:ff:ff:ff:ff"
            assert (arp.op, arp.hwsrc, arp.psrc, arp.hwdst) == (1, mac, link.scanner_address,
                                                                "00:00:00:00:00:00")
            asked.add(arp.pdst)
        elif ICMPv6ND_NS in packet and packet[IPv6].src != "::":  # "::": the kernel's DAD
            ns = packet[ICMPv6ND_NS]
            target = socket.inet_pton(socket.AF_INET6, ns.tgt)
            group = socket.inet_ntop(socket.AF_INET6, in6_getnsma(target))
            assert (packet.dst, packet[IPv6].dst) == (in6_getnsmac(in6_getnsma(target)), group)
            assert (packet[IPv6].src, packet[IPv6].hlim, ns.code) == (link.scanner_address6, 255, 0)
            assert packet[ICMPv6NDOptSrcLLAddr].lladdr == mac
            rebuilt = Ether(frame)
            del rebuilt[ICMPv6ND_NS].cksum  # scapy computes it afresh: it must be the same
            assert bytes(rebuilt) == frame
            solicited.add(str(ipaddress.ip_address(ns.tgt)))
    assert asked == {h.address for h in some} | {silent}
    assert solicited == {h.address6 for h in some} | {silent6}


@pytest.mark.parametrize("family", [4, 6])
def test_the_sweep_follows_a_low_rate(link: SimLink, family: int) -> None:
    rate = 200
    targets = link.addresses() if family == 4 else link.addresses6()
    (_, hosts, _), frames = captured(link, lambda: sweep(link, targets, {"rate": rate, "retry": 0}))
    assert {a: h["mac"] for a, h in hosts.items()} == (link.expected() if family == 4
                                                       else link.expected6())
    probes = [at for at, frame in frames if (frame[12:14] == b"\x08\x06" if family == 4 else
                                             # a solicitation not of the kernel's DAD (from ::)
                                             frame[54] == 135 and any(frame[22:38]))]
    assert len(probes) >= len(targets) - 1  # each address but the scanner's own, once at least
    span = probes[-1] - probes[0]
    print(f"IPv{family}: {len(probes)} probes in {span:.2f} s at rate {rate}")
    # Not impossibly fast: the rate was followed (an unlimited sweep takes milliseconds).
    assert span >= (len(probes) - 1) / rate * 0.5


def test_both_families_in_one_sweep_on_a_named_interface(link: SimLink) -> None:
    some = link.hosts[:3]
    targets = [h.address for h in some] + [h.address6 for h in some] + ["198.18.5.250"]
    _, hosts, _ = sweep(link, targets, {"interface": link.interface, "include_down": True})
    assert {a: h["mac"] for a, h in hosts.items() if h["alive"]} == {
        **{h.address: h.mac for h in some}, **{h.address6: h.mac for h in some}}
    assert hosts["198.18.5.250"]["alive"] is False
    assert hosts["198.18.5.250"]["reason"] == "no-response"


def test_a_host_that_is_down_is_not_reported() -> None:
    if reason := netns_unavailable():
        pytest.skip(reason)
    with simulated_link("198.18.6.0/24", hosts=4, prefix6="2001:2:0:6::/120") as net:
        gone = net.hosts[1]
        net.take_down(gone)
        _, hosts, _ = sweep(net, [h.address for h in net.hosts] + [h.address6 for h in net.hosts])
        names = {net.name, net.target.name}
    assert not names & namespaces()  # both namespaces are gone with the block
    expected = {**net.expected(), **net.expected6()}
    del expected[gone.address], expected[gone.address6]
    assert {a: h["mac"] for a, h in hosts.items()} == expected


def test_own_and_off_link_addresses_are_skipped_with_a_warning(link: SimLink) -> None:
    spec = json.dumps({"module": "arp_discovery", "config": SWEEP, "patch": False,
                       "targets": [link.scanner_address, link.scanner_address6, "127.0.0.1",
                                   "198.19.0.1", link.hosts[0].address]})
    proc = link.run(sys.executable, "-c", LOGGING_RUNNER, spec, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [h["address"] for h in out["hosts"]] == [link.hosts[0].address]
    assert "skipped 3 host(s): an address of this host" in proc.stderr  # 127.0.0.1 too
    assert "skipped 1 host(s): not on a directly connected Ethernet link" in proc.stderr


def test_without_privilege_it_is_skipped_with_a_warning(link: SimLink) -> None:
    spec = json.dumps({"module": "arp_discovery", "config": SWEEP, "patch": False,
                       "targets": [link.hosts[0].address]})
    proc = link.run(*UNPRIVILEGED, sys.executable, "-c", LOGGING_RUNNER, spec, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["status"], out["hosts"]) == ("completed", [])
    assert "ARP and neighbour discovery skipped" in proc.stderr
    assert "root or CAP_NET_RAW" in proc.stderr


def test_discovery_profile_with_arp_reports_the_macs_in_jsonl(link: SimLink, tmp_path: Path) -> None:
    out = tmp_path / "scan.jsonl"
    targets = ",".join([link.prefix, *(h.address6 for h in link.hosts)])
    proc = link.run(sys.executable, "-m", "pentora", "scan", "-sn", "-t", targets,
                    "--set", "arp=true", "--set", "discovery_timeout=500ms",
                    "-o", f"{out}", "-q", check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    hosts = {r["address"]: r for r in records if r.get("kind") == "host"}
    # The scanner's own address answers ICMP and the TCP probes (its own stack), not ARP.
    own = hosts.pop(link.scanner_address)
    assert own["mac"] is None and "arp" not in own["methods"]
    assert {a: h["mac"] for a, h in hosts.items()} == {**link.expected(), **link.expected6()}
    assert all("arp" in h["methods"] for h in hosts.values())


def test_discovery_profile_without_privilege_exits_0_with_one_arp_warning(link: SimLink,
                                                                          tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("dropping CAP_NET_RAW needs setpriv (Debian's util-linux), not installed")
    out = tmp_path / "scan.jsonl"
    some = link.hosts[:3]
    proc = link.run(*UNPRIVILEGED, sys.executable, "-m", "pentora", "scan", "-sn",
                    "-t", ",".join(h.address for h in some), "--set", "arp=true",
                    "--set", "discovery_timeout=500ms", "-o", f"{out}", check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("arp_discovery: ARP and neighbour discovery skipped") == 1, proc.stderr
    hosts = [json.loads(line) for line in out.read_text().splitlines()]
    # The TCP probes still find the hosts (their closed ports answer RST), without MACs.
    assert {h["address"]: h["mac"] for h in hosts if h.get("kind") == "host"} == {
        h.address: None for h in some}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prefix": "10.0.0.0/24"}, "simulated_link: prefix 10.0.0.0/24 is outside 198.18.0.0/15"),
    ({"prefix6": "2001:db8::/120"}, "is outside 2001:2::/48"),
    ({"prefix": "2001:2::/120"}, "must be IPv4"),
    ({"hosts": 300}, "hosts=300 does not fit"),
    ({"hosts": 0}, "give 1 to 253 hosts"),
])
def test_simulated_link_refuses_what_it_cannot_build(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)), simulated_link(**kwargs):
        pass  # refused before any namespace is made, so this runs without root too
