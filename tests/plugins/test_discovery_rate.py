"""Raw discovery's adaptive rate on the simulated network: replies the receiver drops
lower the rate and are probed again; replies the path loses are retried beyond
``retry`` while the answers suggest more are lost; either way every host is found once."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import SimNet, simulated_network
from tests.plugins.test_discovery_sweep import assert_exactly, probe_line, resolve_router
from tests.plugins.test_syn_scan import RUNNER, raw_sockets_unavailable


def discover(net: SimNet, module_type: str, config: dict[str, Any],
             **spec: Any) -> tuple[list[dict[str, Any]], str]:
    run = {"plugin": "pentora_plugins.discovery", "module_type": module_type, "prefix": net.prefix,
           "config": config, "keys": ["discovered_hosts"], **spec}
    proc = net.python(RUNNER, json.dumps(run), check=False, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed", (out, proc.stderr[-3000:])
    return out["discovered_hosts"], proc.stderr


@pytest.fixture
def slash22() -> Any:
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    with simulated_network("198.18.8.0/22") as net:
        resolve_router(net)
        yield net


@pytest.mark.parametrize(("module_type", "method", "config"), [
    ("icmp_discovery", "icmp", {}),
    ("tcp_probe_discovery", "tcp_probe", {"ports": [80]}),
])
def test_replies_the_receiver_drops_lower_the_rate_and_are_probed_again(
        slash22: SimNet, module_type: str, method: str, config: dict[str, Any]) -> None:
    # A receive buffer of a few dozen replies, and no rate limit: the first pass's
    # replies overflow it. No retry is configured: the drops alone earn the further tries.
    hosts, log = discover(slash22, module_type, {"mode": "raw", "timeout": "500ms", "retry": 0,
                                                  "rate": 0, **config}, recv_buffer=16384)
    assert_exactly(hosts, slash22.addresses(), method)
    dropped = re.search(rf"{module_type}: the receive buffer dropped (\d+) replies", log)
    assert dropped and int(dropped[1]) > 0, log[-3000:]
    assert re.search(rf"{module_type}: .*rate lowered to [\d,]+/s", log), log[-3000:]
    sent, up, silent = probe_line(log, module_type)
    assert (up, silent) == (1024, 0) and sent > 1024, log[-3000:]


def test_replies_the_path_loses_are_retried_until_every_host_is_found(slash22: SimNet) -> None:
    # 30% of the echo replies are lost on the way back, whatever the rate: two tries
    # would miss about 9% of the hosts (all 1,024 found: a chance of e^-96).
    slash22.target.run("iptables", "-A", "OUTPUT", "-p", "icmp", "--icmp-type", "echo-reply",
                       "-m", "statistic", "--mode", "random", "--probability", "0.3", "-j", "DROP")
    hosts, log = discover(slash22, "icmp_discovery", {"mode": "raw", "timeout": "300ms", "retry": 1})
    assert_exactly(hosts, slash22.addresses(), "icmp")
    sent, up, silent = probe_line(log, "icmp_discovery")
    assert (up, silent) == (1024, 0), log[-3000:]
    # every host's probe until one reply came back: about 1024 / 0.7
    assert 1024 * 1.25 < sent < 1024 * 1.7, log[-3000:]
    assert "the receive buffer dropped" not in log, log[-3000:]


def test_a_silent_network_gets_the_configured_tries_only(slash22: SimNet) -> None:
    slash22.target.run("iptables", "-A", "OUTPUT", "-p", "icmp", "--icmp-type", "echo-reply", "-j", "DROP")
    hosts, log = discover(slash22, "icmp_discovery", {"mode": "raw", "timeout": "200ms", "retry": 2,
                                                       "include_down": True})
    assert len(hosts) == 1024 and not any(h["alive"] for h in hosts)
    assert probe_line(log, "icmp_discovery") == (3 * 1024, 0, 1024), log[-3000:]


def test_a_discovery_only_scan_of_a_slash_16_lists_every_host_exactly_once(tmp_path: Path) -> None:
    # The whole command at the default rates, its store and JSONL output included.
    if reason := raw_sockets_unavailable():
        pytest.skip(reason)
    out = tmp_path / "sn.jsonl"
    with simulated_network("198.18.0.0/16") as net:
        proc = net.run(sys.executable, "-m", "pentora", "scan", "-t", net.prefix, "-sn", "-o", str(out),
                       "--store", str(tmp_path / "scans.db"), check=False, timeout=240)
        expected = set(net.addresses())
    assert proc.returncode == 0, proc.stderr[-3000:]
    hosts = Counter(r["address"] for r in map(json.loads, out.read_text().splitlines())
                    if r["kind"] == "host")
    assert len(expected) == 65536 and set(hosts) == expected, len(hosts)
    assert max(hosts.values()) == 1, hosts.most_common(3)
    assert "65536 host(s) up" in proc.stdout, proc.stdout[-2000:]
