"""Benchmark: what ``--progress`` costs a scan, on a pipe and on a terminal.

Not a test: run it and read the table::

    .venv/bin/python tests/benchmarks/bench_progress.py [--repeat 5] [--rate 0] [--ports 1-65535]

The peer is the same scan without ``--progress``: ``pentora scan --profile port-scan -t
127.0.0.1 --ports 1-65535 --no-store -q`` as a child process, then with ``--progress`` and
stderr on a pipe (plain lines), then with stdin, stdout and stderr on a pseudo-terminal
(the redrawn bar; this script reads it as a terminal would). ``--rate N`` limits the port
scanner to N probes a second, for a scan long enough for many redraws.

Measured: the CPU time (user + system) of the child, Python start-up and imports
included, median of ``--repeat`` runs; on a machine other processes also use, CPU time
varies far less than wall time, which is printed beside it. The target: the bar costs at
most 10% more CPU than no progress.
"""

from __future__ import annotations

import argparse
import os
import pty
import resource
import select
import statistics
import subprocess
import sys
import time

TARGET = 1.10


def run(argv: list[str], terminal: bool) -> tuple[float, float]:
    """CPU seconds and wall seconds of one child run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    if terminal:
        master, slave = pty.openpty()
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        while True:  # drain the terminal, as a terminal would, until the child closes it
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    if not os.read(master, 65536):
                        break
                except OSError:
                    break
            elif proc.poll() is not None:
                break
        proc.wait()
        os.close(master)
    else:
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rate", type=int, default=0, help="probes a second (0: unlimited)")
    parser.add_argument("--ports", default="1-65535")
    args = parser.parse_args()
    base = [sys.executable, "-m", "pentora", "scan", "--profile", "port-scan", "-t", "127.0.0.1",
            "--ports", args.ports, "--set", f"rate={args.rate}", "--no-store", "-q"]
    rows = []
    for name, extra, terminal in (("no --progress", [], False), ("--progress, pipe", ["--progress"], False),
                                  ("--progress, terminal", ["--progress"], True)):
        runs = [run(base + extra, terminal) for _ in range(args.repeat)]
        rows.append((name, statistics.median(c for c, _ in runs), statistics.median(w for _, w in runs)))
    print(f"{'run':22} {'cpu s':>7} {'wall s':>7} {'cpu / none':>10}")
    for name, cpu, wall in rows:
        print(f"{name:22} {cpu:7.2f} {wall:7.2f} {cpu / rows[0][1]:10.2f}")
    worst = max(cpu for _, cpu, _ in rows[1:]) / rows[0][1]
    verdict = "PASS" if worst <= TARGET else "MISS"
    print(f"{verdict}: --progress costs {worst:.2f}x the CPU (target <= {TARGET})")


if __name__ == "__main__":
    main()
