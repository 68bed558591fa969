"""Benchmark: pentora's port scanners against nmap, inside a fresh network namespace.

Not a test: run it as root and read the table::

    .venv/bin/python tests/benchmarks/bench_portscan.py [--repeat 3] [--profile]

What runs. A network namespace made for the run (``ip netns add``, loopback up, deleted
at the end), so that only the benchmark's own listeners answer, and every scanner runs
inside it (``ip netns exec``). Listeners come from ``tests/plugins/_listen.py``.

* ``65,535 ports``: every TCP port of 127.0.0.1, ten of them listening.
* ``10,000 hosts x 3``: ports 22, 80 and 443 of the first 10,000 addresses of
  127.1.0.0/18, five of those listening. A fresh namespace's loopback carries
  127.0.0.0/8, which answers for every 127.x address; the benchmark checks that (and
  adds 127.1.0.0/18 to ``lo`` if it did not).

Pairs, run one after the other, order alternating each round: ``connect_scanner``
against ``nmap -sT``, and ``syn_scanner`` against ``nmap -sS`` (when the ``syn_scanner``
module type is registered; else the table says it is missing). nmap is Debian's; the
benchmark installs it with apt-get when it is absent, or says it is missing. nmap runs
twice per round: ``-n -Pn -T4`` (its usual fast timing) and the same with
``--min-rate 50000 --max-retries 1`` (as fast as it goes on loopback). Each pentora
scanner runs with ``rate: 0`` (unlimited), ``timeout: 1s``, ``retries: 1``.

Times: wall time of the whole process for every scanner, pentora's Python start-up and
imports included (a child process runs this file with ``--inner``: about 0.3-0.4 s before
the scan starts, against nmap's 0.06 s); pentora's own scan time (``Orchestrator.execute()``)
is printed beside it. Best of ``--repeat`` rounds. The first ratio is pentora's wall time
over that of the faster nmap variant whose open set was right; the second is pentora's
scan time over that same nmap wall time.

Targets, printed as PASS/MISS: the same open set as nmap, and a wall-time
ratio (the first, start-up included) of at most 1.0.

The whole command, too: ``pentora scan -t 127.0.0.1 -p - -sS -Pn`` (the real CLI, the
``port-scan`` profile with its defaults, output ``-o FILE.jsonl``, ``--no-store``) against
``nmap -sS -p- 127.0.0.1``, best of ``--repeat``, its wall time over that of the faster
``nmap -sS`` variant whose open set was right. Target: at most 0.7. Beside it, the floor
of such a scan on this machine (``_loopback_floor.py``): a Python start-up with what a
scanning command must import, plus the longer of sending the 65,535 SYNs from one process
and reading and checking the replies, over nmap's time. ``--profile`` also prints a
pyinstrument profile of one connect scan of the 65,535 ports.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LISTEN = Path(__file__).resolve().parent.parent / "plugins" / "_listen.py"
FLOOR = Path(__file__).resolve().parent / "_loopback_floor.py"
ALL_PORTS_OPEN = [22, 80, 443, 3306, 5432, 8080, 33000, 40001, 50505, 65535]
HOSTS = [str(ipaddress.IPv4Address("127.1.0.0") + i) for i in range(10_000)]
HOST_PORTS = [22, 80, 443]
HOSTS_OPEN = [("127.1.0.1", 22), ("127.1.0.2", 80), ("127.1.9.9", 443), ("127.1.20.20", 22),
              (HOSTS[-1], 80)]
NMAP_FAST = ["--min-rate", "50000", "--max-retries", "1"]
SCANNERS = {"connect_scanner": ("portscan", "-sT"), "syn_scanner": ("portscan", "-sS")}
CLI_GOAL = 0.7  # pentora scan -sS -p- over nmap -sS -p-, whole processes both


# -- inside the namespace: one pentora scan, timed ------------------------------------------


def inner(args: dict[str, Any]) -> None:
    """Run one scan with a module type and print its open set and scan time as JSON."""
    import importlib

    from pentora_plugins.kit.records import Target

    from pentora import DagBuilder, Orchestrator

    plugin = importlib.import_module(f"pentora_plugins.{SCANNERS[args['scanner']][0]}")
    orch = Orchestrator(plugins=[plugin], autoload=False)
    config = {"input": "targets", "ports": args["ports"], "rate": 0, "timeout": "1s", "retries": 1}
    orch.load_dag(DagBuilder().add_node("scan", args["scanner"], config=config).build())
    targets = [Target(address=h) for h in args["hosts"]]
    orch.validate(initial_keys=["targets"])
    profiler = None
    if args.get("profile"):
        from pyinstrument import Profiler
        profiler = Profiler(interval=0.0005)
        profiler.start()
    start = time.perf_counter()
    result = orch.execute(initial={"targets": targets})
    elapsed = time.perf_counter() - start
    if profiler is not None:
        profiler.stop()
        sys.stderr.write(profiler.output_text(color=False, show_all=False))
    found = [[p.host, p.port] for p in result.context.get("open_ports", [])]
    print(json.dumps({"ok": result.ok, "error": result.nodes["scan"].error, "open": found,
                      "scan_s": elapsed}))


# -- outside: namespace, listeners, runs ----------------------------------------------------


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a network namespace (ip netns add)"
    if shutil.which("ip") is None:
        return "the 'ip' command (Debian's iproute2) is not installed"
    return None


def ensure_nmap() -> str | None:
    """Path of nmap, installed with apt-get if absent; None if that is not possible."""
    if shutil.which("nmap") is None and shutil.which("apt-get") is not None:
        print("nmap is absent: installing Debian's nmap with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nmap"], env=env, capture_output=True)
    return shutil.which("nmap")


class Namespace:
    def __init__(self) -> None:
        self.name = f"pentora-bench-{uuid.uuid4().hex[:8]}"

    def cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*argv), capture_output=True, text=True, **kw)


@contextmanager
def namespace() -> Iterator[Namespace]:
    ns = Namespace()
    subprocess.run(["ip", "netns", "add", ns.name], check=True)
    try:
        ns.run("ip", "link", "set", "lo", "up", check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)


@contextmanager
def listeners(ns: Namespace, addresses: list[str]) -> Iterator[None]:
    proc = subprocess.Popen(ns.cmd(sys.executable, str(LISTEN), "--open", *addresses),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the listeners did not start")
        yield
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=10)


def loopback_answers(ns: Namespace, address: str) -> bool:
    code = (f"import socket; s = socket.socket(); s.bind(({address!r}, 0)); s.listen(); "
            "socket.create_connection(s.getsockname(), timeout=2)")
    return ns.run(sys.executable, "-c", code).returncode == 0


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    return time.perf_counter() - start, done


def run_nmap(ns: Namespace, nmap: str, flag: str, extra: list[str], hosts: list[str],
             ports: str, tmp: Path) -> dict[str, Any]:
    listing = tmp / "hosts.txt"
    listing.write_text("\n".join(hosts) + "\n")
    argv = ns.cmd(nmap, "-n", "-Pn", flag, "-T4", *extra, "-p", ports, "-iL", str(listing), "-oX", "-")
    wall, done = timed(argv)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:], "wall": wall}
    found = []
    for host in ET.fromstring(done.stdout).iter("host"):
        address = host.find("address").get("addr")  # type: ignore[union-attr]
        for port in host.iter("port"):
            state = port.find("state")
            if state is not None and state.get("state") == "open":
                found.append((address, int(port.get("portid", 0))))
    return {"open": sorted(found), "wall": wall}


def run_pentora(ns: Namespace, scanner: str, hosts: list[str], ports: str, tmp: Path,
                profile: bool = False) -> dict[str, Any]:
    spec = tmp / "inner.json"
    spec.write_text(json.dumps({"scanner": scanner, "hosts": hosts, "ports": ports,
                                "profile": profile}))
    wall, done = timed(ns.cmd(sys.executable, __file__, "--inner", str(spec)))
    if profile:
        sys.stdout.write(done.stderr)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-300:], "wall": wall}
    out = json.loads(done.stdout.splitlines()[-1])
    if not out["ok"]:
        return {"error": out["error"], "wall": wall}
    return {"open": sorted((h, p) for h, p in out["open"]), "wall": wall, "scan": out["scan_s"]}


def run_cli(ns: Namespace, tmp: Path) -> dict[str, Any]:
    """``pentora scan -sS -Pn`` of every port of 127.0.0.1, as a user types it."""
    out = tmp / "cli.jsonl"
    script = Path(sys.executable).with_name("pentora")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pentora"]
    wall, done = timed(ns.cmd(*command, "scan", "-t", "127.0.0.1", "-p", "-", "-sS", "-Pn",
                              "-o", str(out), "--no-store", "-q"))
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip()[-300:], "wall": wall}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    found = sorted((r["host"], r["port"]) for r in records
                   if r.get("kind") == "port" and r.get("state") == "open")
    return {"open": found, "wall": wall}


def loopback_floor(ns: Namespace, repeat: int) -> dict[str, Any] | None:
    """The least each part of a whole-process scan of 65,535 ports takes here, best of
    ``repeat`` (``_loopback_floor.py``); None if it could not be measured."""
    runs = []
    for _ in range(repeat):
        done = ns.run(sys.executable, str(FLOOR))
        if done.returncode == 0:
            runs.append(json.loads(done.stdout.splitlines()[-1]))
    if not runs:
        return None
    return {key: min(r[key] for r in runs) for key in runs[0]}


def print_cli(cli: dict[str, Any], rows: list[dict[str, Any]], expected: list[tuple[str, int]]) -> None:
    nmaps = [r for r in rows if r["scanner"].startswith("nmap -sS") and r.get("right")]
    what = "pentora scan -t 127.0.0.1 -p - -sS -Pn (whole process) over nmap -sS -p-"
    if "error" in cli:
        print(f"\n{what}: failed: {cli['error']}")
        return
    right = cli["open"] == expected
    if not nmaps:
        print(f"\n{what}: {cli['wall']:.2f} s, right open set: {right}; no nmap -sS to compare")
        return
    reference = min(nmaps, key=lambda r: r["wall"])
    ratio = cli["wall"] / reference["wall"]
    verdict = "PASS" if right and ratio <= CLI_GOAL else "MISS"
    print(f"\n{what}: {cli['wall']:.2f} s / {reference['wall']:.2f} s ({reference['scanner']}) = "
          f"{ratio:.2f}, right open set: {'yes' if right else 'NO'}; goal <= {CLI_GOAL}: {verdict}")
    floor = cli.get("floor")
    if floor:
        least = floor["startup"] + max(floor["send"], floor["receive"])
        print(f"  the floor here (best of the rounds, {floor['replies']:,} replies): start-up "
              f"{floor['startup']:.3f} s (python, loguru, gevent patched) + the longer of sending "
              f"{floor['send']:.3f} s (one process, the kernel answering) and receiving "
              f"{floor['receive']:.3f} s (read and checked) = {least:.2f} s = "
              f"{least / reference['wall']:.2f} of nmap's time; pentora above it: "
              f"{cli['wall'] - least:.2f} s")


def registered(scanner: str) -> str | None:
    """None if the module type is there, else why not."""
    import importlib

    from pentora import Orchestrator
    try:
        plugin = importlib.import_module(f"pentora_plugins.{SCANNERS[scanner][0]}")
    except Exception as e:  # noqa: BLE001 - a half-written plugin must not stop the benchmark
        return f"{type(e).__name__}: {e}"
    try:
        orch = Orchestrator(plugins=[plugin], autoload=False)
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    return None if scanner in orch.registry.modules else "module type not registered"


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[-1]
    top = min(good, key=lambda r: r["wall"])
    return {**top, "same_every_run": all(r["open"] == good[0]["open"] for r in good)}


def run_case(ns: Namespace, nmap: str | None, scanners: list[str], hosts: list[str], ports: str,
             expected: list[tuple[str, int]], repeat: int, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for scanner in scanners:
        flag = SCANNERS[scanner][1]
        variants = {f"nmap {flag} -T4": [], f"nmap {flag} -T4 " + " ".join(NMAP_FAST): []}
        ours: list[dict[str, Any]] = []
        for round_ in range(repeat):
            order = ["pentora", "nmap"] if round_ % 2 else ["nmap", "pentora"]
            for who in order:
                if who == "pentora":
                    ours.append(run_pentora(ns, scanner, hosts, ports, tmp))
                elif nmap is not None:
                    for name, extra in zip(variants, ([], NMAP_FAST)):
                        variants[name].append(run_nmap(ns, nmap, flag, extra, hosts, ports, tmp))
        rows += pair_rows(scanner, variants, best(ours), expected)
    return rows


def pair_rows(scanner: str, variants: dict[str, list[dict[str, Any]]], ours: dict[str, Any],
              expected: list[tuple[str, int]]) -> list[dict[str, Any]]:
    rows = []
    reference = None
    for name, runs in variants.items():
        if not runs:
            continue
        b = best(runs)
        right = b.get("open") == expected
        rows.append({"scanner": name, **b, "right": right})
        if right and (reference is None or b["wall"] < reference):
            reference = b["wall"]
    ok = reference and "error" not in ours
    ratio = ours["wall"] / reference if ok else None
    scan_ratio = ours["scan"] / reference if ok else None
    nmap_open = next((r.get("open") for r in rows if r["right"]), None)
    rows.append({"scanner": scanner, **ours, "ratio": ratio, "scan_ratio": scan_ratio,
                 "same_as_nmap": ours.get("open") == nmap_open if nmap_open is not None else None,
                 "right": ours.get("open") == expected})
    return rows


def print_table(case: str, probes: int, rows: list[dict[str, Any]]) -> None:
    print(f"\n{case} ({probes:,} probes)")
    print(f"  {'scanner':<46} {'wall s':>7} {'ratio':>6} {'scan s':>7} {'ratio':>6}  same open set as nmap")
    for r in rows:
        if "error" in r:
            print(f"  {r['scanner']:<46} failed: {r['error']}")
            continue
        scan, ratio, scan_ratio = (f"{r[k]:.2f}" if r.get(k) is not None else "-"
                                   for k in ("scan", "ratio", "scan_ratio"))
        if "same_as_nmap" in r:
            same = {True: "yes", False: "NO", None: "no nmap to compare"}[r["same_as_nmap"]]
            verdict = "PASS" if r["same_as_nmap"] and r["ratio"] is not None and r["ratio"] <= 1.0 else "MISS"
            same = f"{same}  {verdict}"
        else:
            same = "(reference)" if r["right"] else "(reference, wrong open set: not used)"
        print(f"  {r['scanner']:<46} {r['wall']:>7.2f} {ratio:>6} {scan:>7} {scan_ratio:>6}  {same}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds per pair (best is kept)")
    parser.add_argument("--profile", action="store_true", help="print a profile of one connect scan")
    parser.add_argument("--inner", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(json.loads(Path(args.inner).read_text()))
        return 0
    reason = why_not()
    if reason:
        print(f"bench_portscan: cannot run: {reason}")
        return 1
    nmap = ensure_nmap()
    if nmap is None:
        print("nmap is missing (no apt-get to install it): pentora's times are shown alone")
    scanners = []
    for scanner in SCANNERS:
        missing = registered(scanner)
        if missing:
            print(f"{scanner} is missing ({missing}): its pair is left out")
        else:
            scanners.append(scanner)
    with namespace() as ns, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if loopback_answers(ns, HOSTS[-1]):
            print(f"the namespace's 127.0.0.0/8 on lo answers for {HOSTS[-1]}: no address added")
        else:
            print("127.0.0.0/8 on lo does not answer for 127.1.x here: adding 127.1.0.0/18 to lo")
            ns.run("ip", "addr", "add", "127.1.0.0/18", "dev", "lo", check=True)
        with listeners(ns, [f"127.0.0.1:{p}" for p in ALL_PORTS_OPEN]
                       + [f"{h}:{p}" for h, p in HOSTS_OPEN]):
            if args.profile and "connect_scanner" in scanners:
                print("pyinstrument profile of one connect scan of 65,535 ports:")
                run_pentora(ns, "connect_scanner", ["127.0.0.1"], "-", tmp, profile=True)
            every_port = [("127.0.0.1", p) for p in ALL_PORTS_OPEN]
            rows = run_case(ns, nmap, scanners, ["127.0.0.1"], "1-65535", every_port, args.repeat, tmp)
            print_table("65,535 ports of 127.0.0.1, 10 listening", 65_535, rows)
            if "syn_scanner" in scanners:
                cli = best([run_cli(ns, tmp) for _ in range(args.repeat)])
                cli["floor"] = loopback_floor(ns, args.repeat)
                print_cli(cli, rows, every_port)
            rows = run_case(ns, nmap, scanners, HOSTS, ",".join(map(str, HOST_PORTS)),
                            sorted(HOSTS_OPEN), args.repeat, tmp)
            print_table("10,000 hosts of 127.1.0.0/18 x 3 ports, 5 listening", 30_000, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
