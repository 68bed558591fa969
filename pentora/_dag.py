"""The DAG model: plain dataclasses that the parser and ``DagBuilder`` produce."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass
class RetrySpec:
    """When and how to retry a failed node (``engine.retry`` or a node's ``retry``)."""

    enabled: bool = False
    max_attempts: int = 3
    backoff: str = "exponential"
    initial: float = 1.0
    max: float | None = None
    jitter: float = 0.0
    retry_on: tuple[str, ...] = ("timeout", "network_error")

    def merged(self, override: dict[str, Any] | None) -> RetrySpec:
        """This spec with a node's partial override applied on top."""
        if not override:
            return self
        values = dict(override)
        if "retry_on" in values:
            values["retry_on"] = tuple(values["retry_on"])
        # A node that says anything about retrying means it, unless it says enabled: false.
        values.setdefault("enabled", True)
        return replace(self, **values)


@dataclass
class DataContextSpec:
    max_size: int | None = None
    evict_policy: str = "lru"


@dataclass
class EngineConfig:
    fail_fast: bool = True
    retry: RetrySpec = field(default_factory=RetrySpec)
    max_parallel_nodes: int = 10
    max_parallel_targets: int = 100
    data_context: DataContextSpec = field(default_factory=DataContextSpec)
    global_timeout: float | None = None
    node_timeout: float | None = None
    reporter_timeout: float = 30.0


@dataclass
class NodeSpec:
    """One module instance in a DAG."""

    instance_id: str
    module_type: str
    depends_on: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    condition: str | None = None
    subdag_file: str | None = None
    retry: dict[str, Any] | None = None
    timeout: float | None = None
    for_each: str | None = None
    trigger_rule: str | None = None
    description: str = ""
    # Where the node was defined, for error messages.
    source: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "instance_id": self.instance_id,
            "module_type": self.module_type,
            "depends_on": list(self.depends_on),
        }
        for f in fields(self):
            if f.name in out or f.name in ("source", "line"):
                continue
            value = getattr(self, f.name)
            if value not in (None, {}, [], ""):
                out[f.name] = value
        return out


@dataclass
class Dag:
    """A parsed, sub-DAG-expanded graph. Not yet validated against a registry."""

    nodes: list[NodeSpec]
    name: str = "dag"
    description: str = ""
    vars: dict[str, Any] = field(default_factory=dict)
    engine: EngineConfig = field(default_factory=EngineConfig)
    source: str | None = None

    def node_map(self) -> dict[str, NodeSpec]:
        return {n.instance_id: n for n in self.nodes}

    def to_dict(self) -> dict[str, Any]:
        """A plain structure that ``load_dag`` reads back (for shipping a DAG to workers)."""
        from dataclasses import asdict

        engine = asdict(self.engine)
        engine["retry"]["retry_on"] = list(engine["retry"]["retry_on"])
        return {
            "name": self.name,
            "description": self.description,
            "vars": dict(self.vars),
            "engine": engine,
            "nodes": [n.to_dict() for n in self.nodes],
        }
