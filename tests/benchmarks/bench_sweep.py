"""Benchmark: a sweep of a simulated /16, pentora against masscan, zmap and nmap.

Not a test: run it as root and read the table::

    .venv/bin/python tests/benchmarks/bench_sweep.py [--quick] [--prefix CIDR]
        [--masscan-rates 25000,50000,100000,200000] [--zmap-rates ...] [--nmap-rates ...]
        [--shards N]

What runs. ``pentora.testing.simulated_network(PREFIX, ports=(22, 80, 443))``: two
network namespaces made for the run (and deleted at the end) joined by a veth pair,
``sim0`` on the scanner's side, ``sim1`` on the target's; the target answers for every
address of 198.18.0.0/16 with listeners that accept and close on ports 22, 80 and 443
and a reset on every other port. That is 196,608 open ports, the true count every tool is
held to. Every tool runs in the scanner namespace; no packet leaves the two namespaces.
``--quick`` sweeps 198.18.0.0/20 (12,288 open ports) with fewer rates; ``--prefix``
picks any prefix inside 198.18.0.0/15 (the smoke test uses a /24).

The tools, each a whole process timed from start to exit (start-up, waits and writing
its output included), its output file counted:

* ``pentora scan -t PREFIX -p 22,80,443 -sS -Pn``: the real CLI, the ``port-scan``
  profile with its defaults (``rate`` 0: unlimited, 1 s timeout, 1 retry), no host
  discovery; and the same without ``-Pn`` (discovery first, as a user's first sweep runs).
  Output ``-o FILE.jsonl``, ``--no-store``.
* ``masscan`` 1.3.2 (Debian): ``--rate`` swept. It sends from its own stack on ``sim0``
  (``--adapter-ip`` the scanner's address, ``--router-mac`` that of ``sim1``, found in
  the namespace) from source port 61000. The scanner's kernel knows no such connection
  and resets each answered handshake: harmless here, the SYN-ACK has been counted by
  then. ``--wait 1``: masscan's own default waits 10 s for late answers; 1 s is
  pentora's timeout. Output ``-oL``. While it runs, the far end sends the scanner a
  datagram 20 times a second, as background traffic: masscan's receive thread notices
  that it must exit only when a packet arrives, and on a link gone silent it can wait up
  to masscan's 60 s forced exit instead.
* ``zmap`` 2.1.1 (Debian): one port a run (the multi-port mode came with zmap 3), so one
  run per port, times added and results joined. ``-r`` (packets a second) swept; ``-i
  sim0 -G MAC -S ADDRESS`` as for masscan; ``-c 1``: a 1 s cool-down instead of 8; ``-b``
  an empty blocklist, because zmap's default one excludes 198.18.0.0/15 (RFC 2544, the
  benchmarking range this network lives in). zmap's default output filter keeps each
  first SYN-ACK only.
* ``pentora scan ... -Pn --shard K/N`` for K = 1..N (``--shards N``, 2 unless given),
  one after the other: each shard's time over the unsharded ``-Pn`` sweep's, and the
  union of the shards' open ports against the true set.
* ``nmap -sS --min-rate R -p 22,80,443 -n -Pn PREFIX -oX FILE``: rates swept.

Each peer's best run is the one that found the most open ports (ties: the fastest).
Printed for every run: the wall time, the open ports found out of the true count (and
%), false opens (an address or port the network does not open), ``link rx`` (the packets
``sim0`` received during the run: every probed port answers, so about one a probe; more
than the tool found means the answers arrived and the tool lost them), and pentora's time
over the run's (``-Pn`` and with discovery): below 1, pentora is faster. One run of each, so a
busy moment of the machine shows: read the ratios, not the seconds. The goal line,
printed PASS/FAIL and never asserted: pentora ``-Pn`` finds 100% in at most 1.0 times
masscan's time at masscan's most accurate rate.

masscan, zmap and nmap are Debian's packages (``apt-get install masscan zmap nmap``); a
missing one is said and left out. Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PORTS = (22, 80, 443)
PORT_LIST = ",".join(map(str, PORTS))
PREFIX, QUICK_PREFIX = "198.18.0.0/16", "198.18.0.0/20"
RATES = {"masscan": [25_000, 50_000, 100_000, 200_000], "zmap": [25_000, 50_000, 100_000, 200_000],
         "nmap": [25_000, 50_000, 100_000]}
QUICK_RATES = {"masscan": [50_000, 100_000], "zmap": [50_000, 100_000], "nmap": [50_000]}
# masscan's and zmap's source port: one the scanner's kernel has no socket on
SOURCE_PORT = 61000
# a hang guard per run, not a measure: the slowest peer at its lowest rate takes well under it
RUN_TIMEOUT = 900

Pairs = set[tuple[str, int]]

# Runs on the far end: a UDP datagram to the scanner 20 times a second until its stdin
# closes, then prints how many it sent (the system may have no ping command).
_TICKER = """
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = 0
while not select.select([sys.stdin], [], [], 0.05)[0]:
    s.sendto(b"tick", (sys.argv[1], 9))
    sent += 1
