"""Which part of a DAG runs on the workers, and the DAG the submitting side runs instead.

A node runs on the workers (once per shard) when its module is *shard-safe* — its output
over the whole scan is the union of its outputs over the shards — and every node it
depends on runs there too. Port scanners, banner grabbing, fingerprinting, discovery and
target parsing are; an asset profile (one per host, over all its ports) is not, and
reporters (``always_run``) never are: they run where the results are merged. A module
class says so itself with ``shard_safe = True``/``False``; the built-ins are listed here.

The submitting side runs the DAG with the remote part replaced: one ``celery_shards``
node sends the shards and merges what they return, and each remote node becomes a
``shard_result`` node of the same id that publishes its merged keys, so everything after
it (asset profiles, reporters, ``-o`` outputs) runs unchanged on the merged data.
"""

from __future__ import annotations

from typing import Any

from pentora import Dag, NodeSpec, PentoraError

SHARD_SAFE = frozenset({
    "target_parser", "icmp_discovery", "tcp_probe_discovery", "arp_discovery", "discovery_merger",
    "connect_scanner", "syn_scanner", "port_scanner", "udp_scanner", "banner_grabber",
    "fingerprint_parser",
    "noop", "sleep", "set",
})
DISPATCH_ID = "shards"
DISPATCH_TYPE = "celery_shards"
RESULT_TYPE = "shard_result"
RESULTS_KEY = "shard_results"


def shard_safe(mtype: Any) -> bool:
    if mtype.always_run:
        return False
    declared = getattr(mtype.cls, "shard_safe", None)
    return bool(declared) if declared is not None else mtype.name in SHARD_SAFE


def remote_nodes(dag: Dag, registry: Any) -> list[str]:
    """Ids of the nodes that run on the workers, in definition order."""
    remote: set[str] = set()
    nodes = dag.node_map()
    done: dict[str, bool] = {}

    def runs_remote(nid: str) -> bool:
        if nid not in done:
            node = nodes[nid]
            mtype = registry.modules.get(node.module_type)
            done[nid] = (mtype is not None and shard_safe(mtype)
                         and all(runs_remote(d) for d in node.depends_on))
        return done[nid]

    for node in dag.nodes:
        if runs_remote(node.instance_id):
            remote.add(node.instance_id)
    return [n.instance_id for n in dag.nodes if n.instance_id in remote]


def remote_dag(dag: Dag, remote: list[str], shard_timeout: float) -> dict[str, Any]:
    """The DAG a worker runs for each shard, as plain data (``load_dag`` reads it back).
    The shard timeout bounds it as a global timeout, so a stuck shard ends with a record."""
    keep = set(remote)
    data = dag.to_dict()
    data["nodes"] = [n for n in data["nodes"] if n["instance_id"] in keep]
    engine = data["engine"]
    current = engine.get("global_timeout")
    engine["global_timeout"] = min(current, shard_timeout) if current else shard_timeout
    return data


def _class_rule(registry: Any, node: NodeSpec) -> str:
    return str(registry.modules[node.module_type].cls.trigger_rule)


def _dispatch_id(dag: Dag) -> str:
    taken, name, n = set(dag.node_map()), DISPATCH_ID, 1
    while name in taken:
        n += 1
        name = f"{DISPATCH_ID}_{n}"
    return name


def local_dag(dag: Dag, remote: list[str], produces: dict[str, tuple[str, ...]], registry: Any) -> Dag:
    """The DAG the submitting side runs: dispatcher, stand-ins for the remote nodes, the rest.
    A stand-in keeps its node's condition and trigger rule, so it is skipped (and its
    dependents run or not) just as the node itself was on the workers."""
    if not remote:
        raise PentoraError(f"no node of DAG '{dag.name}' can run on workers (none is shard-safe); "
                           "run it without --executor celery")
    keep = set(remote)
    dispatch = _dispatch_id(dag)
    nodes = [NodeSpec(dispatch, DISPATCH_TYPE, description="runs the shards on Celery workers",
                      retry={"enabled": False})]
    for node in dag.nodes:
        if node.instance_id in keep:
            nodes.append(NodeSpec(node.instance_id, RESULT_TYPE, [dispatch, *node.depends_on],
                                  config={"node": node.instance_id,
                                          "produces": list(produces.get(node.instance_id, ()))},
                                  condition=node.condition,
                                  trigger_rule=node.trigger_rule or _class_rule(registry, node),
                                  description=f"{node.module_type}, merged from the shards",
                                  retry={"enabled": False}))
        else:
            nodes.append(node)
    return Dag(nodes=nodes, name=dag.name, description=dag.description, vars=dict(dag.vars),
               engine=dag.engine, source=dag.source)
