"""Scan 127.0.0.1 ports with the real pipeline in a process short of file descriptors and
print what it found as JSON.

    python -m tests.hostile._fd_probe '{"ports": [...], "nofile": 128, "free_fds": 12, "hog": true}'

``nofile`` lowers RLIMIT_NOFILE first; ``free_fds`` then holds descriptors until only
that many are free; ``hog`` runs a greenlet that now and then takes every free
descriptor for a few milliseconds (as a busy process would). Without them it is the
baseline run of the same scan.
"""

from __future__ import annotations

import json
import resource
import sys

import gevent


def main(spec: dict[str, object]) -> None:
    from tests.hostile.pipeline import scan
    from tests.plugins._connect_runner import grab_all, hog, release

    if spec.get("nofile"):
        limit = int(spec["nofile"])  # type: ignore[call-overload]
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    held: list[int] = []
    if spec.get("free_fds") is not None:
        held = grab_all()
        free = int(spec["free_fds"])  # type: ignore[call-overload]
        release(held[:free])
        held = held[free:]
    hogger = gevent.spawn(hog) if spec.get("hog") else None
    run = scan(list(spec["ports"]))  # type: ignore[call-overload]
    if hogger is not None:
        hogger.kill()
    release(held)
    print(json.dumps({
        "statuses": {n: r.status for n, r in run.result.nodes.items()},
        "errors": {n: f"{r.error}\n{r.stack_trace}" for n, r in run.result.nodes.items() if r.error},
        "open": [p.port for p in run.get("open_ports")],
        "banners": sorted([b.port, b.probe, b.data] for b in run.get("banners")),
        "services": sorted([f.port, f.service, f.product, f.version]
                           for f in run.get("service_fingerprints")),
        "elapsed": run.elapsed,
    }))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
