"""Benchmark: how fast the ``pentora`` command starts, against ``nmap``'s.

Not a test: run it as a script and read the lines it prints::

    .venv/bin/python tests/benchmarks/bench_startup.py [--runs 21]

Each case runs a whole process, as a user's shell does, ``--runs`` times, alternating
with its peer so that a busy moment of the machine falls on both; the figure kept is the
median wall time of each. nmap is Debian's (``.ci/setup`` installs it); without it the
table says it is missing.

* ``--version``     ``pentora --version`` against ``nmap --version``: the early answer,
                    before gevent, the engine and the plugins are imported
* ``--version/py``  the same against ``python -c pass`` (the same interpreter, ``site``
                    and the installed packages' start-up included): what pentora adds
                    to the floor any Python command has
* ``--help``        ``pentora --help`` (every plugin loaded, the whole parser built)
                    against ``nmap --help``
* ``probe/py``      ``pentora scan -t 127.0.0.1 -p PORT -sT -Pn -q``: from the process's
                    start to its first probe, the connection a listener of this script's
                    on 127.0.0.1 accepts, against a whole ``python -c pass``; its own
                    line gives the milliseconds against the target, 300 ms. The scan is
                    stored (the default store): the store's check before a scan reads the
                    whole file only when it changed since pentora last left it (the first
                    run, or after another program wrote it)
* ``nostore``       the same with ``--no-store``: the start-up itself, whatever the
                    store holds
* ``--help (ms)``   ``pentora --help`` alone, in milliseconds, against its target of 150
* ``TAB``           one completion, ``pentora scan --profile <TAB>`` as the shell runs it
                    (argcomplete's variables; the plugins loaded, no monkey-patching),
                    against ``nmap --version``: what a TAB costs next to starting nmap

The ratio printed is pentora's median over its peer's (below 1: pentora is faster).
Target, printed as PASS/MISS: ``--version`` within 1.5 times a bare Python start (nmap, a
C program, starts in a few milliseconds; a Python interpreter takes several times that
before it runs a line). Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TARGETS = {"--version/py": 1.5}
FIRST_PROBE_MS = 300
HELP_MS = 150


def first_probe(pentora: str, *extra: str) -> float:
    """Seconds from starting a connect scan of a listener on 127.0.0.1 to the scanner's
    first connection to it (discovery skipped: the port scan's probe is the first)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        listener.settimeout(30)  # a hang guard: a scan that never probes stops the benchmark
        start = time.perf_counter()
        proc = subprocess.Popen([pentora, "scan", "-t", "127.0.0.1", "-p", str(port), "-sT", "-Pn",
                                 "-q", *extra], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            conn, _ = listener.accept()
            took = time.perf_counter() - start
            conn.close()
        finally:
            proc.wait(timeout=60)
    return took


def wall(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds one run of ``argv`` took, start to exit; a failure stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return took


def medians(runs: int, case: tuple[list[str], dict[str, str] | None],
            peer: list[str]) -> tuple[float, float]:
    """Median wall times of ``case`` and ``peer``, run alternately ``runs`` times each
    (after one untimed run of each, which fills the page cache)."""
    wall(*case)
    wall(peer)
    ours, theirs = [], []
    for i in range(runs):
        if i % 2:
            ours.append(wall(*case))
            theirs.append(wall(peer))
        else:
            theirs.append(wall(peer))
            ours.append(wall(*case))
    return statistics.median(ours), statistics.median(theirs)


def completion_env(line: str, answer: Path) -> dict[str, str]:
    """The variables bash's completion function sets before it runs ``pentora``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("_ARC")}
    env.update({"_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": "bash", "COMP_LINE": line,
                "COMP_POINT": str(len(line)), "_ARGCOMPLETE_IFS": "\n",
                "_ARGCOMPLETE_STDOUT_FILENAME": str(answer)})
    return env


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args(argv)
    pentora = str(BIN / "pentora")
    nmap = shutil.which("nmap")
    print(f"{'':<14} {'pentora / peer (median of ' + str(args.runs) + ')':>34}  target")
    if nmap is None:
        print("nmap is missing (apt-get install nmap): nothing to compare with")
        return
    with tempfile.TemporaryDirectory() as tmp:
        answer = Path(tmp) / "candidates"
        cases = {
            "--version": (([pentora, "--version"], None), [nmap, "--version"]),
            "--version/py": (([pentora, "--version"], None), [sys.executable, "-c", "pass"]),
            "--help": (([pentora, "--help"], None), [nmap, "--help"]),
            "TAB": (([pentora], completion_env("pentora scan --profile ", answer)),
                    [nmap, "--version"]),
        }
        for name, (case, peer) in cases.items():
            ours, theirs = medians(args.runs, case, peer)
            target = TARGETS.get(name)
            verdict = "" if target is None else (
                f"{'PASS' if ours / theirs <= target else 'MISS'} (at most {target:g})")
            print(f"{name:<14} {ours / theirs:34.2f}  {verdict}")
            if name == "--help":
                verdict = "PASS" if ours * 1000 <= HELP_MS else "MISS"
                print(f"{'--help (ms)':<14} {ours * 1000:34.0f}  {verdict} (at most {HELP_MS})")
        probes, bare, floor = [], [], []
        for _ in range(args.runs):
            probes.append(first_probe(pentora))
            bare.append(first_probe(pentora, "--no-store"))
            floor.append(wall([sys.executable, "-c", "pass"]))
        theirs = statistics.median(floor)
        for name, times in (("probe", probes), ("nostore", bare)):
            ours = statistics.median(times)
            print(f"{name + '/py':<14} {ours / theirs:34.2f}")
            verdict = "PASS" if ours * 1000 <= FIRST_PROBE_MS else "MISS"
            print(f"{name + ' (ms)':<14} {ours * 1000:34.0f}  {verdict} (at most {FIRST_PROBE_MS})")
        if "standard" not in answer.read_text().split():
            raise SystemExit(f"the completion did not offer the profile 'standard': {answer.read_text()!r}")


if __name__ == "__main__":
    main()
