"""Benchmark: execute generated DAGs of no-op nodes, and compare with Dask's threaded scheduler.

Not a test: run it as a script and read the table::

    .venv/bin/python tests/benchmarks/bench_execute.py [--sizes 10000,50000] [--repeat 5] [--no-dask]

What runs (all in one process, no network traffic: nothing here opens a socket):

* pentora: ``Orchestrator(plugins=[HookCounter(), BenchModulesPlugin()])`` with the built-in
  plugins autoloaded (so the ``engine.logging``, ``engine.progress``, ``store.recorder`` and
  ``output.json_reporter`` hooks fire too), and again with autoload off ("bare"); loguru
  at WARNING through ``pentora._logging.configure``, ``engine.max_parallel_nodes: 1000``,
  fail-fast (the default). DAGs come from a seeded RNG: node ``i`` depends on 1-3 distinct
  random earlier nodes (node 0 the only root). Each node is a no-op that reports progress
  once (``ctx.progress(1, 1)``), so every lifecycle hook a successful node has fires:
  ``pentora_node_start``, ``_progress``, ``_complete`` and ``pentora_scan_start``/``_complete``.
  Every run gets a fresh Orchestrator, as a ``pentora scan`` process would; ``validate()``
  runs first, untimed; the time is that of ``execute()`` alone. The hook
  counts are checked after every run, and a small DAG with a retried failure, a skipped
  node and cancelled nodes checks that ``_failed``, ``_retry``, ``_skipped`` and
  ``_cancelled`` reach the plugin too.
* Dask (a benchmark-only dependency, ``pip install pentora[bench]``): the same graph as a task
  dict ``{key: (noop, *dep_keys)}`` run by ``dask.threaded.get(graph, sink_keys)`` (its
  default thread pool). Its time includes its own ordering of the graph, which pentora did
  in the untimed ``validate()``; pentora's time including validation is printed as well.
* 1,000 independent nodes that each ``gevent.sleep(0.01)`` with ``max_parallel_nodes: 1000``;
  Dask runs the same with ``time.sleep(0.01)`` on its default pool, for reference.
* INFO logging as JSON lines to a temporary file (``configure("INFO", "json", file=...)``):
  per-node cost at the first size and its ratio to the WARNING run.

Targets, printed as PASS/MISS:

* pentora's time at 10,000 nodes, built-in plugins loaded, at most 0.2 of Dask's (the same
  with autoload off is printed for reference);
* per-node time at 50,000 at most 1.2 times that at 10,000;
* the 1,000 × 10 ms sleep DAG finishes in under 0.3 s.

Best of ``--repeat`` rounds, each running every size on both engines in turn, ``gc.collect()``
before each run; pentora's CPU time is printed beside its wall time. Importing this module
runs nothing, and does not import Dask.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import gevent

import pentora
from pentora import DagBuilder, Module, Orchestrator, hookimpl
from pentora._logging import configure

SIZES = (10_000, 50_000)
SEED = 20240611
MAX_PARALLEL = 1000
SLEEP_NODES = 1000
SLEEP_SECONDS = 0.01

TARGET_VS_DASK = 0.2        # pentora (built-in plugins loaded) / dask at 10,000 nodes
TARGET_GROWTH = 1.2         # per-node(50k) / per-node(10k)
TARGET_SLEEP_S = 0.3        # 1,000 nodes × 10 ms, max_parallel_nodes 1000


# -- module types and plugins -----------------------------------------------------------


class BenchNoop(Module):
    """Does nothing but report progress once, so ``pentora_node_progress`` fires."""

    module_type = "bench_noop"

    def run(self, ctx: Any, config: dict[str, Any]) -> None:
        ctx.progress(1, 1)


class BenchSleep(Module):
    """Sleeps cooperatively (``gevent.sleep``)."""

    module_type = "bench_sleep"

    def run(self, ctx: Any, config: dict[str, Any]) -> None:
        gevent.sleep(SLEEP_SECONDS)


class BenchFail(Module):
    """Always fails: for the hook-coverage check."""

    module_type = "bench_fail"

    def run(self, ctx: Any, config: dict[str, Any]) -> None:
        raise RuntimeError("intentional failure (benchmark hook check)")


class BenchModulesPlugin:
    pentora_plugin_name = "bench_modules"

    @hookimpl
    def pentora_register_modules(self, registry: Any) -> None:
        for cls in (BenchNoop, BenchSleep, BenchFail):
            registry.register(cls)


class HookCounter:
    """Implements every scan and node lifecycle hook; counts the calls."""

    pentora_plugin_name = "bench_hook_counter"

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def reset(self) -> None:
        self.counts.clear()

    @hookimpl
    def pentora_scan_start(self, scan: Any) -> None:
        self.counts["scan_start"] += 1

    @hookimpl
    def pentora_scan_complete(self, scan: Any, result: Any) -> None:
        self.counts["scan_complete"] += 1

    @hookimpl
    def pentora_node_start(self, scan: Any, node: Any, record: Any) -> None:
        self.counts["start"] += 1

    @hookimpl
    def pentora_node_complete(self, scan: Any, node: Any, record: Any) -> None:
        self.counts["complete"] += 1

    @hookimpl
    def pentora_node_failed(self, scan: Any, node: Any, record: Any) -> None:
        self.counts["failed"] += 1

    @hookimpl
    def pentora_node_skipped(self, scan: Any, node: Any, record: Any) -> None:
        self.counts["skipped"] += 1

    @hookimpl
    def pentora_node_cancelled(self, scan: Any, node: Any, record: Any) -> None:
        self.counts["cancelled"] += 1

    @hookimpl
    def pentora_node_retry(self, scan: Any, node: Any, record: Any, error: Any, delay: Any) -> None:
        self.counts["retry"] += 1

    @hookimpl
    def pentora_node_progress(self, scan: Any, node: Any, done: Any, total: Any) -> None:
        self.counts["progress"] += 1

    @hookimpl
    def pentora_record(self, scan: Any, node: Any, kind: Any, record: Any) -> None:
        self.counts["record"] += 1


HOOK_KEYS = ("scan_start", "scan_complete", "start", "progress", "complete", "failed", "retry",
             "skipped", "cancelled", "record")


# -- graphs ---------------------------------------------------------------------------------


def generate(n: int, seed: int = SEED) -> list[list[int]]:
    """``deps[i]``: 1-3 distinct random earlier nodes for ``i > 0``; node 0 is the root."""
    rng = random.Random(seed + n)
    deps: list[list[int]] = [[]]
    for i in range(1, n):
        deps.append(rng.sample(range(i), min(i, rng.randint(1, 3))))
    return deps


def pentora_dag(deps: list[list[int]], module_type: str = "bench_noop",
                max_parallel: int = MAX_PARALLEL) -> pentora.Dag:
    b = DagBuilder(f"bench-{len(deps)}").engine(max_parallel_nodes=max_parallel)
    for i, ds in enumerate(deps):
        b.add_node(f"n{i}", module_type, [f"n{d}" for d in ds])
    return b.build()


def _noop(*args: Any) -> None:
    return None


def _sleep(*args: Any) -> None:
    time.sleep(SLEEP_SECONDS)


def dask_graph(deps: list[list[int]], fn: Callable[..., Any] = _noop) -> tuple[dict[str, Any], list[str]]:
    """The same graph as a Dask task dict, and its sink keys (nodes nobody depends on)."""
    graph = {f"n{i}": (fn, *[f"n{d}" for d in ds]) for i, ds in enumerate(deps)}
    has_child = {d for ds in deps for d in ds}
    return graph, [f"n{i}" for i in range(len(deps)) if i not in has_child]


# -- measurement ----------------------------------------------------------------------------


def make_orchestrator(counter: HookCounter, autoload: bool = True) -> Orchestrator:
    """With ``autoload`` the built-in plugins load from their entry points, as ``pentora dag
    run`` has them; without, only the benchmark's own two plugins."""
    return Orchestrator(plugins=[counter, BenchModulesPlugin()], autoload=autoload)


