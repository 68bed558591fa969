"""ARP and IPv6 neighbour discovery on a real Ethernet segment between namespaces
(``pentora.testing.simulated_link``): the scanner sweeps whole prefixes and must find
exactly the hosts on the link, each with its own MAC, through ``arp_discovery`` alone and
through ``pentora scan``. Root only; skipped with the reason otherwise."""

from __future__ import annotations

import json
import re
import shutil
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
