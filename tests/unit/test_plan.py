"""The planner: deterministic topological order and layers; cycle finding; scale.

The order is the layers concatenated, each layer in definition order (``plan.py``); a
node's layer is one more than the deepest of its dependencies.
"""

from __future__ import annotations

import json
import random

import pytest

import pentora
from pentora import Dag, DagBuilder, NodeSpec, plan
from pentora._plan import find_cycles, graph_indices
from tests.conftest import make_orch
from tests.dag_modules import MODULES


def dag_of(*nodes: tuple[str, list[str]]) -> Dag:
    return Dag(nodes=[NodeSpec(nid, "step", list(deps)) for nid, deps in nodes])


def assert_topological(dag: Dag, order: list[int]) -> None:
    assert sorted(order) == list(range(len(dag.nodes)))
    position = {dag.nodes[i].instance_id: p for p, i in enumerate(order)}
    for node in dag.nodes:
        for dep in node.depends_on:
            assert position[dep] < position[node.instance_id], (dep, node.instance_id)


# Hand-checked: (nodes in definition order, expected order, expected layers).
HAND_CHECKED = [
    pytest.param([("a", []), ("b", ["a"]), ("c", []), ("d", ["b", "c"]), ("e", ["a"])],
                 ["a", "c", "b", "e", "d"], [["a", "c"], ["b", "e"], ["d"]], id="fan-out-fan-in"),
    pytest.param([("z", ["y"]), ("y", ["x"]), ("x", []), ("w", [])],
                 ["x", "w", "y", "z"], [["x", "w"], ["y"], ["z"]], id="defined-backwards"),
    pytest.param([("a", []), ("b", ["a"]), ("c", ["b"]), ("d", ["a", "c"])],
                 ["a", "b", "c", "d"], [["a"], ["b"], ["c"], ["d"]], id="shortcut-edge-does-not-lift"),
    pytest.param([("c", []), ("b", []), ("a", [])],
                 ["c", "b", "a"], [["c", "b", "a"]], id="independent-keep-definition-order"),
    pytest.param([("a", []), ("b", ["a", "a"]), ("c", ["b", "a", "b"])],
                 ["a", "b", "c"], [["a"], ["b"], ["c"]], id="repeated-dependency"),
    pytest.param([("report", ["vuln", "assets"]), ("targets", []), ("discover", ["targets"]),
                  ("ports", ["discover"]), ("banners", ["ports"]), ("fingerprint", ["banners"]),
                  ("assets", ["fingerprint", "discover"]), ("vuln", ["fingerprint"])],
                 ["targets", "discover", "ports", "banners", "fingerprint", "assets", "vuln", "report"],
                 [["targets"], ["discover"], ["ports"], ["banners"], ["fingerprint"], ["assets", "vuln"],
                  ["report"]], id="scan-pipeline"),
    pytest.param([("only", [])], ["only"], [["only"]], id="single"),
    pytest.param([], [], [], id="empty"),
]


@pytest.mark.parametrize("nodes,order,layers", HAND_CHECKED)
def test_hand_checked_plans(nodes: list[tuple[str, list[str]]], order: list[str],
                            layers: list[list[str]]) -> None:
    dag = dag_of(*nodes)
    p = plan(dag)
    assert p.order_ids() == order
    assert p.layer_ids() == layers
    assert_topological(dag, p.order)


def test_plan_indices() -> None:
    p = plan(dag_of(("a", []), ("b", ["a"]), ("c", ["a", "b"])))
    assert p.ids == ["a", "b", "c"]
    assert p.parents == [[], [0], [0, 1]]
    assert p.children == [[1, 2], [2], []]
    assert p.order == [0, 1, 2]
    assert p.layers == [[0], [1], [2]]


def test_graph_indices_drop_unknown_dependencies() -> None:
    ids, parents, children = graph_indices(dag_of(("a", ["ghost"]), ("b", ["a", "phantom"])))
    assert (ids, parents, children) == (["a", "b"], [[], [0]], [[1], []])


def test_plan_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="cycle"):
        plan(dag_of(("a", ["b"]), ("b", ["a"]), ("c", [])))


def test_orchestrator_plan_is_the_same_plan() -> None:
    dag = DagBuilder().add_node("b", "step").add_node("a", "step", ["b"]).add_node("c", "step").build()
    orch = make_orch(*MODULES)
    orch.load_dag(dag)
    orch.validate()
    assert orch.plan == plan(dag)
    assert orch.plan is not None and orch.plan.order_ids() == ["b", "c", "a"]