print(sent)
"""


@dataclass
class Run:
    name: str
    wall: float = 0.0
    found: Pairs = field(default_factory=set)
    error: str | None = None
    # packets the scanner's side of the link received during the run: one a probe here,
    # since every probed port answers; more than the tool found means the tool lost some
    received: int = 0
    background: int = 0  # packets of background_traffic() among them


@dataclass
class Net:
    """What the tools need of the simulated network: the namespace's command prefix, its
    interface, its address and the MAC of the far end of the link; ``target_cmd`` runs a
    command on the far end."""

    prefix: str
    cmd: Callable[..., list[str]]
    target_cmd: Callable[..., list[str]]
    interface: str
    address: str
    router_mac: str

    def rx_packets(self) -> int:
        path = f"/sys/class/net/{self.interface}/statistics/rx_packets"
        return int(subprocess.run(self.cmd("cat", path), capture_output=True, text=True,
                                  check=True).stdout)

    def measured(self, runner: Callable[..., Run], *args: object) -> Run:
        before = self.rx_packets()
        run = runner(self, *args)
        run.received = self.rx_packets() - before - run.background
        return run

    @contextmanager
    def background_traffic(self, run: Run) -> Iterator[None]:
        """A few packets a second from the far end for as long as the block runs: the
        background traffic every real network has. masscan's receive thread sees that it
        must exit only when a packet wakes it; on a link that falls silent once the
        targets have answered it sleeps on until masscan's 60 s forced exit, a delay no
        real network would add. They are taken off the run's ``link rx``."""
        ticker = subprocess.Popen(self.target_cmd(sys.executable, "-c", _TICKER, self.address),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            yield
        finally:
            out, _ = ticker.communicate(timeout=10)  # closing its stdin stops it
            run.background = int(out.strip() or 0)


def pentora_command() -> list[str]:
    """The installed console script beside this interpreter, as a user runs it."""
    script = Path(sys.executable).with_name("pentora")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pentora"]


def timed(name: str, argv: list[str]) -> tuple[Run, subprocess.CompletedProcess[str] | None]:
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        return Run(name, time.perf_counter() - start, error=f"no exit within {RUN_TIMEOUT} s"), None
    run = Run(name, time.perf_counter() - start)
    if done.returncode != 0:
        run.error = f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
    return run, done


def run_pentora(net: Net, tmp: Path, assume_up: bool, shard: str | None = None) -> Run:
    out = tmp / "pentora.jsonl"
    out.unlink(missing_ok=True)
    argv = [*pentora_command(), "scan", "-t", net.prefix, "-p", PORT_LIST, "-sS",
            *(["-Pn"] if assume_up else []), *(["--shard", shard] if shard else []),
            "-o", str(out), "--no-store", "-q"]
    name = "pentora -sS -Pn" if assume_up else "pentora -sS (discovery first)"
    run, _ = timed(f"{name} --shard {shard}" if shard else name, net.cmd(*argv))
    if run.error is None:
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("kind") == "port" and rec.get("state") == "open" and rec.get("protocol") == "tcp":
                run.found.add((rec["host"], rec["port"]))
    return run


def run_masscan(net: Net, tmp: Path, rate: int) -> Run:
    out = tmp / "masscan.txt"
    out.unlink(missing_ok=True)
    argv = ["masscan", net.prefix, f"-p{PORT_LIST}", "--rate", str(rate), "--wait", "1",
            "--adapter", net.interface, "--adapter-ip", net.address,
            "--adapter-port", str(SOURCE_PORT), "--router-mac", net.router_mac, "-oL", str(out)]
    run = Run(f"masscan --rate {rate}")
    with net.background_traffic(run):
        timed_run, _ = timed(run.name, net.cmd(*argv))
    run.wall, run.error = timed_run.wall, timed_run.error
    if run.error is None:
        # -oL lines: "open tcp PORT ADDRESS TIMESTAMP"; "#" lines are comments
        for line in out.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[0] == "open":
                run.found.add((fields[3], int(fields[2])))
    return run


def run_zmap(net: Net, tmp: Path, rate: int) -> Run:
    blocklist = tmp / "zmap-blocklist.conf"
    blocklist.write_text("")
    total = Run(f"zmap -r {rate} (a run per port)")
    for port in PORTS:
        out = tmp / f"zmap-{port}.txt"
        out.unlink(missing_ok=True)
        argv = ["zmap", "-p", str(port), "-r", str(rate), "-c", "1", "-i", net.interface,
                "-G", net.router_mac, "-S", net.address, "-s", str(SOURCE_PORT),
                "-b", str(blocklist), "-q", "-o", str(out), net.prefix]
        run, _ = timed(total.name, net.cmd(*argv))
        total.wall += run.wall
        if run.error is not None:
            total.error = f"port {port}: {run.error}"
            return total
        total.found |= {(a, port) for a in out.read_text().split()}
    return total


def run_nmap(net: Net, tmp: Path, rate: int) -> Run:
    out = tmp / "nmap.xml"
    out.unlink(missing_ok=True)
    argv = ["nmap", "-sS", "--min-rate", str(rate), "-p", PORT_LIST, "-n", "-Pn", net.prefix,
            "-oX", str(out)]
    run, _ = timed(f"nmap -sS --min-rate {rate}", net.cmd(*argv))
    if run.error is None:
        for host in ET.parse(out).getroot().iter("host"):
            address = host.find("address")
            for port in host.iter("port"):
                state = port.find("state")
                if address is not None and state is not None and state.get("state") == "open":
                    run.found.add((address.get("addr", ""), int(port.get("portid", 0))))
    return run


PEERS = {"masscan": run_masscan, "zmap": run_zmap, "nmap": run_nmap}


def best(runs: list[Run]) -> Run | None:
    """The run that found the most open ports; of those, the fastest."""
    good = [r for r in runs if r.error is None]
    return min(good, key=lambda r: (-len(r.found), r.wall)) if good else None


def ratio(ours: Run | None, theirs: Run) -> str:
    if ours is None or ours.error is not None or theirs.error is not None or theirs.wall == 0:
        return "-"
    return f"{ours.wall / theirs.wall:.2f}"


def row(run: Run, expected: Pairs, fast: Run | None, full: Run | None) -> str:
    if run.error is not None:
        return f"  {run.name:<34} failed after {run.wall:.2f} s: {run.error}"
    right = len(run.found & expected)
    # rounded down: 196,596 of 196,608 must not read 100.0%
    share = math.floor(10_000 * right / len(expected)) / 100
    false = len(run.found - expected)
    return (f"  {run.name:<34} {run.wall:>8.2f} {right:>9,}/{len(expected):,} {share:>6.2f}% "
            f"{false:>6,} {run.received:>9,} {ratio(fast, run):>8} {ratio(full, run):>8}")


def header() -> str:
    return (f"  {'tool':<34} {'wall s':>8} {'open found':>17} {'%':>7} {'false':>6} "
            f"{'link rx':>9} {'-Pn/it':>8} {'full/it':>8}")


def goal(fast: Run, masscan: Run | None, expected: Pairs) -> str:
    what = "goal: pentora -sS -Pn finds 100% in <= 1.0x masscan's time at its most accurate rate"
    if masscan is None:
        return f"{what}: masscan did not run, nothing to compare"
    if fast.error is not None:
        return f"{what}: FAIL (pentora failed: {fast.error})"
    complete = fast.found == expected
    r = fast.wall / masscan.wall
    verdict = "PASS" if complete and r <= 1.0 else "FAIL"
    return (f"{what} ({masscan.name}, {len(masscan.found & expected):,} found): "
            f"{len(fast.found & expected):,}/{len(expected):,}, {len(fast.found - expected)} false, "
            f"{r:.2f}x: {verdict}")


def sharded(fast: Run, shards: list[Run], expected: Pairs) -> list[str]:
    """The shards of the ``-Pn`` sweep, run one after the other: each one's time over the
    unsharded sweep's (1/N is the goal: a shard walks its own probes only), and their
    union against the true set."""
    n = len(shards)
    if any(r.error is not None for r in shards):
        return [row(r, expected, fast, None) for r in shards]
    lines = [f"sharded -Pn, {n} shards one after the other (each shard's time over the "
             f"unsharded -Pn sweep's; 1/{n} = {1 / n:.2f} would be perfect):"]
    for r in shards:
        share = f"{r.wall / fast.wall:.2f}" if fast.error is None and fast.wall else "-"
        lines.append(f"  {r.name:<34} {r.wall:>8.2f} s {len(r.found & expected):>9,} open  {share:>6}")
    union = set().union(*(r.found for r in shards))
    overlap = sum(len(r.found) for r in shards) - len(union)
    lines.append(f"  union: {len(union & expected):,}/{len(expected):,} open, "
                 f"{len(union - expected)} false, {overlap} found by two shards")
    return lines


def router_mac(target_run: Callable[..., subprocess.CompletedProcess[str]]) -> str:
    return target_run("cat", "/sys/class/net/sim1/address").stdout.strip()


def sweep(prefix: str, rates: dict[str, list[int]], shards: int = 2) -> int:
    from pentora.testing import netns_unavailable, simulated_network

    reason = netns_unavailable()
    if reason:
        print(f"bench_sweep: cannot run: {reason}")
        return 1
    peers = {}
    for tool, runner in PEERS.items():
        if shutil.which(tool) is None:
            print(f"{tool} is missing (apt-get install {tool}): left out")
        elif rates.get(tool):
            peers[tool] = runner
    with simulated_network(prefix, ports=PORTS) as sim, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        net = Net(sim.prefix, lambda *argv: ["ip", "netns", "exec", sim.name, *argv],
                  lambda *argv: ["ip", "netns", "exec", sim.target.name, *argv], "sim0",
                  sim.scanner_address, router_mac(sim.target.run))
        expected = sim.expected()
        size = ipaddress.ip_network(sim.prefix).num_addresses
        print(f"sweep of {sim.prefix}: {size:,} addresses x ports {PORT_LIST} = "
              f"{len(expected):,} open ports (simulated network, router MAC {net.router_mac})")
        fast = net.measured(run_pentora, tmp, True)
        full = net.measured(run_pentora, tmp, False)
        shard_runs = [net.measured(run_pentora, tmp, True, f"{k}/{shards}") for k in range(1, shards + 1)]
        runs = {tool: [net.measured(runner, tmp, rate) for rate in rates[tool]]
                for tool, runner in peers.items()}
    print(header())
    print(row(fast, expected, fast, full))
    print(row(full, expected, fast, full))
    for tool_runs in runs.values():
        for run in tool_runs:
            print(row(run, expected, fast, full))
    print("best of each peer (most found; ties: fastest):")
    for tool_runs in runs.values():
        top = best(tool_runs)
        if top is not None:
            print(row(top, expected, fast, full))
    print(goal(fast, best(runs.get("masscan", [])), expected))
    if shard_runs:
        print("\n".join(sharded(fast, shard_runs, expected)))
    return 0


def rate_list(text: str) -> list[int]:
    try:
        rates = [int(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give packets a second, comma-separated, "
                                         "such as 25000,50000") from None
    if any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError(f"{text!r}: every rate must be above 0")
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"sweep {QUICK_PREFIX} with fewer rates instead of {PREFIX}")
    parser.add_argument("--prefix", help="the simulated prefix, inside 198.18.0.0/15")
    for tool in PEERS:
        parser.add_argument(f"--{tool}-rates", type=rate_list, metavar="R,R",
                            help=f"{tool}'s rates to sweep (packets a second); empty: leave it out")
    parser.add_argument("--shards", type=int, default=2, metavar="N",
                        help="also sweep -Pn in N shards, one after the other (0: leave out)")
    args = parser.parse_args()
    if args.shards < 0:
        parser.error(f"--shards {args.shards}: give a number of shards, or 0 to leave them out")
    rates = dict(QUICK_RATES if args.quick else RATES)
    for tool in PEERS:
        given = getattr(args, f"{tool}_rates")
        if given is not None:
            rates[tool] = given
    prefix = args.prefix or (QUICK_PREFIX if args.quick else PREFIX)
    try:
        network = ipaddress.ip_network(prefix)
    except ValueError as e:
        parser.error(f"--prefix {prefix}: not a network ({e}); give one such as 198.18.0.0/20")
    if network.version != 4 or not network.subnet_of(ipaddress.IPv4Network("198.18.0.0/15")):
        parser.error(f"--prefix {prefix}: the simulated network lives in 198.18.0.0/15; "
                     "give a prefix inside it, such as 198.18.0.0/20")
    return sweep(str(network), rates, args.shards)


if __name__ == "__main__":
    sys.exit(main())
