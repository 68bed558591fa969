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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TARGETS = {"--version/py": 1.5}


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
        if "standard" not in answer.read_text().split():
            raise SystemExit(f"the completion did not offer the profile 'standard': {answer.read_text()!r}")


if __name__ == "__main__":
    main()
