"""Validation: every problem of a DAG at once, each naming its node.

Checks, in order: duplicate ids, missing dependencies, cycles (with their path),
unknown module types (with the nearest registered names), module config against the
module's voluptuous schema, conditions (parsed for every node, whatever the graph), the
static data contract (a required key must have an upstream producer; condition names
must be vars or upstream keys), and retry policies.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import voluptuous as vol

from ._condition import Condition
from ._dag import Dag, NodeSpec
from ._errors import ConditionError, Problem
from ._interpolate import UnknownVariableError, interpolate
from ._parse import humanize
from ._plan import Plan, build_graph, find_cycles, gc_paused, try_plan
from ._registry import Registry


@dataclass
class Validated:
    """What validation learnt: configs with defaults applied, contracts, conditions."""

    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)
    produces: dict[str, tuple[str, ...]] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    plan: Plan | None = None  # set when the graph has no cycle
    # Nodes found invalid themselves, with what they would produce when fixed (the class's
    # static ``produces``; None for an unknown module type, which could produce anything):
    # a key missing downstream of them is a follow-on of their problem, not one of its own.
    invalid: dict[str, tuple[str, ...] | None] = field(default_factory=dict)


def _p(node: NodeSpec, message: str, key: str | None = None) -> Problem:
    return Problem(message, node=node.instance_id, source=node.source, line=node.line, key=key)


def validate_dag(dag: Dag, registry: Registry, *, vars: dict[str, Any] | None = None,
                 initial_keys: Iterable[str] = ()) -> Validated:
    with gc_paused():
        return _validate(dag, registry, vars, initial_keys)


def _validate(dag: Dag, registry: Registry, vars: dict[str, Any] | None,
              initial_keys: Iterable[str]) -> Validated:
    out = Validated()
    problems = out.problems
    known_vars = {**dag.vars, **(vars or {})}
    graph = build_graph(dag)
    nodes = dag.nodes
    for i in graph.duplicates:
        node, prev = nodes[i], nodes[graph.index[nodes[i].instance_id]]
        where = f" (first defined at line {prev.line})" if prev.line else ""
        problems.append(_p(node, f"Duplicate instance_id '{node.instance_id}'{where}: "
                                 "every node needs its own id"))
    for i in graph.self_dependent:
        problems.append(_p(nodes[i], f"Node '{nodes[i].instance_id}' depends on itself"))
    for i, dep in graph.unresolved:
        node = nodes[i]
        hint = difflib.get_close_matches(dep, list(graph.index), n=1, cutoff=0.6)
        tail = f" (did you mean '{hint[0]}'?)" if hint else ""
        problems.append(_p(node, f"Node '{node.instance_id}' depends on '{dep}' "
                                 f"which does not exist{tail}"))
    problems.sort(key=lambda p: graph.index.get(p.node or "", -1))  # in definition order
    # Kahn's sort plans the graph and detects a cycle in one pass; Tarjan runs only to
    # name the cycles of a graph that has some.
    out.plan = try_plan(graph.ids, graph.parents, graph.children)
    if out.plan is None:
        for path in find_cycles(graph.ids, graph.children):
            if len(path) == 2 and path[0] == path[1]:
                continue  # self-dependency, already reported in its own words
            problems.append(_p(nodes[graph.index[path[0]]], "Cycle detected in DAG: " + " → ".join(path)))
    _check_modules(dag, registry, out, known_vars)
    _parse_conditions(dag, out)
    if out.plan is not None and not graph.duplicates:
        _check_contract(dag, out.plan, out, set(initial_keys), known_vars)
    _check_retry(dag, registry, problems)
    return out


def _check_modules(dag: Dag, registry: Registry, out: Validated, known_vars: dict[str, Any]) -> None:
    for node in dag.nodes:
        mtype = registry.modules.get(node.module_type)
        if mtype is None:
            out.problems.append(_p(node, f"Node '{node.instance_id}': unknown module_type "
                                         f"'{node.module_type}'{registry.nearest_hint(node.module_type)}",
                                   key="module_type"))
            out.invalid[node.instance_id] = None
            continue
        out.invalid[node.instance_id] = tuple(mtype.cls.produces)  # until its config passes
        try:
            raw = interpolate(dict(node.config), known_vars)
        except UnknownVariableError as e:
            out.problems.append(_p(node, f"Node '{node.instance_id}' ({node.module_type}): "
                                         f"config.{e.path}: unknown variable '{e.name}' (define it "
                                         f"under vars: or pass --set {e.name}=VALUE)",
                                   key=f"config.{e.path}"))
            continue
        try:
            config = mtype.schema()(raw)
        except vol.MultipleInvalid as err:
            for key, msg in humanize(err, mtype.cls.config_schema, raw):
                out.problems.append(_p(node, f"Node '{node.instance_id}' ({node.module_type}): "
                                             f"config.{key}: {msg}", key=f"config.{key}"))
            continue
        except vol.Invalid as err:
            out.problems.append(_p(node, f"Node '{node.instance_id}' ({node.module_type}): "
                                         f"config: {err}"))
            continue
        out.configs[node.instance_id] = config
        try:
            requires, produces = mtype.cls.contract(config)
        except Exception as e:
            out.problems.append(_p(node, f"Node '{node.instance_id}' ({node.module_type}): "
                                         f"contract() failed: {type(e).__name__}: {e}"))
            continue
        out.requires[node.instance_id] = tuple(requires)
        out.produces[node.instance_id] = tuple(produces)
        del out.invalid[node.instance_id]


def _check_contract(dag: Dag, plan: Plan, out: Validated, initial: set[str],
                    known_vars: dict[str, Any]) -> None:
    """Every required key (and for_each key, and condition name) has an upstream producer.

    A key that an invalid upstream node would produce once fixed is not reported: that
    node's own problem says what to fix, and a second message about it would mislead.

    Key sets are int bitmasks over the DAG's key vocabulary: one OR per edge, in
    topological order, O(V + E) for any realistic number of keys.
    """
    bit: dict[str, int] = {}

    def has(seen: int, key: str) -> bool:
        b = bit.get(key)
        return b is not None and bool(seen >> b & 1)

    def mask(keys: Any) -> int:
        m = 0
        for key in keys:
            m |= 1 << bit.setdefault(key, len(bit))
        return m

    base = mask(initial)
    produced = [mask(out.produces.get(n.instance_id, ())) for n in dag.nodes]
    would = [mask(out.invalid.get(n.instance_id) or ()) for n in dag.nodes]
    visible = [0] * len(dag.nodes)  # keys available to node i from its upstream
    # Keys invalid upstream nodes would add, and whether one of unknown type is upstream.
    follow = [0] * len(dag.nodes)
    anything = [False] * len(dag.nodes)
    producers: dict[str, list[str]] = {}
    for node in dag.nodes:
        for key in out.produces.get(node.instance_id, ()):
            producers.setdefault(key, []).append(node.instance_id)
    for i in range(len(dag.nodes)) if plan.definition_is_topological else plan.order:
        seen, maybe, wild = base, 0, False
        for p in plan.parents[i]:
            seen |= visible[p] | produced[p]
            maybe |= follow[p] | would[p]
            wild = wild or anything[p] or (out.invalid.get(dag.nodes[p].instance_id, ()) is None)
        visible[i], follow[i], anything[i] = seen, maybe, wild
        seen_or_follow = seen | maybe
        node = dag.nodes[i]
        if wild:
            continue  # an upstream node of unknown type: what it produces is unknown
        for key in out.requires.get(node.instance_id, ()):
            choices = alternatives(key)
            if len(choices) > 1 and not any(has(seen_or_follow, k) for k in choices):
                named = ", ".join(f"'{k}'" for k in choices)
                out.problems.append(_p(node, f"Node '{node.instance_id}' requires one of {named} "
                                             "but no upstream node produces any: add a node that "
                                             "does to its depends_on"))
            elif len(choices) == 1 and not has(seen_or_follow, key):
                out.problems.append(_p(node, f"Node '{node.instance_id}' requires '{key}' but no "
                                             f"upstream node produces it{_producer_hint(key, producers)}"))
        if node.for_each and not has(seen_or_follow, node.for_each):
            out.problems.append(_p(node, f"Node '{node.instance_id}' maps over '{node.for_each}' "
                                         f"(for_each) but no upstream node produces it"
                                         f"{_producer_hint(node.for_each, producers)}"))
        if node.condition is not None:
            names = frozenset(k for k, b in bit.items() if seen_or_follow >> b & 1)
            _check_condition(node, names, known_vars, out)


def alternatives(key: str) -> tuple[str, ...]:
    """The keys a required entry accepts: ``a|b`` is met by either (the module reads the
    best one there is, e.g. fingerprints when upstream, else open ports)."""
    return tuple(k for k in key.split("|") if k)


def _producer_hint(key: str, producers: dict[str, list[str]]) -> str:
    nodes = producers.get(key)
    if not nodes:
        return ""
    names = ", ".join(f"'{n}'" for n in nodes[:3])
    return f" ({names} produces it: add it to depends_on)"


def _parse_conditions(dag: Dag, out: Validated) -> None:
    """Parse every condition; needs no graph, so it runs even when the graph is broken."""
    for node in dag.nodes:
        if node.condition is None:
            continue
        try:
            out.conditions[node.instance_id] = Condition(node.condition)
        except ConditionError as e:
            out.problems.append(_p(node, f"Node '{node.instance_id}': {e}", key="condition"))


def _check_condition(node: NodeSpec, seen: frozenset[str], known_vars: dict[str, Any],
                     out: Validated) -> None:
    cond = out.conditions.get(node.instance_id)
    if cond is None:
        return
    for name in sorted(cond.names):
        if name not in known_vars and name not in seen:
            out.problems.append(_p(node, f"Node '{node.instance_id}': condition refers to '{name}', "
                                         "which is neither a var nor a key produced upstream "
                                         f"(define it under vars: or pass --set {name}=VALUE)",
                                   key="condition"))


def _check_retry(dag: Dag, registry: Registry, problems: list[Problem]) -> None:
    def check(backoff: str, where: str, node: NodeSpec | None) -> None:
        if backoff in registry.retry_policies:
            return
        near = difflib.get_close_matches(backoff, list(registry.retry_policies), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        known = ", ".join(sorted(registry.retry_policies)) or "none registered"
        msg = f"{where}: unknown retry policy '{backoff}'{hint}; known: {known}"
        problems.append(_p(node, msg) if node else Problem(msg, source=dag.source))

    if dag.engine.retry.enabled:
        check(dag.engine.retry.backoff, "engine.retry.backoff", None)
    for node in dag.nodes:
        if node.retry:
            spec = dag.engine.retry.merged(node.retry)
            if spec.enabled:
                check(spec.backoff, f"Node '{node.instance_id}': retry.backoff", node)
