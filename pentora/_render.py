"""Text renderings of a DAG: plan listing, Graphviz dot and Mermaid."""

from __future__ import annotations

import json
import re
from typing import Any

from ._dag import Dag
from ._plan import Plan
from ._text import clean

# A DAG file is input like any other: its names may carry terminal escapes, and these
# renderings are read on a terminal. Every name goes through ``clean`` (no length limit).


def _c(value: object) -> str:
    return clean(value, None)


def plan_text(dag: Dag, plan: Plan) -> str:
    nodes = dag.node_map()
    lines = [f"DAG '{_c(dag.name)}': {len(dag.nodes)} nodes, {len(plan.layers)} layers", ""]
    for level, layer in enumerate(plan.layer_ids()):
        lines.append(f"Layer {level}: " + ", ".join(map(_c, layer)))
    lines += ["", "Execution order:"]
    for pos, nid in enumerate(plan.order_ids(), 1):
        node = nodes[nid]
        deps = f" ← {', '.join(map(_c, node.depends_on))}" if node.depends_on else ""
        extra = []
        if node.condition:
            extra.append(f"if {_c(node.condition)}")
        if node.for_each:
            extra.append(f"for each {_c(node.for_each)}")
        tail = f"  [{'; '.join(extra)}]" if extra else ""
        lines.append(f"  {pos:>3}. {_c(nid)} ({_c(node.module_type)}){deps}{tail}")
    return "\n".join(lines)


def plan_json(dag: Dag, plan: Plan) -> str:
    data: dict[str, Any] = {
        "name": dag.name,
        "nodes": len(dag.nodes),
        "layers": plan.layer_ids(),
        "order": plan.order_ids(),
    }
    return json.dumps(data, indent=2)


def _dot_id(*lines: str) -> str:
    """A DOT string of ``lines``: each cleaned first, so the backslash of an escape is
    doubled like any other and the label shows ``\\x1b``, not a control."""
    return '"' + "\n".join(_c(t).replace("\\", "\\\\").replace('"', '\\"') for t in lines) + '"'


def dot(dag: Dag, statuses: dict[str, str] | None = None) -> str:
    colors = {"completed": "palegreen", "failed": "salmon", "skipped": "lightgrey",
              "cancelled": "khaki", "running": "lightblue"}
    lines = [f"digraph {_dot_id(dag.name)} {{", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for n in dag.nodes:
        attrs = f'label={_dot_id(n.instance_id, n.module_type)}'
        status = (statuses or {}).get(n.instance_id)
        if status in colors:
            attrs += f', style="rounded,filled", fillcolor={colors[status]}'
        lines.append(f"  {_dot_id(n.instance_id)} [{attrs}];")
    for n in dag.nodes:
        for d in n.depends_on:
            lines.append(f"  {_dot_id(d)} -> {_dot_id(n.instance_id)};")
    lines.append("}")
    return "\n".join(lines)


def _mermaid_id(text: str, ids: dict[str, str]) -> str:
    if text not in ids:
        ids[text] = f"n{len(ids)}_" + re.sub(r"[^A-Za-z0-9_]", "_", text)
    return ids[text]


def mermaid(dag: Dag) -> str:
    ids: dict[str, str] = {}
    lines = ["flowchart LR"]
    for n in dag.nodes:
        label = f"{_c(n.instance_id)}<br/>{_c(n.module_type)}".replace('"', "#quot;")
        lines.append(f'  {_mermaid_id(n.instance_id, ids)}["{label}"]')
    for n in dag.nodes:
        for d in n.depends_on:
            lines.append(f"  {_mermaid_id(d, ids)} --> {_mermaid_id(n.instance_id, ids)}")
    return "\n".join(lines)