def time_pentora(counter: HookCounter, dag: pentora.Dag, repeat: int,
                 expect_progress: bool = True, autoload: bool = True) -> dict[str, float]:
    """Best ``execute()`` wall and CPU seconds, and ``validate()`` seconds, over ``repeat``
    runs; checks the results and the hook counts of every run.

    Each run gets a fresh Orchestrator (loading plugins, ``load_dag`` and ``validate()`` are
    untimed), as a ``pentora scan`` process would: a second ``execute()`` on the same
    Orchestrator would also carry the previous run's records into the timed run.
    """
    n = len(dag.nodes)
    best = {"wall": float("inf"), "cpu": float("inf"), "validate": float("inf")}
    for _ in range(repeat):
        orch = make_orchestrator(counter, autoload)
        orch.load_dag(dag)
        t0 = time.perf_counter()
        orch.validate()
        best["validate"] = min(best["validate"], time.perf_counter() - t0)
        counter.reset()
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        result = orch.execute()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        best["wall"], best["cpu"] = min(best["wall"], wall), min(best["cpu"], cpu)
        counts = result.counts()
        if not result.ok or counts.get("completed") != n:
            raise SystemExit(f"pentora run of {n} nodes did not complete: {result.status} {counts} "
                             f"{result.error}")
        expected = {"scan_start": 1, "scan_complete": 1, "start": n, "complete": n,
                    "progress": n if expect_progress else 0}
        got = {k: counter.counts.get(k, 0) for k in HOOK_KEYS}
        want = {k: expected.get(k, 0) for k in HOOK_KEYS}
        if got != want:
            raise SystemExit(f"hook counts wrong for {n} nodes: got {got}, expected {want}")
        del result, orch
    return best


