"""Benchmark: pentora's service-scan against ``nmap -sV`` on real daemons from Debian's packages.

Not a test: run it as root and read the table::

    .venv/bin/python tests/benchmarks/bench_service_scan.py [--repeat 3] [--hooks FILE]

What runs. openssh-server, nginx, redis-server, vsftpd and postgresql (installed with
apt-get when missing, service start-up forbidden), each started by
``tests/integration/daemons.py`` with a config of its own on a free port of 127.0.0.1 —
ports no scanner has a hint for, so both must recognise each service by what it says.
On exactly those ports, one after the other, order alternating each round:

* pentora: ``python -m pentora scan --targets 127.0.0.1 -p PORTS --profile service-scan -o F.jsonl``
* nmap:    ``nmap -sV -n -Pn -p PORTS 127.0.0.1 -oX -`` (Debian's nmap, installed when absent)

Expected answers come from the installed packages (``dpkg-query``): service, product,
and the upstream version (``1:9.2p1-2+deb12u3`` -> ``9.2p1``) where the daemon reveals
it before authentication (PostgreSQL does not: its version is not counted). A product is
right when the expected name is one of the reported words (nmap's ``PostgreSQL DB``), a
version when its first word is the upstream version (nmap's ``9.2p1 Debian 2+deb12u3``).

Times: wall time of each whole process, pentora's Python start-up included; best of
``--repeat`` rounds. Targets, printed as PASS/MISS: pentora names at least as
many services, products and versions right as nmap, in at most a quarter of its wall time.
``--hooks FILE`` is passed to ``pentora scan`` (a plugin file, e.g. for module types not
yet registered as entry points). Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench_portscan import ensure_nmap  # noqa: E402  (beside this file)

from tests.integration import daemons  # noqa: E402

TARGET_RATIO = 0.25
Named = dict[int, dict[str, Any]]  # port -> {service, product, version}


def run_pentora(ports: list[int], tmp: Path, hooks: list[str]) -> tuple[float, Named | str]:
    out = tmp / "pentora.jsonl"
    out.unlink(missing_ok=True)
    extra = [arg for h in hooks for arg in ("--hooks", h)]
    start = time.perf_counter()
    done = daemons.pentora_scan(ports, out, extra=extra)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 3):
        return wall, f"exit {done.returncode}: {done.stderr.strip()[-400:]}"
    return wall, {int(r["port"]): r for r in daemons.jsonl_records(out, "service")}


def run_nmap(nmap: str, ports: list[int]) -> tuple[float, Named | str]:
    argv = [nmap, "-sV", "-n", "-Pn", "-p", ",".join(map(str, ports)), daemons.HOST, "-oX", "-"]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return wall, f"exit {done.returncode}: {done.stderr.strip()[-400:]}"
    found: Named = {}
    for port in ET.fromstring(done.stdout).iter("port"):
        service = port.find("service")
        state = port.find("state")
        if service is None or state is None or state.get("state") != "open":
            continue
        found[int(port.get("portid", 0))] = {
            "service": service.get("name"), "product": service.get("product"),
            "version": service.get("version"), "extrainfo": service.get("extrainfo")}
    return wall, found


def best(runs: list[tuple[float, Named | str]]) -> tuple[float | None, Named | str]:
    """Fastest good run, or the last error."""
    good = [r for r in runs if not isinstance(r[1], str)]
    if not good:
        return None, runs[-1][1] if runs else "not run"
    return min(good, key=lambda r: r[0])


def cell(value: Any, width: int) -> str:
    """``value`` padded (or cut, ending in ~) to ``width``; ``-`` when there is none."""
    text = "-" if value in (None, "") else str(value)
    return f"{text:<{width}}" if len(text) <= width else text[: width - 1] + "~"


VERDICT = {True: "right", False: "WRONG", None: "n/a"}


def print_table(running: list[daemons.Daemon], results: dict[str, tuple[float | None, Named | str]]
                ) -> dict[str, list[int]]:
    """Per-port rows for each scanner; returns right counts [services, products, versions]."""
    totals = {who: [0, 0, 0] for who in results}
    print(f"\n{'port':>5}  {'daemon':<10} {'who':<8} {'service':<11} {'product':<22} {'version':<26}"
          f" {'service':<7} {'product':<7} {'version':<7}")
    for d in running:
        version = d.expected_version or f"(not revealed; {d.upstream_version})"
        print(f"{d.port:>5}  {d.name:<10} {'expected':<8} {d.service:<11} {d.product:<22} {cell(version, 26)}"
              f" from {d.package} {d.package_version}")
        for who, (_, named) in results.items():
            if isinstance(named, str):
                print(f"{'':>5}  {'':<10} {who:<8} failed: {named[:80]}")
                continue
            found = named.get(d.port, {})
            verdicts = d.judge(found.get("service"), found.get("product"), found.get("version"))
            if d.expected_version is None:  # not revealed: no verdict, nothing counted
                verdicts = (*verdicts[:2], None)
            for i, ok in enumerate(verdicts):
                totals[who][i] += ok is True
            print(f"{'':>5}  {'':<10} {who:<8} {cell(found.get('service'), 11)} "
                  f"{cell(found.get('product'), 22)} {cell(found.get('version'), 26)} "
                  + " ".join(f"{VERDICT[ok]:<7}" for ok in verdicts).rstrip())
    return totals


def print_summary(running: list[daemons.Daemon], results: dict[str, tuple[float | None, Named | str]],
                  totals: dict[str, list[int]]) -> None:
    n, nv = len(running), sum(d.expected_version is not None for d in running)
    whos = list(results)
    print(f"\n{'named right':<24}" + "".join(f"{w:>10}" for w in whos))
    for i, label in enumerate((f"services (of {n})", f"products (of {n})", f"versions (of {nv})")):
        print(f"{label:<24}" + "".join(f"{totals[w][i]:>10}" for w in whos))
    print(f"{'wall time, s':<24}" + "".join(
        f"{results[w][0]:>10.2f}" if results[w][0] is not None else f"{'-':>10}" for w in whos))
    ours, theirs = results.get("pentora", (None, "")), results.get("nmap", (None, ""))
    if ours[0] is None or theirs[0] is None:
        print("\nno comparison: a scanner failed (see above)")
        return
    ratio = ours[0] / theirs[0]
    as_many = all(totals["pentora"][i] >= totals["nmap"][i] for i in range(3))
    print(f"{'ratio pentora/nmap':<24}{ratio:>10.3f}   (target <= {TARGET_RATIO})")
    print(f"\nat least as many right as nmap: {'PASS' if as_many else 'MISS'}; "
          f"wall time at most a quarter of nmap's: {'PASS' if ratio <= TARGET_RATIO else 'MISS'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (the fastest of each is kept)")
    parser.add_argument("--hooks", action="append", default=[], metavar="FILE",
                        help="plugin file passed to pentora scan --hooks (repeatable)")
    args = parser.parse_args()
    reason = daemons.ensure_packages()
    if reason:
        print(f"bench_service_scan: cannot run: {reason}")
        return 1
    nmap = ensure_nmap()
    if nmap is None:
        print("nmap is missing (no apt-get to install it): pentora's results are shown alone")
    missing = daemons.missing_modules()
    if missing and not args.hooks:
        print(f"pentora lacks module types {', '.join(missing)}: its service-scan will fail")
    start = time.perf_counter()
    with daemons.all_daemons() as running, tempfile.TemporaryDirectory() as tmpdir:
        print(f"daemons started in {time.perf_counter() - start:.2f}s: "
              + ", ".join(f"{d.name} on {daemons.HOST}:{d.port}" for d in running))
        ports = [d.port for d in running]
        runs: dict[str, list[tuple[float, Named | str]]] = {"pentora": [], "nmap": []}
        for round_ in range(args.repeat):
            for who in (("pentora", "nmap") if round_ % 2 == 0 else ("nmap", "pentora")):
                if who == "pentora":
                    runs[who].append(run_pentora(ports, Path(tmpdir), args.hooks))
                elif nmap is not None:
                    runs[who].append(run_nmap(nmap, ports))
        results = {who: best(r) for who, r in runs.items() if r}
        totals = print_table(running, results)
        print_summary(running, results, totals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
