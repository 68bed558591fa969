"""Benchmark: how many ARP requests and neighbour solicitations ``arp_discovery`` sends a
second, unlimited (``rate`` 0), on a simulated Ethernet link.

Not a test: run it as root and read the figures::

    .venv/bin/python tests/benchmarks/bench_link.py [--arp-prefix CIDR] [--nd-prefix CIDR]
        [--runs N] [--json FILE] [--against FILE]

What runs. ``pentora.testing.simulated_link``: two network namespaces made for the run
(and deleted at the end) sharing one veth segment, the scanner's ``link0`` and 8 macvlan
hosts with MACs of their own. ``arp_discovery`` sweeps every address of ``--arp-prefix``
(default 198.18.0.0/18: 16,384 ARP requests) and then of ``--nd-prefix`` (default
2001:2:0:5::/114: 16,383 solicitations), one try each (``retry`` 0, ``timeout`` 50 ms),
in-process in the scanner namespace. Counted: the frames ``link0`` sent during the
node's run (its ``tx_packets``), over the node's time (targets read, routes looked up,
frames sent, the last wait); the rate while sending, where the sweep logs it; and the
hosts found. Unlimited and with no retry, some of the 8 can be missed: the hosts' side
drops broadcast and multicast frames that come faster than it takes them in (a macvlan
queues at most 1,000), and a sweep of 8 hosts has too few answers to see that loss.

``--json FILE`` writes the figures; ``--against FILE`` (figures of an earlier run, e.g.
of the code before a change) prints each rate's ratio to the earlier one. Importing this
module runs nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from pentora.testing import netns_unavailable, simulated_link

RUN_ONE = r"""
import json, sys, time
from gevent import monkey; monkey.patch_all()
from pentora._logging import configure; configure("INFO")  # the sweep's own rate line
import pentora_plugins.engine.modules, pentora_plugins.discovery
from pentora import DagBuilder, Orchestrator
from pentora_plugins.kit.records import Target
spec = json.loads(sys.argv[1])
import ipaddress
targets = [Target(str(a)) for a in ipaddress.ip_network(spec["prefix"])]
orch = Orchestrator(plugins=[pentora_plugins.discovery, pentora_plugins.engine], autoload=False)
dag = (DagBuilder()
       .add_node("targets", "set", config={"values": {"targets": targets}})
       .add_node("discover", "arp_discovery", ["targets"], config=spec["config"]).build())
orch.load_dag(dag)
def tx():
    with open("/sys/class/net/link0/statistics/tx_packets") as f:
        return int(f.read())
before, began = tx(), time.monotonic()
result = orch.execute()
took, frames = time.monotonic() - began, tx() - before
node = result.nodes["discover"]
hosts = result.context.get("discovered_hosts", [])
print(json.dumps({"status": node.status, "error": node.error, "frames": frames,
                  "seconds": took, "found": sum(1 for h in hosts if h.alive)}))
"""

CONFIG = {"timeout": "50ms", "retry": 0, "rate": 0}


def run(net: Any, prefix: str) -> dict[str, Any]:
    proc = net.python("-c", RUN_ONE, json.dumps({"prefix": prefix, "config": CONFIG}),
                      check=False, timeout=600)
    if proc.returncode:
        sys.exit(f"the sweep of {prefix} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["status"] != "completed":
        sys.exit(f"the sweep of {prefix} ended {out['status']}: {out['error']}")
    out["rate"] = out["frames"] / out["seconds"]
    sending = re.search(r"probes \(([\d,]+)/s while sending\)", proc.stderr)
    out["sending"] = int(sending[1].replace(",", "")) if sending else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arp-prefix", default="198.18.0.0/18")
    parser.add_argument("--nd-prefix", default="2001:2:0:5::/114")
    parser.add_argument("--runs", type=int, default=1, help="runs of each; the best is kept")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--against", type=Path, help="figures of an earlier run to compare with")
    args = parser.parse_args()
    if reason := netns_unavailable():
        sys.exit(f"bench_link needs network namespaces: {reason}")
    figures: dict[str, dict[str, Any]] = {}
    with simulated_link(args.arp_prefix, hosts=8, prefix6=args.nd_prefix) as net:
        for kind, prefix in (("arp", args.arp_prefix), ("nd", args.nd_prefix)):
            best = max((run(net, prefix) for _ in range(args.runs)), key=lambda r: r["rate"])
            figures[kind] = best
            print(f"{kind.upper():3} {prefix:20} {best['frames']:>7} frames in {best['seconds']:6.2f} s: "
                  f"{best['rate']:>9,.0f}/s, {best['found']}/8 hosts found" + (
                      f"; {best['sending']:,}/s while sending" if best["sending"] else ""))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    if args.against:
        earlier = json.loads(args.against.read_text())
        for kind, now in figures.items():
            if kind in earlier:
                print(f"{kind.upper()} rate now / earlier: {now['rate'] / earlier[kind]['rate']:.1f}x "
                      f"({now['rate']:,.0f}/s against {earlier[kind]['rate']:,.0f}/s)")


if __name__ == "__main__":
    main()