def time_dask(deps: list[list[int]], repeat: int, fn: Callable[..., Any] = _noop) -> float:
    import dask.threaded

    graph, sinks = dask_graph(deps, fn)
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = dask.threaded.get(graph, sinks)
        best = min(best, time.perf_counter() - t0)
        assert len(out) == len(sinks)
    return best


def hook_check(counter: HookCounter) -> dict[str, int]:
    """failed/retry/skipped/cancelled reach the plugin (small DAGs, logging silenced)."""
    orch = make_orchestrator(counter)
    configure("CRITICAL")
    try:
        # continue-on-error: 'bad' is retried once then fails, its child is skipped, 'ok' runs.
        dag = (DagBuilder("hook-check").engine(fail_fast=False)
               .add_node("root", "bench_noop")
               .add_node("bad", "bench_fail", ["root"],
                         retry={"max_attempts": 2, "backoff": "none", "retry_on": ["any"]})
               .add_node("child", "bench_noop", ["bad"])
               .add_node("ok", "bench_noop", ["root"])
               .build())
        orch.load_dag(dag)
        counter.reset()
        orch.execute()
        first = dict(counter.counts)
        # fail-fast: 'slow' is running when 'bad' fails (cancelled), 'after' never starts.
        dag = (DagBuilder("hook-check-ff")
               .add_node("root", "bench_noop")
               .add_node("bad", "bench_fail", ["root"])
               .add_node("slow", "bench_sleep", ["root"])
               .add_node("after", "bench_noop", ["slow"])
               .build())
        orch.load_dag(dag)
        counter.reset()
        orch.execute()
        second = dict(counter.counts)
    finally:
        configure("WARNING")
    want1 = {"scan_start": 1, "scan_complete": 1, "start": 4, "progress": 2, "complete": 2,
             "failed": 1, "retry": 1, "skipped": 1}
    want2 = {"scan_start": 1, "scan_complete": 1, "start": 3, "progress": 1, "complete": 1,
             "failed": 1, "cancelled": 2}
    if first != want1 or second != want2:
        raise SystemExit(f"hook check failed: got {first} / {second}, expected {want1} / {want2}")
    return {k: first.get(k, 0) + second.get(k, 0) for k in HOOK_KEYS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)),
                    help="comma-separated node counts; the first is the Dask/logging size")
    ap.add_argument("--repeat", type=int, default=5,
                    help="rounds (each runs every size on both engines); the best counts")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask comparison")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    base = sizes[0]

    configure("WARNING")
    counter = HookCounter()
    report = getattr(make_orchestrator(counter).pm, "load_report", None)
    dask_version = None
    if not args.no_dask:
        try:
            import dask
        except ImportError:
            print("dask is not installed (pip install 'pentora[bench]'): skipping the comparison")
            args.no_dask = True
        else:
            dask_version = dask.__version__

    print(f"pentora {pentora.__version__} execute benchmark — Python {sys.version.split()[0]}, "
          f"gevent {gevent.__version__}, dask {dask_version or '(skipped)'}, "
          f"{os.cpu_count()} CPUs, seed {SEED}, best of {args.repeat}")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.2f} before starting: other processes compete for the "
              "CPUs and inflate wall times")
    if report is not None:
        print(f"plugins loaded: {', '.join(report.loaded)}"
              + (f"; broken (skipped): {', '.join(n for n, _ in report.broken)}" if report.broken else ""))
    checked = hook_check(counter)
    print("hook check (small DAGs): " + ", ".join(f"{k}={v}" for k, v in checked.items() if v)
          + " — as expected")
    print()
    # Warm-up, untimed: imports, thread pools, first-call caches.
    warm = generate(500)
    time_pentora(counter, pentora_dag(warm), 1)
    if not args.no_dask:
        time_dask(warm, 1)

    # Rounds over all sizes and both engines, best per cell: a noisy moment then hurts one
    # round of everything alike. Only one graph is alive at a time (the heap size is part of
    # what is measured: CPython's full collections walk all of it).
    rows: dict[int, dict[str, float]] = {}
    edges: dict[int, int] = {}
    for round_ in range(args.repeat):
        for n in sizes:
            deps = generate(n)
            edges[n] = sum(map(len, deps))
            dag = pentora_dag(deps)
            # The first run after a graph is built pays for the heap growing (about 3 µs a node
            # at 50,000): loaded and bare take turns going first, and the best of each counts.
            if round_ % 2:
                bare = time_pentora(counter, dag, 1, autoload=False)
                tp = time_pentora(counter, dag, 1)
            else:
                tp = time_pentora(counter, dag, 1)
                bare = time_pentora(counter, dag, 1, autoload=False)
            del dag
            t_d = float("nan") if args.no_dask else time_dask(deps, 1)
            del deps
            row = {"pentora": tp["wall"], "cpu": tp["cpu"], "validate": tp["validate"], "dask": t_d,
                   "bare": bare["wall"]}
            best = rows.setdefault(n, row)
            for key, value in row.items():
                best[key] = min(best[key], value)
    print("loaded: the built-in plugins autoloaded (as `pentora dag run`); bare: autoload off")
    print(f"{'nodes':>7} {'edges':>7} | {'loaded s':>9} {'µs/node':>8} {'cpu s':>7} {'validate s':>10} "
          f"{'bare µs/node':>12} | {'dask s':>8} {'µs/node':>8} | {'loaded/dask':>11} {'bare/dask':>9}")
    for n in sizes:
        t_p, t_d, r = rows[n]["pentora"], rows[n]["dask"], rows[n]
        print(f"{n:>7} {edges[n]:>7} | {t_p:>9.3f} {t_p / n * 1e6:>8.1f} {r['cpu']:>7.3f} "
              f"{r['validate']:>10.3f} {r['bare'] / n * 1e6:>12.1f} | {t_d:>8.3f} {t_d / n * 1e6:>8.1f} | "
              f"{t_p / t_d:>11.3f} {r['bare'] / t_d:>9.3f}", flush=True)

    # 1,000 independent sleeping nodes.
    sleep_deps: list[list[int]] = [[] for _ in range(SLEEP_NODES)]
    t_sleep = time_pentora(counter, pentora_dag(sleep_deps, "bench_sleep"), args.repeat,
                           expect_progress=False)["wall"]
    t_sleep_dask = float("nan") if args.no_dask else time_dask(sleep_deps, 1, _sleep)

    # INFO JSON logging to a file, at the first size.
    with tempfile.TemporaryDirectory(prefix="pentora-bench-") as tmp:
        path = os.path.join(tmp, "log.jsonl")
        configure("INFO", "json", file=path)
        try:
            t_json = time_pentora(counter, pentora_dag(generate(base)), args.repeat)["wall"]
        finally:
            configure("WARNING")
        with open(path, encoding="utf-8") as f:
            log_lines = sum(1 for _ in f)
        log_bytes = os.path.getsize(path)

    print()
    print(f"sleep: {SLEEP_NODES} independent nodes × {SLEEP_SECONDS * 1000:g} ms, max_parallel_nodes "
          f"{MAX_PARALLEL}: pentora {t_sleep:.3f} s; dask threaded (default pool, time.sleep) "
          f"{t_sleep_dask:.3f} s")
    per_warn = rows[base]["pentora"] / base * 1e6
    per_json = t_json / base * 1e6
    print(f"logging: INFO JSON to a file at {base} nodes: {t_json:.3f} s, {per_json:.1f} µs/node "
          f"({per_json - per_warn:+.1f} µs/node, ×{per_json / per_warn:.2f} vs WARNING); "
          f"{log_lines} lines, {log_bytes / args.repeat / base:.0f} bytes/node per run")

    print()
    print(f"{'target':<58} {'value':>8} {'limit':>7}  verdict")

    def verdict(name: str, value: float, limit: float | None, strict: bool = False) -> None:
        if limit is None:
            print(f"{name:<58} {value:>8.3f} {'-':>7}  info")
            return
        ok = value < limit if strict else value <= limit
        print(f"{name:<58} {value:>8.3f} {limit:>7g}  {'PASS' if ok else 'MISS'}")

    if not args.no_dask:
        verdict(f"pentora (plugins loaded) / dask time at {base} nodes",
                rows[base]["pentora"] / rows[base]["dask"], TARGET_VS_DASK)
        verdict(f"pentora (autoload off) / dask time at {base} nodes",
                rows[base]["bare"] / rows[base]["dask"], None)
        verdict(f"(pentora validate + execute) / dask at {base} nodes",
                (rows[base]["pentora"] + rows[base]["validate"]) / rows[base]["dask"], None)
    if len(sizes) > 1:
        big = sizes[-1]
        growth = (rows[big]["pentora"] / big) / (rows[base]["pentora"] / base)
        verdict(f"per-node time {big} / {base} (pentora)", growth, TARGET_GROWTH)
        if not args.no_dask:
            verdict(f"per-node time {big} / {base} (dask, for reference)",
                    (rows[big]["dask"] / big) / (rows[base]["dask"] / base), None)
    verdict(f"{SLEEP_NODES} × {SLEEP_SECONDS * 1000:g} ms sleeping nodes, seconds", t_sleep,
            TARGET_SLEEP_S, strict=True)
    verdict(f"INFO JSON logging / WARNING, per node at {base} nodes", per_json / per_warn, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
