"""Planning: deterministic topological order and level layers in O(V + E).

Level of a node = 1 + the highest level among its dependencies (roots are level 0).
The order is the layers concatenated, each layer in definition order: a valid
topological order that does not depend on timing or hashing. Execution does not wait
for layers (see ``execute``); they are for display and for ``pentora dag plan``.
"""

from __future__ import annotations

import contextlib
import gc
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from ._dag import Dag


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector while building large, acyclic structures.

    Parsing and planning a 100,000-node DAG allocates millions of objects that all live
    on; each full collection would walk them again, making the per-node cost grow with
    the graph. Nothing built here forms cycles, so nothing is lost by waiting.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class Plan:
    ids: list[str]                 # definition order; index = node number
    parents: list[list[int]]
    children: list[list[int]]
    order: list[int]               # topological, ties by definition order
    layers: list[list[int]]
    # Every node defined after its dependencies: walks may then follow memory order.
    definition_is_topological: bool = False

    def order_ids(self) -> list[str]:
        return [self.ids[i] for i in self.order]

    def layer_ids(self) -> list[list[str]]:
        return [[self.ids[i] for i in layer] for layer in self.layers]


@dataclass
class Graph:
    """A DAG's edges by definition index, and what did not resolve, from one pass."""

    ids: list[str]
    parents: list[list[int]]
    children: list[list[int]]
    index: dict[str, int]                       # id → first definition
    duplicates: list[int]                       # later definitions of an id
    unresolved: list[tuple[int, str]]           # (node, dependency that names no node)
    self_dependent: list[int]


def build_graph(dag: Dag) -> Graph:
    """Every node's parents and children, resolving ids once (one pass over the edges)."""
    ids = [n.instance_id for n in dag.nodes]
    index: dict[str, int] = {}
    duplicates = []
    for i, nid in enumerate(ids):
        if index.setdefault(nid, i) != i:
            duplicates.append(i)
    parents: list[list[int]] = []
    children: list[list[int]] = [[] for _ in ids]
    unresolved: list[tuple[int, str]] = []
    self_dependent = []
    get = index.get
    for i, node in enumerate(dag.nodes):
        deps = node.depends_on
        if len(deps) > 1 and len(set(deps)) != len(deps):
            deps = list(dict.fromkeys(deps))  # a dependency named twice counts once
        ps = [j for j in map(get, deps) if j is not None]
        if len(ps) != len(deps):
            unresolved += [(i, d) for d in deps if d not in index]
        for j in ps:
            if j == i:
                self_dependent.append(i)
            children[j].append(i)
        parents.append(ps)
    return Graph(ids, parents, children, index, duplicates, unresolved, self_dependent)


def graph_indices(dag: Dag) -> tuple[list[str], list[list[int]], list[list[int]]]:
    """(ids, parents, children) by definition index; unknown dependencies are dropped."""
    g = build_graph(dag)
    return g.ids, g.parents, g.children


def plan(dag: Dag) -> Plan:
    """Plan a validated DAG. Raises ``ValueError`` if it still has a cycle."""
    with gc_paused():
        result = try_plan(*graph_indices(dag))
    if result is None:
        raise ValueError("DAG has a cycle; validate it first")
    return result


def try_plan(ids: list[str], parents: list[list[int]], children: list[list[int]]) -> Plan | None:
    """The plan, or None when the graph has a cycle (Kahn's sort leaves nodes over)."""
    n = len(ids)
    indegree = [len(p) for p in parents]
    level = [0] * n
    queue = deque(i for i in range(n) if indegree[i] == 0)
    seen = 0
    while queue:
        i = queue.popleft()
        seen += 1
        for c in children[i]:
            if level[i] + 1 > level[c]:
                level[c] = level[i] + 1
            indegree[c] -= 1
            if indegree[c] == 0:
                queue.append(c)
    if seen != n:
        return None
    layers: list[list[int]] = [[] for _ in range(max(level, default=-1) + 1)]
    for i in range(n):  # bucket in definition order: no sort needed
        layers[level[i]].append(i)
    order = [i for layer in layers for i in layer]
    in_order = all(not ps or max(ps) < i for i, ps in enumerate(parents))
    return Plan(ids=ids, parents=parents, children=children, order=order, layers=layers,
                definition_is_topological=in_order)


def find_cycles(ids: list[str], children: list[list[int]]) -> list[list[str]]:
    """One cycle path per strongly connected component that has one (iterative Tarjan)."""
    n = len(ids)
    index_of = [-1] * n
    low = [0] * n
    on_stack = [False] * n
    stack: list[int] = []
    counter = 0
    cycles: list[list[str]] = []
    for root in range(n):
        if index_of[root] != -1:
            continue
        work = [(root, 0)]
        while work:
            v, pos = work[-1]
            if pos == 0:
                index_of[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack[v] = True
            if pos < len(children[v]):
                work[-1] = (v, pos + 1)
                w = children[v][pos]
                if index_of[w] == -1:
                    work.append((w, 0))
                elif on_stack[w]:
                    low[v] = min(low[v], index_of[w])
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index_of[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in children[v]:
                    cycles.append(_cycle_path(ids, children, set(comp)))
    return cycles


def _cycle_path(ids: list[str], children: list[list[int]], comp: set[int]) -> list[str]:
    """A concrete cycle inside one component, starting at its earliest-defined node."""
    start = min(comp)
    # BFS inside the component from start back to start gives a shortest cycle.
    prev: dict[int, int] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in children[v]:
            if w not in comp:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                path.reverse()
                return [ids[i] for i in path] + [ids[start]]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return [ids[start], ids[start]]
