"""``host_timeout`` (nmap's ``--host-timeout``) in the three port scanners: once a host's time
has passed, no more of its ports are probed, what was found before is kept, and one
warning names the host and how many ports were left.

Each scan runs in a network namespace of the test's own, at a rate that makes probing
every port take several times the limit, with a listener on a port probed first.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from pentora_plugins.kit.net.hosttime import HostClock

from tests.plugins.test_syn_scan import ports_of, raw_sockets_unavailable, scan_in_ns

PORTS = 1000  # at RATE a second: 10 s to probe them all
RATE = 100
LIMIT = "2s"
LEFT = re.compile(r"--host-timeout 2s passed for 1 host\(s\): 127\.0\.0\.1 \((\d+) port\(s\) left\)")


def left(stderr: str) -> int:
    found = LEFT.findall(stderr)
    assert len(found) == 1, stderr[-3000:]  # one warning, naming the host
    return int(found[0])


@pytest.mark.parametrize("module_type", ["connect_scanner", "syn_scanner"])
def test_tcp_scan_stops_probing_a_host_out_of_time_and_keeps_what_it_found(
        netns: Any, module_type: str) -> None:
    if module_type == "syn_scanner" and (reason := raw_sockets_unavailable()):
        pytest.skip(reason)
    out, stderr = scan_in_ns(netns, {"module_type": module_type, "tcp": [5], "config": {
        "ports": f"1-{PORTS}", "rate": RATE, "timeout": "300ms", "host_timeout": LIMIT}})
    assert ports_of(out["open_ports"]) == {5}
    skipped = left(stderr)
    assert 0 < skipped < PORTS
    # the ports it never got to are not called filtered
    assert len(out["port_states"]) <= PORTS - skipped


def test_without_a_limit_every_port_is_probed(netns: Any) -> None:
    out, stderr = scan_in_ns(netns, {"module_type": "connect_scanner", "tcp": [5, 900], "config": {
        "ports": "1-1000", "rate": 0, "timeout": "300ms"}})
    assert ports_of(out["open_ports"]) == {5, 900}
    assert "--host-timeout" not in stderr


def test_udp_scan_stops_probing_a_host_out_of_time(netns: Any) -> None:
    out, stderr = scan_in_ns(netns, {"module_type": "udp_scanner", "udp": {"7": "6869"}, "config": {
        "ports": "1-300", "rate": 50, "timeout": "300ms", "retries": 0, "host_timeout": "1s"}})
    assert ports_of(out["open_ports"]) == {7}, stderr[-3000:]
    found = re.findall(r"--host-timeout 1s passed for 1 host\(s\): 127\.0\.0\.1 \((\d+) port\(s\) left\)",
                       stderr)
    assert len(found) == 1 and 0 < int(found[0]) < 300, stderr[-3000:]


def test_host_clock_starts_at_the_first_probe_and_counts_what_it_leaves() -> None:
    now = [100.0]
    clock = HostClock(2, clock=lambda: now[0])
    items = [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("b", 2)]
    admitted = []
    for item in clock.admit(items):
        admitted.append(item)
        if item == ("b", 1):
            now[0] += 2.5  # a's clock started at 100, b's at 100 too: both out of time now
    assert admitted == [("a", 1), ("a", 2), ("b", 1)]
    assert clock.skipped == {"a": 1, "b": 1} and clock.total == 2
    line = clock.summary("x_scanner")
    assert line is not None and "2 host(s)" in line and "a (1 port(s) left)" in line


def test_no_limit_admits_everything_and_says_nothing() -> None:
    clock = HostClock(0)
    assert not clock
    assert list(clock.admit([("a", 1), ("a", 2)])) == [("a", 1), ("a", 2)]
    assert not clock.expired("a") and clock.summary("x") is None
