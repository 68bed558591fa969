"""Runs the connect engine inside a test's namespace and prints its results as JSON.

    python _connect_runner.py '{"targets": [["127.0.0.1", "1-65535"]], "engine": {...}}'

Options: ``engine`` (ConnectEngine keywords), ``repeat`` (scans in a row), ``nofile``
(lower RLIMIT_NOFILE first), ``free_fds`` (then hold descriptors until only this many
are free) and ``hog`` (a greenlet that now and then takes every free descriptor for a
few milliseconds, as a busy process would).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys

import gevent
from pentora_plugins.kit.portspec import parse_ports
from pentora_plugins.portscan.connect_scanner import ConnectEngine


def grab_all() -> list[int]:
    fds = []
    while True:
        try:
            fds.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            return fds


def release(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def hog() -> None:
    while True:
        taken = grab_all()
        gevent.sleep(0.005)
        release(taken)
        gevent.sleep(0.01)


def main() -> None:
    opts = json.loads(sys.argv[1])
    if opts.get("nofile"):
        resource.setrlimit(resource.RLIMIT_NOFILE, (opts["nofile"], opts["nofile"]))
    held: list[int] = []
    if opts.get("free_fds") is not None:
        held = grab_all()
        release(held[:opts["free_fds"]])
        held = held[opts["free_fds"]:]
    hogger = gevent.spawn(hog) if opts.get("hog") else None
    targets = [(host, parse_ports(spec)) for host, spec in opts["targets"]]
    runs = []
    for _ in range(opts.get("repeat", 1)):
        found: list[list[object]] = []
        engine = ConnectEngine(**opts.get("engine", {}),
                               on_result=lambda *result, found=found: found.append(list(result)))
        stats = engine.scan(targets)
        runs.append({"open": sorted([h, p] for h, p, s, _ in found if s == "open"),
                     "filtered": sorted([h, p, r] for h, p, s, r in found if s == "filtered"),
                     "stats": dataclasses.asdict(stats), "rate": stats.rate(), "limit": engine.limit})
    if hogger is not None:
        hogger.kill()
    release(held)
    print(json.dumps(runs))


if __name__ == "__main__":
    main()
