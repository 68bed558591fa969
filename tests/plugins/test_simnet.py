"""The simulated network of ``pentora.testing``: the SYN and connect scanners, run in its
scanner namespace, find exactly the (address, port) pairs it opens; it leaves no
namespace behind."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from pentora.testing import SimNet, simulated_network
from tests.plugins.test_syn_scan import RUNNER, raw_sockets_unavailable

# the listened ports plus neighbours nobody listens on: those must come back closed
SCANNED = "21,22,23,80,443,8080"


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}


def sweep(net: SimNet, module_type: str, config: dict[str, Any]) -> tuple[list[tuple[str, int]], str]:
    """Scan every address of the prefix from the scanner namespace; the open pairs found,
    in the order they were reported, and the scan's log. Each is checked to be found by
    ``module_type``'s own method: no fallback hides in a sweep."""
    spec = {"plugin": "pentora_plugins.portscan", "module_type": module_type,
            "targets": net.addresses(), "config": {"ports": SCANNED, **config}}
    proc = net.python(RUNNER, json.dumps(spec), check=False, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed", (out, proc.stderr[-3000:])
    method = {"syn_scanner": "syn", "connect_scanner": "connect"}[module_type]
    assert {r["method"] for r in out["open_ports"]} <= {method}
    return [(r["host"], r["port"]) for r in out["open_ports"]], proc.stderr


def assert_exactly_expected(net: SimNet, found: list[tuple[str, int]]) -> None:
    assert len(found) == len(set(found)), "a pair was reported twice"
    missing, extra = net.expected() - set(found), set(found) - net.expected()
    assert not missing and not extra, (sorted(missing)[:10], sorted(extra)[:10])


def test_syn_sweep_of_a_slash_24_finds_exactly_the_listeners() -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    with simulated_network("198.18.0.0/24") as net:
        found, log = sweep(net, "syn_scanner", {"timeout": "1s"})
        names = {net.name, net.target.name}
    assert_exactly_expected(net, found)
    # 256 addresses x 6 ports; the three ports nobody listens on answer RST, none is lost
    assert "768 open, 768 closed, 0 filtered" in log
    assert not names & namespaces()


def test_connect_sweep_of_a_slash_24_finds_exactly_the_listeners() -> None:
    with simulated_network("198.18.1.0/24", ports=(22, 443)) as net:
        found, _ = sweep(net, "connect_scanner", {"timeout": "2s"})
        names = {net.name, net.target.name}
    assert_exactly_expected(net, found)
    assert {p for _, p in found} == {22, 443}
    assert not names & namespaces()


def test_syn_sweep_of_a_slash_20_finds_exactly_the_listeners(simnet: SimNet) -> None:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    assert simnet.prefix == "198.18.0.0/20"
    found, log = sweep(simnet, "syn_scanner", {"timeout": "1s"})
    assert_exactly_expected(simnet, found)
    assert "24576 probes" in log and "12288 open, 12288 closed, 0 filtered" in log, log[-2000:]


def test_connect_sweep_of_a_slash_20_finds_exactly_the_listeners(simnet: SimNet) -> None:
    found, log = sweep(simnet, "connect_scanner", {"timeout": "2s"})
    assert_exactly_expected(simnet, found)
    assert "12288 open, 12288 closed, 0 filtered" in log, log[-2000:]


def test_connect_sweep_of_an_ipv6_prefix_finds_exactly_the_listeners() -> None:
    with simulated_network("2001:2::/120", ports=(22, 80)) as net:
        found, _ = sweep(net, "connect_scanner", {"timeout": "2s"})
    # the subnet-router anycast address (2001:2::) is not among the addresses swept
    assert len(net.addresses()) == 255 and "2001:2::" not in net.addresses()
    assert_exactly_expected(net, found)


def test_namespaces_are_removed_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError, match="inside"), simulated_network("198.18.2.0/28") as net:
        names = {net.name, net.target.name}
        assert names <= namespaces()
        raise RuntimeError("inside")
    assert not names & namespaces()


@pytest.mark.parametrize(("prefix", "message"), [
    ("10.0.0.0/24", "outside 198.18.0.0/15"),
    ("198.19.255.0/24", "overlaps 198.19.255.0/30"),
    ("198.18.0.0/33", "is not a network"),
    ("2001:db8::/120", "outside 2001:2::/48"),
    ("2001:2:0:ffff::/120", "overlaps 2001:2:0:ffff::/126"),
])
def test_a_prefix_outside_the_benchmark_range_is_refused(prefix: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)), simulated_network(prefix):
        pass


def test_one_route_lookup_socket_picks_each_destinations_own_source() -> None:
    # SourceAddresses connects one UDP socket again and again: each connect must pick the
    # source of its own route, not keep the first one's (the socket is disconnected between)
    code = ("import sys\n"
            "from pentora_plugins.kit.net.rawtcp import SourceAddresses\n"
            "s = SourceAddresses()\n"
            "print(*(s.for_destination(a) for a in sys.argv[1:]))\n"
            "s.close()")
    with simulated_network("198.18.0.0/24") as v4, simulated_network("2001:2::/120") as v6:
        found4 = v4.python("-c", code, "127.0.0.1", "198.18.0.5", "127.0.0.2", "::1", "198.18.0.9")
        found6 = v6.python("-c", code, "::1", "2001:2::5", "::1", "127.0.0.1")
    assert found4.stdout.split() == ["127.0.0.1", "198.19.255.1", "127.0.0.1", "::1", "198.19.255.1"]
    assert found6.stdout.split() == ["::1", "2001:2:0:ffff::1", "::1", "127.0.0.1"]
