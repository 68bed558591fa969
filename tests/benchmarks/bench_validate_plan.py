"""Benchmark: parse, validate and plan generated DAGs of 1,000, 10,000 and 100,000 nodes.

Not a test: run it as a script and read the table::

    .venv/bin/python tests/benchmarks/bench_validate_plan.py [--sizes 1000,10000,100000] [--repeat 3]

Each DAG comes from a seeded RNG: node ``i`` depends on 1-3 distinct random earlier
nodes (node 0 is the only root). Every node is of a benchmark-only module type with a
small voluptuous schema (a duration, a bounded int, a string default) whose data
contract depends on its config: it requires ``targets`` (produced by the root) and the
key its first parent produces, and produces one of eight ``stage_K`` keys, so the
static data-contract check merges real key sets along every edge.

Phases, each timed on its own (``gc.collect()`` before each; best of ``--repeat`` rounds, each
round running every size in turn):

* ``parse``    ``pentora.load_dag(yaml_text)``: YAML → ``Dag`` (node schema, sub-DAG expansion)
* ``build``    the same DAG through ``pentora.DagBuilder`` (no YAML), for reference
* ``validate`` ``pentora._validate.validate_dag(dag, registry)``, what ``Orchestrator.validate()``
  runs: ids, dependencies, cycles, module configs, data contract, retry — and the plan:
  its one pass over the edges builds the topological order and layers that the
  orchestrator executes (``validated.plan``), so validating *is* validating and planning
* ``plan``     ``pentora.plan.plan(dag)`` on its own, as ``pentora dag plan`` callers of the
  function would use it, for reference

The target: growth is linear, i.e. the per-node time of validate + plan at
100,000 nodes is at most 1.3 times the per-node time at 10,000. ``val+plan`` is the
product's path, ``validate_dag`` (checked to return the plan); ``val+plan(2x)`` adds a
second, standalone ``plan()`` on top, for information. The script prints PASS/MISS for
the target (and, for information, the same ratio for each phase). Importing this module
runs nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import voluptuous as vol

import pentora
from pentora import DagBuilder, Module, Orchestrator, hookimpl
from pentora._plan import plan
from pentora._validate import validate_dag
from pentora.schema import Duration

SIZES = (1_000, 10_000, 100_000)
GROWTH_TARGET = 1.3          # per-node(100k) / per-node(10k), validate + plan
SEED = 20240611
N_KEYS = 8                   # distinct stage_K keys: realistic scans have a handful of keys
ROOT_TYPE = "bench_source"
STAGE_TYPE = "bench_stage"


# -- module types -----------------------------------------------------------------------


class BenchSource(Module):
    """The root: produces ``targets`` and ``stage_0``."""

    module_type = ROOT_TYPE
    produces = ("targets", "stage_0")
    config_schema = {vol.Optional("count", default=1): vol.All(int, vol.Range(min=1))}

    def run(self, ctx: Any, config: dict[str, Any]) -> dict[str, Any]:
        return {"targets": [], "stage_0": None}


class BenchStage(Module):
    """Requires ``targets`` and its first parent's key; produces ``stage_<stage>``."""

    module_type = STAGE_TYPE
    config_schema = {
        vol.Required("stage"): vol.All(int, vol.Range(min=0, max=N_KEYS - 1)),
        vol.Required("after"): vol.All(int, vol.Range(min=0, max=N_KEYS - 1)),
        vol.Optional("timeout", default="2s"): Duration(),
        vol.Optional("label", default=""): str,
    }

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return ("targets", f"stage_{config['after']}"), (f"stage_{config['stage']}",)

    def run(self, ctx: Any, config: dict[str, Any]) -> None:
        return None


class BenchModulesPlugin:
    pentora_plugin_name = "bench_validate_plan"

    @hookimpl
    def pentora_register_modules(self, registry: Any) -> None:
        registry.register(BenchSource)
        registry.register(BenchStage)


# -- graph generation -------------------------------------------------------------------


def generate(n: int, seed: int = SEED) -> list[tuple[str, str, list[str], dict[str, Any]]]:
    """``(instance_id, module_type, depends_on, config)`` for ``n`` nodes, deterministic."""
    rng = random.Random(seed + n)
    nodes: list[tuple[str, str, list[str], dict[str, Any]]] = [(
        "n0", ROOT_TYPE, [], {"count": 1})]
    stage = [0] * n  # key each node produces
    for i in range(1, n):
        deps = rng.sample(range(i), min(i, rng.randint(1, 3)))
        stage[i] = rng.randrange(N_KEYS)
        config: dict[str, Any] = {"stage": stage[i], "after": stage[deps[0]]}
        if i % 2:
            config["timeout"] = "500ms"
        nodes.append((f"n{i}", STAGE_TYPE, [f"n{d}" for d in deps], config))
    return nodes


def to_yaml(nodes: list[tuple[str, str, list[str], dict[str, Any]]]) -> str:
    """Block-style YAML, one mapping per node, as a person would write the file."""
    out = ["name: bench", "description: generated benchmark DAG", "nodes:"]
    for nid, mtype, deps, config in nodes:
        out.append(f"  - instance_id: {nid}")
        out.append(f"    module_type: {mtype}")
        out.append(f"    depends_on: [{', '.join(deps)}]")
        out.append("    config:")
        out.extend(f"      {k}: {v}" for k, v in config.items())
    return "\n".join(out) + "\n"


