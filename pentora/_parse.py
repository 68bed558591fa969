"""Read a DAG definition (YAML or JSON: path, text or bytes) into a ``Dag``.

Every structural problem is collected and raised together as a ``DagParseError``.
Sub-DAGs (``module_type: subdag`` + ``subdag_file``) are expanded here, their nodes
namespaced under the including node's id (``discover.icmp``).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import voluptuous as vol

from . import schema as s
from ._dag import Dag, DataContextSpec, EngineConfig, NodeSpec, RetrySpec
from ._errors import DagParseError, Problem
from ._input import InputError, read_input
from ._plan import gc_paused
from ._units import MAX_BYTES

SUBDAG = "subdag"
RETRY_CLASSES = ("timeout", "network_error", "transient", "any")
TRIGGER_RULES = ("all_success", "one_success", "all_done")


def _jitter(value: object) -> float:
    if isinstance(value, bool):
        return 0.5 if value else 0.0
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return float(value)
    raise vol.Invalid(f"expected true/false or a fraction between 0 and 1, got {value!r}")


def _retry_on(value: object) -> list[str]:
    items = s.StrList()(value)
    for item in items:
        if item not in RETRY_CLASSES:
            raise vol.Invalid(
                f"unknown error class {item!r}{_did_you_mean(item, RETRY_CLASSES)}; "
                f"known: {', '.join(RETRY_CLASSES)}"
            )
    return items


RETRY_SCHEMA = {
    vol.Optional("enabled"): s.Bool(),
    vol.Optional("max_attempts"): s.PositiveInt(),
    vol.Optional("backoff"): s.Str(),
    vol.Optional("initial"): s.Duration(),
    vol.Optional("max"): s.Nullable(s.Duration()),
    vol.Optional("jitter"): _jitter,
    vol.Optional("retry_on"): _retry_on,
}

ENGINE_SCHEMA = {
    vol.Optional("fail_fast"): s.Bool(),
    vol.Optional("retry"): RETRY_SCHEMA,
    vol.Optional("max_parallel_nodes"): s.PositiveInt(),
    vol.Optional("max_parallel_targets"): s.PositiveInt(),
    vol.Optional("data_context"): {
        vol.Optional("max_size"): s.Nullable(s.Size()),
        vol.Optional("evict_policy"): vol.In(["lru", "none"]),
    },
    vol.Optional("global_timeout"): s.Nullable(s.Duration()),
    vol.Optional("node_timeout"): s.Nullable(s.Duration()),
    vol.Optional("reporter_timeout"): s.Duration(),
}


def _condition(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return s.Str()(value)  # type: ignore[no-any-return]


def _config(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise vol.Invalid(f"expected a mapping of settings, got {type(value).__name__} {value!r}")
    return value


def _node_retry(value: object) -> dict[str, Any]:
    if value is False:
        return {"enabled": False}
    if value is True:
        return {"enabled": True}
    return vol.Schema(RETRY_SCHEMA)(value)  # type: ignore[no-any-return]


NODE_SCHEMA = {
    vol.Required("instance_id"): s.Str(),
    vol.Required("module_type"): s.Str(),
    vol.Optional("depends_on"): s.Nullable(s.StrList()),
    vol.Optional("config"): _config,
    vol.Optional("condition"): s.Nullable(_condition),
    vol.Optional("subdag_file"): s.Str(),
    vol.Optional("retry"): _node_retry,  # did-you-mean: see _unwrap
    vol.Optional("timeout"): s.Nullable(s.Duration()),
    vol.Optional("for_each"): s.Str(),
    vol.Optional("trigger_rule"): vol.In(TRIGGER_RULES),
    vol.Optional("description"): s.Str(),
}


def _vars(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise vol.Invalid(f"expected a mapping of names to values, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key.isidentifier():
            raise vol.Invalid(f"variable name {key!r} is not an identifier")
    return value


TOP_SCHEMA = {
    vol.Optional("name"): s.Str(),
    vol.Optional("description"): s.Nullable(s.Str()),
    vol.Optional("vars"): _vars,
    vol.Optional("engine"): s.Nullable(ENGINE_SCHEMA),
    vol.Required("nodes"): list,
}

_SCHEMAS = {
    "top": vol.Schema(TOP_SCHEMA),
    "node": vol.Schema(NODE_SCHEMA),
}


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unwrap(schema: Any) -> Any:
    """The mapping inside a wrapped schema (Schema, Nullable, Any/All, _node_retry)."""
    for _ in range(10):
        if isinstance(schema, dict):
            return schema
        if schema is _node_retry:
            schema = RETRY_SCHEMA
        elif isinstance(schema, vol.Schema):
            schema = schema.schema
        elif hasattr(schema, "pentora_inner"):
            schema = schema.pentora_inner
        elif isinstance(schema, (vol.Any, vol.All)):
            schema = next((v for v in schema.validators if isinstance(_unwrap(v), dict)), None)
        else:
            return None
    return schema if isinstance(schema, dict) else None


def _known_keys(schema: Any, path: list[Any]) -> list[str]:
    """The keys a mapping at ``path`` inside ``schema`` accepts (for did-you-mean)."""
    node = _unwrap(schema)
    for part in path:
        if node is None:
            return []
        node = _unwrap(next((v for k, v in node.items() if getattr(k, "schema", k) == part), None))
    if node is not None:
        return [str(getattr(k, "schema", k)) for k in node]
    return []


def _path_text(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def humanize(err: vol.MultipleInvalid, schema: Any, data: Any) -> list[tuple[str, str]]:
    """(key path, message) for each voluptuous error, showing the bad value."""
    out = []
    for e in err.errors:
        path = list(e.path)
        text = _path_text(path)
        if e.error_message == "extra keys not allowed":
            key = path[-1] if path else "?"
            hint = _did_you_mean(str(key), _known_keys(schema, path[:-1]))
            known = ", ".join(_known_keys(schema, path[:-1]))
            out.append((text, f"unknown field '{key}'{hint}; known fields: {known}"))
            continue
        if e.error_message == "required key not provided":
            out.append((text, f"missing required field '{path[-1]}'"))
            continue
        value = _value_at(data, path)
        msg = e.error_message
        if value is not _MISSING and not _mentions(msg, value):
            msg += f" (got {_short(value)})"
        out.append((text, msg))
    return out


_MISSING = object()


def _value_at(data: Any, path: list[Any]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


def _mentions(msg: str, value: Any) -> bool:
    """Whether the validator's message already shows ``value``: quoted its own way (``'it's'``
    rather than repr's ``"it's"``), or a list as its items (``'80,70000'``)."""
    if isinstance(value, (list, tuple)) and value:
        return all(_mentions(msg, item) for item in value)
    if isinstance(value, (dict, set)) or value is None:
        return repr(value) in msg
    # As a whole word: a 1 is not shown by "between 2 and 10".
    return repr(value) in msg or re.search(rf"(?<![\w.-]){re.escape(str(value))}(?![\w.-])",
                                          msg) is not None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Reader:
    """One DAG document and the sub-DAG files it includes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.problems: list[Problem] = []

    def problem(self, message: str, **where: Any) -> None:
        self.problems.append(Problem(message, **where))

    def read(self, data: Any, lines: list[int], source: str | None, base: Path,
             stack: tuple[Path, ...]) -> Dag:
        if not isinstance(data, dict):
            kind = "empty document" if data is None else f"a {type(data).__name__}"
            self.problem(f"expected a mapping with 'nodes' at the top level, got {kind}", source=source)
            return Dag(nodes=[], source=source)
        top = {k: v for k, v in data.items()}
        try:
            top = _SCHEMAS["top"](top)
        except vol.MultipleInvalid as err:
            for key, msg in humanize(err, TOP_SCHEMA, data):
                self.problem(f"{key}: {msg}", source=source, key=key)
            top = {k: v for k, v in data.items() if k in ("nodes",)}
        raw_nodes: list[Any] = top["nodes"] if isinstance(top.get("nodes"), list) else []
        if isinstance(top.get("nodes"), list) and not raw_nodes:
            self.problem("DAG has no nodes: 'nodes' must list at least one node", source=source)
        dag = Dag(
            nodes=[],
            name=top.get("name") or (Path(source).stem if source else "dag"),
            description=top.get("description") or "",
            vars=dict(top.get("vars") or {}),
            engine=_engine(top.get("engine") or {}),
            source=source,
        )
        subdags: list[str] = []
        for index, raw in enumerate(raw_nodes):
            line = lines[index] if index < len(lines) else None
            node = self._node(raw, index, source, line)
            if node is None:
                continue
            if node.module_type == SUBDAG:
                subdags.append(node.instance_id)
                dag.nodes.extend(self._expand(node, dag, base, stack))
            else:
                if node.subdag_file:
                    self.problem(
                        f"Node '{node.instance_id}': subdag_file is only read with "
                        f"module_type: subdag (this node is '{node.module_type}')",
                        node=node.instance_id, source=source, line=line,
                    )
                dag.nodes.append(node)
        _rewire_subdag_dependents(dag, subdags)
        return dag

    def _node(self, raw: Any, index: int, source: str | None, line: int | None) -> NodeSpec | None:
        label = f"nodes[{index}]"
        if not isinstance(raw, dict):
            self.problem(f"{label}: expected a mapping with instance_id and module_type, got "
                         f"{type(raw).__name__} {_short(raw)}", source=source, line=line)
            return None
        ident = raw.get("instance_id")
        name = ident if isinstance(ident, str) else None
        if name is not None:
            label = f"Node '{name}'"
        elif ident is not None:
            label = f"{label} (instance_id {_short(ident)})"
        try:
            valid = _SCHEMAS["node"](raw)
        except vol.MultipleInvalid as err:
            for key, msg in humanize(err, NODE_SCHEMA, raw):
                if key == "instance_id" and ident is not None:
                    msg = f"instance_id must be a string, got {type(ident).__name__} {_short(ident)}"
                self.problem(f"{label}: {key}: {msg}", node=name, source=source, line=line, key=key)
            return None
        if not valid["instance_id"].strip():
            self.problem(f"{label}: instance_id is empty", source=source, line=line)
            return None
        return NodeSpec(
            instance_id=valid["instance_id"],
            module_type=valid["module_type"],
            depends_on=list(valid.get("depends_on") or []),
            config=dict(valid.get("config") or {}),
            condition=valid.get("condition"),
            subdag_file=valid.get("subdag_file"),
            retry=valid.get("retry"),
            timeout=valid.get("timeout"),
            for_each=valid.get("for_each"),
            trigger_rule=valid.get("trigger_rule"),
            description=valid.get("description") or "",
            source=source,
            line=line,
        )

    def _expand(self, node: NodeSpec, parent: Dag, base: Path,
                stack: tuple[Path, ...]) -> list[NodeSpec]:
        where = {"node": node.instance_id, "source": node.source, "line": node.line}
        if not node.subdag_file:
            self.problem(f"Node '{node.instance_id}': module_type subdag needs a subdag_file", **where)
            return []
        path = (base / node.subdag_file).resolve()
        if path in stack:
            chain = " → ".join(p.name for p in (*stack, path))
            self.problem(f"Node '{node.instance_id}': sub-DAG inclusion cycle: {chain} "
                         f"(resolved {path})", **where)
            return []
        if not path.exists():
            self.problem(f"Node '{node.instance_id}': sub-DAG file '{node.subdag_file}' not found "
                         f"(resolved to {path})", **where)
            return []
        if node.config:
            self.problem(f"Node '{node.instance_id}': a subdag node takes no config; "
                         "set values through vars", **where)
        before = len(self.problems)
        try:
            data, lines = _load_document(_read_dag(str(path), self.max_bytes), str(path), self.max_bytes)
        except DagParseError as e:
            self.problems.extend(
                Problem(f"Node '{node.instance_id}': in sub-DAG {path}: {p.message}",
                        node=node.instance_id, source=str(path), line=p.line)
                for p in e.problems
            )
            return []
        sub = self.read(data, lines, str(path), path.parent, (*stack, path))
        if len(self.problems) > before:
            # Name the including node: the sub-DAG's own ids mean little to the reader.
            self.problems[before:] = [
                Problem(f"Node '{node.instance_id}': in sub-DAG {path}: {p.message}",
                        node=node.instance_id, source=p.source, line=p.line, key=p.key)
                if not p.message.startswith(f"Node '{node.instance_id}': ") else p
                for p in self.problems[before:]]
            return []
        for key, value in sub.vars.items():
            parent.vars.setdefault(key, value)
        return _namespace(node, sub.nodes)


def _namespace(parent: NodeSpec, nodes: list[NodeSpec]) -> list[NodeSpec]:
    """Prefix sub-DAG ids with the parent's; its roots inherit the parent's dependencies."""
    prefix = parent.instance_id + "."
    inner = {n.instance_id for n in nodes}
    out = []
    for n in nodes:
        deps = [prefix + d if d in inner else d for d in n.depends_on]
        if not n.depends_on:
            deps = list(parent.depends_on)
        condition = n.condition
        if parent.condition:
            condition = f"({parent.condition}) and ({n.condition})" if n.condition else parent.condition
        out.append(NodeSpec(
            instance_id=prefix + n.instance_id,
            module_type=n.module_type,
            depends_on=deps,
            config=n.config,
            condition=condition,
            retry=n.retry if n.retry is not None else parent.retry,
            timeout=n.timeout if n.timeout is not None else parent.timeout,
            for_each=n.for_each,
            trigger_rule=n.trigger_rule,
            description=n.description,
            source=n.source,
            line=n.line,
        ))
    return out


def _sinks(dag_nodes: list[NodeSpec], prefix: str) -> list[str]:
    ids = [n.instance_id for n in dag_nodes if n.instance_id.startswith(prefix)]
    used = {d for n in dag_nodes if n.instance_id.startswith(prefix) for d in n.depends_on}
    return [i for i in ids if i not in used]


def _rewire_subdag_dependents(dag: Dag, subdag_ids: list[str]) -> None:
    """A node that depends on a subdag node waits for every sink of that sub-DAG."""
    sinks = {sid: _sinks(dag.nodes, sid + ".") for sid in subdag_ids}
    for n in dag.nodes:
        if any(d in sinks for d in n.depends_on):
            deps: list[str] = []
            for d in n.depends_on:
                for x in sinks.get(d, [d]):
                    if x not in deps:
                        deps.append(x)
            n.depends_on = deps


def _engine(raw: dict[str, Any]) -> EngineConfig:
    engine = EngineConfig()
    for key, value in raw.items():
        if key == "retry":
            engine.retry = RetrySpec(**{  # type: ignore[arg-type]
                k: (tuple(v) if k == "retry_on" else v) for k, v in value.items()
            })
        elif key == "data_context":
            engine.data_context = DataContextSpec(**value)
        else:
            setattr(engine, key, value)
    return engine



def load_dag(source: str | bytes | os.PathLike[str] | dict[str, Any], *,
             base_dir: str | os.PathLike[str] | None = None, max_bytes: int = MAX_BYTES) -> Dag:
    """Parse a DAG from a file path, YAML/JSON text or bytes, or a parsed mapping.

    A string is a path when it names an existing path or ends in ``.yaml``/``.yml``/
    ``.json`` without a newline; otherwise it is the document itself. Sub-DAG paths
    resolve relative to the including file (``base_dir`` or the working directory for
    text). Raises ``DagParseError`` listing every problem found.
    """
    name: str | None = None
    if isinstance(source, dict):  # an already-parsed document, e.g. Dag.to_dict()
        reader = _Reader(max_bytes)
        dag = reader.read(source, [], None, Path(base_dir or os.getcwd()).resolve(), ())
        if reader.problems:
            raise DagParseError(reader.problems)
        return dag
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source
        and (source.endswith((".yaml", ".yml", ".json")) or os.path.exists(source))
    ):
        path = Path(source).resolve()
        name = str(source)
        text: str | bytes = _read_dag(name, max_bytes)
        base = path.parent
        stack: tuple[Path, ...] = (path,)
    else:
        text = source  # type: ignore[assignment]
        base = Path(base_dir or os.getcwd()).resolve()
        stack = ()
    with gc_paused():
        data, lines = _load_document(text, name, max_bytes)
        reader = _Reader(max_bytes)
        dag = reader.read(data, lines, name, base, stack)
    if reader.problems:
        raise DagParseError(reader.problems)
    return dag


def _read_dag(name: str, max_bytes: int) -> bytes:
    """A DAG file's bytes: a regular file of at most ``max_bytes``, else a DagParseError."""
    try:
        return read_input(name, what="DAG", max_bytes=max_bytes)
    except InputError as e:
        raise DagParseError(Problem(e.message, source=e.source)) from e


def _load_document(text: str | bytes, source: str | None, max_bytes: int) -> tuple[Any, list[int]]:
    # PyYAML is imported on the first document read, not with pentora: a DAG built in
    # Python (DagBuilder, a dict) never needs it, and it is a tenth of the start-up.
    from ._yaml import load_document

    return load_document(text, source, max_bytes)
