"""Scan one endless-stream port in a process of its own and print its peak memory as JSON.

    python -m tests.hostile._memory_probe '{"port": 12345, "max_bytes": 16384, "extra": []}'

Prints ``rss_peak_over_baseline`` (bytes: the kernel's peak resident set, VmHWM, reset
through ``/proc/self/clear_refs`` once everything is imported and warmed up) and
``tracemalloc_peak`` (bytes Python allocated at the peak of the scan), with the scan's
outcome. A process of its own, so that the test runner's memory does not blur it.
"""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def main(spec: dict[str, object]) -> None:
    from tests.hostile.pipeline import scan

    extra = tuple(spec.get("extra", ()))  # type: ignore[arg-type]
    grab = {"max_bytes": spec["max_bytes"]}
    configs = dict(spec.get("configs", {}))  # type: ignore[call-overload]
    scan([int(spec["warmup_port"])], extra, grab, configs)  # type: ignore[call-overload]  # imports, caches
    baseline = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
    tracemalloc.start()
    run = scan([int(spec["port"])], extra, grab, configs)  # type: ignore[call-overload]
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    banners = run.get("banners")
    print(json.dumps({
        "baseline_rss": baseline, "rss_peak_over_baseline": _status("VmHWM") - baseline,
        "tracemalloc_peak": traced_peak, "elapsed": run.elapsed,
        "statuses": {n: r.status for n, r in run.result.nodes.items()},
        "banner_bytes": sum(len(b.data) for b in banners),
        "open_ports": [p.port for p in run.get("open_ports")],
    }))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