def build(nodes: list[tuple[str, str, list[str], dict[str, Any]]]) -> pentora.Dag:
    b = DagBuilder("bench", "generated benchmark DAG")
    for nid, mtype, deps, config in nodes:
        b.add_node(nid, mtype, deps, config)
    return b.build()


# -- measurement ------------------------------------------------------------------------


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, result) of ``fn(*args)``, after a full collection."""
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0, result


PHASES = ("parse", "build", "validate", "plan")


def measure(n: int, registry: Any) -> dict[str, float]:
    """One round at ``n`` nodes: seconds per phase (``cpu:PHASE``: CPU seconds)."""
    nodes = generate(n)
    text = to_yaml(nodes)
    out: dict[str, float] = {}
    out["parse"], out["cpu:parse"], dag = timed(pentora.load_dag, text)
    del text
    out["build"], out["cpu:build"], built = timed(build, nodes)
    assert len(dag.nodes) == len(built.nodes) == n
    del built, nodes
    out["validate"], out["cpu:validate"], validated = timed(validate_dag, dag, registry)
    if validated.problems:  # a benchmark of a DAG that does not validate measures nothing
        raise SystemExit(f"generated DAG of {n} nodes does not validate: "
                         f"{[str(p) for p in validated.problems[:5]]}")
    assert len(validated.configs) == n
    assert validated.plan is not None and len(validated.plan.order) == n  # validating planned
    out["plan"], out["cpu:plan"], p = timed(plan, dag)
    assert len(p.order) == n
    out["layers"], out["edges"] = float(len(p.layers)), float(sum(len(ps) for ps in p.parents))
    return out


def sanity(registry: Any) -> None:
    """The same checks through the public Orchestrator, and a broken contract is caught."""
    orch = Orchestrator(plugins=[BenchModulesPlugin()], autoload=False)
    orch.load_dag(pentora.load_dag(to_yaml(generate(200))))
    orch.validate()
    assert orch.plan is not None and len(orch.plan.order) == 200
    bad = generate(50)
    nid, mtype, deps, config = bad[1]  # n1's only ancestor is the root, which makes stage_0
    bad[1] = (nid, mtype, deps, {**config, "after": 3})
    problems = validate_dag(build(bad), registry).problems
    assert any(p.node == "n1" and "requires 'stage_3'" in p.message for p in problems), problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)),
                    help="comma-separated node counts (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds over all sizes; the best per phase counts")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    registry = Orchestrator(plugins=[BenchModulesPlugin()], autoload=False).registry
    sanity(registry)

    print(f"pentora {pentora.__version__} validate/plan benchmark — Python "
          f"{sys.version.split()[0]}, seed {SEED}, best of {args.repeat} rounds over all sizes")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.2f} before starting: other processes compete for the "
              "CPUs and inflate wall times")
    print(f"{'nodes':>8} {'edges':>8} {'layers':>6} | " + " ".join(
        f"{ph + ' µs/node':>17}" for ph in PHASES) + f" | {'val+plan µs/node':>16} {'val+plan s':>10}")
    # Rounds over all sizes, best per size and phase: a noisy moment then hurts one round of
    # every size alike instead of all the runs of one size. One size's data is alive at a time.
    results: dict[int, dict[str, float]] = {}
    for _ in range(args.repeat):
        for n in sizes:
            r = measure(n, registry)
            best = results.setdefault(n, r)
            for key, value in r.items():
                best[key] = min(best[key], value)
    for n in sizes:
        r = results[n]
        r["val+plan"] = r["validate"]  # validate_dag returns the plan too
        r["cpu:val+plan"] = r["cpu:validate"]
        r["val+plan(2x)"] = r["validate"] + r["plan"]
        r["cpu:val+plan(2x)"] = r["cpu:validate"] + r["cpu:plan"]
        print(f"{n:>8} {int(r['edges']):>8} {int(r['layers']):>6} | " + " ".join(
            f"{r[ph] / n * 1e6:>17.2f}" for ph in PHASES)
            + f" | {r['val+plan'] / n * 1e6:>16.2f} {r['val+plan']:>10.3f}", flush=True)

    if 10_000 in results and 100_000 in results:
        print()
        print("growth: per-node time at 100,000 / per-node time at 10,000 (linear = 1.0); "
              "wall time, and CPU time of the process for comparison")
        a, b = results[10_000], results[100_000]
        for ph in (*PHASES, "val+plan(2x)", "val+plan"):
            ratio = (b[ph] / 100_000) / (a[ph] / 10_000)
            cpu = (b["cpu:" + ph] / 100_000) / (a["cpu:" + ph] / 10_000)
            verdict = ("PASS" if ratio <= GROWTH_TARGET else "MISS") + (
                f" (target ≤ {GROWTH_TARGET})" if ph == "val+plan" else " (info)")
            print(f"  {ph:<9} {ratio:6.2f}  (cpu {cpu:4.2f})  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
