"""``discovery_merger`` over a sweep's host lists: the same hosts as merged one by one,
with the event loop let run in between (the outputs, the store's writer, other nodes)."""

from __future__ import annotations

import gevent
from pentora_plugins.discovery.discovery_merger import MERGE_YIELD, _merge, merge_hosts
from pentora_plugins.kit.records import Host


def sweep(method: str, reason: str, n: int) -> list[Host]:
    return [Host(address=f"198.18.{i >> 8}.{i & 255}", alive=True, method=method, methods=[method],
                 latency_ms=float(i % 7), ttl=64, reason=reason) for i in range(n)]


def test_merging_a_sweeps_lists_lets_other_greenlets_run_and_merges_each_host_once() -> None:
    n = 2 * MERGE_YIELD
    icmp, tcp = sweep("icmp", "echo-reply", n), sweep("tcp_probe", "syn-ack", n)
    icmp.append(Host(address="198.19.0.1", method="icmp", methods=["icmp"]))  # in one list only
    ticks = 0

    def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            gevent.sleep(0)

    other = gevent.spawn(ticker)
    gevent.sleep(0)
    started = ticks
    try:
        merged = merge_hosts([icmp, tcp])
    finally:
        other.kill()
    # 2n + 1 hosts read, n + 1 merged: a yield every MERGE_YIELD of each
    assert ticks - started >= 5, ticks - started
    assert merged == [_merge([a, b]) for a, b in zip(icmp, tcp)] + [_merge([icmp[-1]])]
    assert {h.method for h in merged[:-1]} == {"icmp+tcp_probe"} and len(merged) == n + 1