def random_dag(n: int, seed: int, window: int = 50) -> Dag:
    """Each node depends on 0-3 of the ``window`` nodes before it, then definition is shuffled."""
    rng = random.Random(seed)
    nodes = [NodeSpec(f"n{i}", "step", sorted({f"n{rng.randrange(max(0, i - window), i)}"
                                               for _ in range(rng.randint(0, 3))} if i else set()))
             for i in range(n)]
    rng.shuffle(nodes)
    return Dag(nodes=nodes)


@pytest.mark.parametrize("seed", range(20))
def test_random_plans_are_layered_topological_orders(seed: int) -> None:
    dag = random_dag(300, seed)
    p = plan(dag)
    assert_topological(dag, p.order)
    assert p.order == [i for layer in p.layers for i in layer]
    level = {i: k for k, layer in enumerate(p.layers) for i in layer}
    for i, parents in enumerate(p.parents):
        assert level[i] == (1 + max(level[j] for j in parents) if parents else 0)
    for layer in p.layers:
        assert layer == sorted(layer)  # ties in definition order
    assert plan(dag) == p  # same input, same plan


# -- find_cycles -----------------------------------------------------------------------------------------


def cycles_of(dag: Dag) -> list[list[str]]:
    ids, _, children = graph_indices(dag)
    return find_cycles(ids, children)


def assert_is_cycle(dag: Dag, path: list[str]) -> None:
    deps = {n.instance_id: n.depends_on for n in dag.nodes}
    assert path[0] == path[-1]
    for a, b in zip(path, path[1:]):
        assert a in deps[b], f"{b} does not depend on {a}"


def test_find_cycles_reports_each_cycle() -> None:
    dag = dag_of(
        ("root", []),
        ("a", ["root", "c"]), ("b", ["a"]), ("c", ["b"]),           # a → b → c → a
        ("self", ["self"]),                                         # self → self
        ("p", ["q"]), ("q", ["p"]),                                  # p → q → p
        ("tail", ["c", "q"]),                                        # acyclic, hangs off two cycles
        ("x", ["w"]), ("y", ["x"]), ("z", ["y"]), ("w", ["z", "root"]),  # x → y → z → w → x
    )
    cycles = cycles_of(dag)
    assert sorted(cycles) == sorted([["a", "b", "c", "a"], ["self", "self"], ["p", "q", "p"],
                                     ["x", "y", "z", "w", "x"]])
    for path in cycles:
        assert_is_cycle(dag, path)


def test_find_cycles_reports_one_path_per_strongly_connected_component() -> None:
    # Two loops sharing 'hub' form one component: one path, starting at the earliest node.
    dag = dag_of(("hub", ["l2", "r2"]), ("l1", ["hub"]), ("l2", ["l1"]), ("r1", ["hub"]), ("r2", ["r1"]))
    [path] = cycles_of(dag)
    assert path[0] == "hub"
    assert_is_cycle(dag, path)


def test_acyclic_graphs_have_no_cycles() -> None:
    for seed in range(5):
        assert cycles_of(random_dag(500, seed)) == []


def test_cycle_through_a_long_chain() -> None:
    n = 100_000
    dag = dag_of(*[(f"c{i}", [f"c{(i - 1) % n}"]) for i in range(n)])
    [path] = cycles_of(dag)
    assert len(path) == n + 1
    assert path[0] == path[-1] == "c0"
    assert_is_cycle(dag, path)


# -- 100,000 nodes ---------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_100k_node_dag_parses_validates_and_plans() -> None:
    dag = random_dag(100_000, seed=7)
    text = json.dumps({"name": "big", "nodes": [n.to_dict() for n in dag.nodes]})
    loaded = pentora.load_dag(text)
    assert len(loaded.nodes) == 100_000
    orch = make_orch(*MODULES)
    orch.load_dag(loaded)
    orch.validate()
    assert orch.plan is not None
    assert_topological(loaded, orch.plan.order)
    assert sum(len(layer) for layer in orch.plan.layers) == 100_000


@pytest.mark.timeout(300)
def test_100k_node_chain_validates_and_plans() -> None:
    n = 100_000
    dag = dag_of(*[(f"c{i}", [f"c{i - 1}"] if i else []) for i in range(n)])
    orch = make_orch(*MODULES)
    orch.load_dag(dag)
    orch.validate()
    assert orch.plan is not None
    assert orch.plan.order == list(range(n))
    assert len(orch.plan.layers) == n
