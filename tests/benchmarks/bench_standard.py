"""Benchmark: the standard profile against real daemons, time per stage; ``nmap -sV -sC`` as the peer.

Not a test: run it as root and read the tables::

    .venv/bin/python tests/benchmarks/bench_standard.py [--repeat N]

What runs. The lab of ``tests/integration/test_standard_profile.py``: sshd, nginx (plain,
and HTTPS with a self-signed certificate made with ``cryptography``), redis-server and
vsftpd with anonymous logins, each started by ``tests/integration/daemons.py`` with a config
of its own on a free port of 127.0.0.1. On exactly those five ports:

* pentora: ``python -m pentora scan --targets 127.0.0.1 --profile standard -p PORTS
  --set icmp=false --no-store -o F.jsonl``
* nmap:    ``nmap -sV -sC -n -Pn -p PORTS 127.0.0.1 -oX -``, where ``-sC`` is written
  ``--script "default and not external"``: the two default scripts that are also
  ``external`` (http-open-proxy, socks-open-proxy) ask the target to fetch from an
  internet host, which pentora's tests never contact (neither applies to these
  daemons, which are no proxies).

Printed: each node's ``duration_ms`` from the JSONL ``node`` records grouped by stage
(busy time is the sum of its nodes' durations; from/to, the stage's span from the scan's
start, as nodes of different stages run at the same time), the engine's time and the
process wall time (Python start-up and plugin loading included); then, per port, what
each scanner named (service, product, version) and found (pentora's vulnerability ids,
nmap's script results), how many ports each named right (service, product, and version
where the daemon reveals it, judged by ``Daemon.judge`` against the installed package), and
the wall-time ratio pentora/nmap. With ``--repeat`` the fastest run of each is kept.
Importing this module runs nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench_portscan import ensure_nmap  # noqa: E402  (beside this file)

from tests.integration import daemons  # noqa: E402
from tests.integration.test_standard_profile import Lab, lab, read_jsonl, run_profile  # noqa: E402

# module type -> stage, in pipeline order (the order the stage table is printed in)
STAGES = {
    "target_parser": "targets",
    "icmp_discovery": "discovery", "tcp_probe_discovery": "discovery", "discovery_merger": "discovery",
    "syn_scanner": "port scan", "connect_scanner": "port scan",
    "banner_grabber": "banners",
    "fingerprint_parser": "fingerprint",
    "http_scanner": "http",
    "ssl_analyzer": "tls",
    "webapp_fingerprinter": "webapp",
    "asset_profiler": "assets",
    "cve_matcher": "cve",
    "service_checks": "checks", "ssh_checks": "checks", "http_checks": "checks", "tls_checks": "checks",
    "json_reporter": "report",
}
NMAP_SCRIPTS = "default and not external"
Run = tuple[float, Any]  # (wall seconds, result or an error message)


def run_pentora(running: Lab, tmp: Path) -> Run:
    out = tmp / "standard.jsonl"
    start = time.perf_counter()
    done = run_profile("standard", running.ports, out, "--set", "icmp=false")
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return wall, f"exit {done.returncode}: {done.stderr.strip()[-400:]}"
    return wall, read_jsonl(out)


def run_nmap(nmap: str, ports: list[int]) -> Run:
    argv = [nmap, "-sV", "--script", NMAP_SCRIPTS, "-n", "-Pn", "-p", ",".join(map(str, ports)),
            daemons.HOST, "-oX", "-"]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return wall, f"exit {done.returncode}: {done.stderr.strip()[-400:]}"
    found: dict[int, dict[str, Any]] = {}
    for port in ET.fromstring(done.stdout).iter("port"):
        state, service = port.find("state"), port.find("service")
        if state is None or state.get("state") != "open":
            continue
        svc = service.attrib if service is not None else {}
        scripts = {s.get("id", ""): (s.get("output") or "").strip() for s in port.iter("script")}
        found[int(port.get("portid", 0))] = {
            "service": ("ssl/" if svc.get("tunnel") == "ssl" else "") + svc.get("name", ""),
            "product": svc.get("product"), "version": svc.get("version"), "scripts": scripts}
    return wall, found


def best(runs: list[Run]) -> Run:
    good = [r for r in runs if not isinstance(r[1], str)]
    return min(good, key=lambda r: r[0]) if good else runs[-1]


def _ms(stamp: str, origin: datetime) -> float:
    return (datetime.fromisoformat(stamp) - origin).total_seconds() * 1000


def print_stages(lines: list[dict[str, Any]], wall: float) -> None:
    """Busy time and span of each stage, from the JSONL node records."""
    (scan,) = [r for r in lines if r["kind"] == "scan"]
    origin = datetime.fromisoformat(scan["started_at"])
    stages: dict[str, list[dict[str, Any]]] = {stage: [] for stage in dict.fromkeys(STAGES.values())}
    for node in (r for r in lines if r["kind"] == "node"):
        stages.setdefault(STAGES.get(node["module_type"], node["module_type"]), []).append(node)
    print(f"\n{'stage':<12} {'busy ms':>9} {'from ms':>8} {'to ms':>8}  nodes (duration ms, status)")
    for stage, nodes in stages.items():
        ran = [n for n in nodes if n["duration_ms"] is not None]
        if not nodes:
            continue
        busy = sum(n["duration_ms"] for n in ran)
        span = (f"{min(_ms(n['started_at'], origin) for n in ran):>8.1f} "
                f"{max(_ms(n['finished_at'], origin) for n in ran):>8.1f}") if ran else f"{'-':>8} {'-':>8}"
        names = ", ".join(f"{n['node']} {n['duration_ms']:.1f}" if n["duration_ms"] is not None
                          else f"{n['node']} ({n['status']})" for n in nodes)
        print(f"{stage:<12} {busy:>9.1f} {span}  {names}")
    print(f"{'engine':<12} {scan['duration_ms']:>9.1f}   (scan record: first node start to last node end)")
    print(f"{'wall':<12} {wall * 1000:>9.1f}   (whole process: Python start-up, plugins, scan, output)")


def port_names(running: Lab) -> dict[int, tuple[str, daemons.Daemon]]:
    named = {d.port: (name, d) for name, d in running.daemons.items()}
    named[running.tls_port] = ("nginx-tls", running.daemons["nginx"])
    return dict(sorted(named.items()))


def _svc(found: dict[str, Any] | None) -> str:
    if not found:
        return "-"
    # pentora's record says tls=true where nmap writes the service as ssl/NAME
    tunnel = "ssl/" if found.get("tls") else ""
    return tunnel + " ".join(str(found.get(k)) for k in ("service", "product", "version") if found.get(k))


def _wrong(found: dict[str, Any] | None, verdicts: tuple[bool, bool, bool | None]) -> str:
    """``  (version missing, product WRONG)``: what a scanner did not name right."""
    wrong = [f"{what} {'WRONG' if (found or {}).get(what) else 'missing'}"
             for what, ok in zip(("service", "product", "version"), verdicts) if ok is False]
    return f"  ({', '.join(wrong)})" if wrong else ""


def _script_line(sid: str, output: str) -> str:
    first = next((line.strip() for line in output.splitlines() if line.strip()), "")
    return f"{sid}: {first[:70]}"


def print_comparison(running: Lab, ours: Run, theirs: Run | None) -> None:
    """Per port: what each scanner named and found; then counts and the ratio."""
    lines = ours[1] if not isinstance(ours[1], str) else []
    services = {r["port"]: r for r in lines if r["kind"] == "service"}
    vulns: dict[int, list[str]] = {}
    for v in (r for r in lines if r["kind"] == "vulnerability"):
        vulns.setdefault(v["port"], []).append(v["id"])
    nmap = theirs[1] if theirs and not isinstance(theirs[1], str) else {}
    right = {"pentora": 0, "nmap": 0}
    for port, (name, daemon) in port_names(running).items():
        print(f"\n{port} {name} (expected {daemon.service} {daemon.product} {daemon.expected_version or ''})")
        for who, found in (("pentora", services.get(port)), ("nmap", nmap.get(port))):
            if who == "nmap" and theirs is None:
                continue
            service = (found or {}).get("service") or ""
            ok = daemon.judge(service.removeprefix("ssl/"), (found or {}).get("product"),
                              (found or {}).get("version"))
            right[who] += all(v is not False for v in ok)
            print(f"  {who:<8} {_svc(found)}{_wrong(found, ok)}")
        print(f"  {'pentora':<8} findings: {', '.join(sorted(vulns.get(port, []))) or '-'}")
        if theirs is not None:
            scripts = (nmap.get(port) or {}).get("scripts", {})
            for sid, output in sorted(scripts.items()):
                print(f"  {'nmap':<8} {_script_line(sid, output)}")
    print_summary(len(port_names(running)), right, ours, theirs, sum(map(len, vulns.values())), nmap)


def print_summary(ports: int, right: dict[str, int], ours: Run, theirs: Run | None, findings: int,
                  nmap: dict[int, dict[str, Any]]) -> None:
    print(f"\n{'':<34}{'pentora':>10}{'nmap':>10}")
    print(f"{f'ports named right (of {ports})':<34}{right['pentora']:>10}"
          + (f"{right['nmap']:>10}" if theirs else ""))
    print(f"{'findings / script results':<34}{findings:>10}"
          + (f"{sum(len(p['scripts']) for p in nmap.values()):>10}" if theirs else ""))
    print(f"{'wall time, s':<34}{ours[0]:>10.2f}" + (f"{theirs[0]:>10.2f}" if theirs else ""))
    if isinstance(ours[1], str) or theirs is None or isinstance(theirs[1], str):
        print("\nno ratio: " + ("nmap is not installed" if theirs is None else "a scanner failed (above)"))
        return
    print(f"{'ratio pentora/nmap (wall)':<34}{ours[0] / theirs[0]:>10.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="rounds (the fastest of each is kept)")
    args = parser.parse_args()
    reason = daemons.ensure_packages()
    if reason:
        print(f"bench_standard: cannot run: {reason}")
        return 1
    nmap = ensure_nmap()
    with tempfile.TemporaryDirectory() as tmpdir, lab(Path(tmpdir)) as running:
        print("daemons: " + ", ".join(f"{name} on {daemons.HOST}:{port}"
                                      for port, (name, _) in port_names(running).items()))
        ours = best([run_pentora(running, Path(tmpdir)) for _ in range(args.repeat)])
        theirs = best([run_nmap(nmap, running.ports) for _ in range(args.repeat)]) if nmap else None
    if isinstance(ours[1], str):
        print(f"pentora failed: {ours[1]}")
    else:
        print_stages(ours[1], ours[0])
    if theirs is not None and isinstance(theirs[1], str):
        print(f"nmap failed: {theirs[1]}")
    print_comparison(running, ours, theirs)
    return 0 if not isinstance(ours[1], str) else 1


if __name__ == "__main__":
    sys.exit(main())
