"""A scan request (JSON) → a loaded, validated scan, checked as ``pentora scan`` checks one.

The request's fields become ``pentora scan``'s options (``--targets``, ``--ports``,
``--profile``) on a namespace of that command's defaults, and go through the same code
(``pentora.cli.new_scan``: the plugins' ``pentora_cli_scan_vars``, the profile lookup),
then ``orch.validate``. Every problem found is kept, as ``pentora dag validate --format
json`` lists them.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from typing import Any

from pentora import DagParseError, PentoraError, ValidationError, interpolate, load_dag
from pentora.cli import list_profiles, new_scan, profile_path, unused_vars

FIELDS = ("targets", "ports", "profile", "dag", "vars", "name")


class RequestError(Exception):
    """The request is invalid: ``status`` (422, 403) and every problem."""

    def __init__(self, status: int, error: str, problems: list[dict[str, Any]]) -> None:
        super().__init__(error)
        self.status, self.error, self.problems = status, error, problems


@dataclass
class ScanSpec:
    """A validated scan: its DAG (as data), the vars it runs with, and its targets."""

    dag: Any
    variables: dict[str, Any]
    targets: Any
    name: str | None = None
    request: dict[str, Any] = field(default_factory=dict)


def _problem(message: str, key: str | None = None, node: str | None = None) -> dict[str, Any]:
    return {"message": message, "node": node, "source": "request", "line": None, "key": key}


def _shape(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return [_problem("the body must be a JSON object: {\"targets\": …, \"profile\": …}")]
    out = [_problem(f"unknown field '{k}'; fields: {', '.join(FIELDS)}", k) for k in body
           if k not in FIELDS]
    targets = body.get("targets")
    if targets is not None and not (isinstance(targets, str) or (
            isinstance(targets, list) and all(isinstance(t, str) for t in targets))):
        out.append(_problem("targets: a string (\"127.0.0.1,127.0.0.2/31\") or a list of them",
                            "targets"))
    for key in ("ports", "profile", "name"):
        if body.get(key) is not None and not isinstance(body[key], str):
            out.append(_problem(f"{key}: a string", key))
    if body.get("dag") is not None and not isinstance(body["dag"], dict):
        out.append(_problem("dag: a DAG as a JSON object (name, vars, nodes)", "dag"))
    if body.get("vars") is not None and not isinstance(body["vars"], dict):
        out.append(_problem("vars: an object of var names to values", "vars"))
    if body.get("dag") is not None and body.get("profile") is not None:
        out.append(_problem("give a profile or a dag, not both", "profile"))
    return out


# Config options that name a file or folder of the machine running the scan: their module
# type's description says so (as `pentora modules show` prints it). "@file" target lists
# and "open-file limit" are not such options.
_PATH_OPTION = re.compile(r"(?<![@-])\bfile\b|\bdirectory\b|\bpath of\b", re.IGNORECASE)
# Values of such options that name no file: the built-in catalog, stdout, nothing.
_NOT_PATHS = frozenset({"", "-", "builtin", "feeds"})


def _subdag_problems(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Sub-DAG references of a DAG given as data: the parser would read them from the
    server's disk (and its "not found" answer would say which files exist)."""
    nodes = raw.get("nodes")
    out = []
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        if not isinstance(node, dict):
            continue
        name = node.get("instance_id") if isinstance(node.get("instance_id"), str) else None
        label = f"node '{name}'" if name else f"nodes[{index}]"
        for key in ("subdag_file", "module_type"):
            if key in node and (key == "subdag_file" or node[key] == "subdag"):
                out.append(_problem(f"{label}: {key}: a DAG sent to the server cannot include "
                                    "sub-DAG files of the server's disk; send the sub-DAG's "
                                    "nodes inline", key, name))
                break
    return out


def _path_problems(orch: Any, dag: Any, variables: dict[str, Any],
                   submitted: bool) -> list[dict[str, Any]]:
    """Node options naming a file of the server's (a catalog, a key, a report to write, an
    @file of targets), in what the request controls: all of a submitted DAG, the values a
    profile takes from the request's vars."""
    merged = {**dag.vars, **variables}
    out = []
    for node in dag.nodes:
        try:
            config = interpolate(node.config or {}, merged)
            own = config if submitted else interpolate(node.config or {}, dag.vars)
        except KeyError:
            continue  # an unknown var: validation reports it
        options = _file_options(orch, node.module_type)
        for key, value in config.items():
            if not submitted and own.get(key) == value:
                continue  # the profile's own value, from the server's installation
            values = value if isinstance(value, list) else [value]
            named = [v for v in values if isinstance(v, str) and (
                v.startswith("@") or (key in options and v.strip() not in _NOT_PATHS))]
            if named:
                out.append(_problem(
                    f"node '{node.instance_id}': config.{key}: '{named[0]}' names a file of the "
                    "server's; a scan request cannot read or write the server's files (leave "
                    f"{key} at its default, or give the values inline)", f"config.{key}",
                    node.instance_id))
    return out


def _file_options(orch: Any, module_type: str) -> set[str]:
    try:
        schema = orch.registry.get(module_type).cls.config_schema or {}
    except PentoraError:
        return set()  # an unknown type: validation names it
    return {str(k) for k in schema if _PATH_OPTION.search(getattr(k, "description", "") or "")}


def _options(scan_parser: argparse.ArgumentParser, body: dict[str, Any]) -> argparse.Namespace:
    args = scan_parser.parse_args([])  # every option's default, as `pentora scan` alone has
    targets = body.get("targets")
    args.targets = ",".join(targets) if isinstance(targets, list) else targets
    args.ports = body.get("ports")
    args.profile = body.get("profile")
    return args


def check_request(orch: Any, scan_parser: argparse.ArgumentParser, body: Any, allow: Any,
                  max_nodes: int) -> ScanSpec:
    """``orch`` loaded with the request's DAG and validated; ``RequestError`` else (403
    for targets outside ``allow``, before anything else of the scan exists)."""
    problems = _shape(body)
    if problems:
        raise RequestError(422, "the request is invalid", problems)
    dag = None
    if body.get("dag") is not None:
        problems = _subdag_problems(body["dag"])
        if problems:
            raise RequestError(422, "the DAG names files of the server's", problems)
        try:
            dag = load_dag(body["dag"])
        except DagParseError as e:
            raise RequestError(422, "the DAG is invalid",
                                  [p.to_dict() for p in e.problems]) from None
    elif body.get("profile") is not None and profile_path(orch, body["profile"]) is None:
        raise RequestError(422, "unknown profile", [_problem(
            f"no profile named '{body['profile']}'; profiles: "
            + (", ".join(list_profiles(orch)) or "none installed"), "profile")])
    args = _options(scan_parser, body)
    extra = dict(body.get("vars") or {})
    try:
        variables = new_scan(orch, args, dag)
    except PentoraError as e:
        raise RequestError(422, "the request is invalid", [_problem(str(e))]) from None
    loaded = orch.dag
    if len(loaded.nodes) > max_nodes:
        raise RequestError(422, "the DAG is too large", [_problem(
            f"the DAG has {len(loaded.nodes)} nodes; this server takes at most {max_nodes} "
            "(max_dag_nodes)", "dag")])
    problems = [_problem(f"DAG '{loaded.name}' has no var named '{name}' (its vars: "
                         f"{', '.join(sorted(loaded.vars)) or 'none'})", f"vars.{name}")
                for name in unused_vars(loaded, extra)]
    variables.update(extra)
    outside = allow.check_request(variables, loaded)
    if outside:
        raise RequestError(403, "targets outside this server's allow-list", outside)
    paths = _path_problems(orch, loaded, variables, dag is not None)
    if paths:
        raise RequestError(422, "the request names files of the server's", paths)
    try:
        orch.validate(vars={**loaded.vars, **variables})
    except ValidationError as e:
        problems += [p.to_dict() for p in e.problems]
    if problems:
        raise RequestError(422, "the scan is invalid", problems)
    merged = {**loaded.vars, **variables}
    return ScanSpec(loaded, variables, merged.get("targets"), body.get("name"), body)


def check_dag(orch: Any, body: Any, max_nodes: int) -> int:
    """``POST /dags/validate``: the node count of a valid DAG; ``RequestError`` else."""
    if not isinstance(body, dict) or not isinstance(body.get("dag"), dict):
        raise RequestError(422, "the request is invalid",
                              [_problem("the body must be {\"dag\": {…}, \"vars\": {…}}", "dag")])
    unknown = [k for k in body if k not in ("dag", "vars")]
    if unknown:
        raise RequestError(422, "the request is invalid", [
            _problem(f"unknown field '{k}'; fields: dag, vars", k) for k in unknown])
    variables = body.get("vars") or {}
    if not isinstance(variables, dict):
        raise RequestError(422, "the request is invalid",
                              [_problem("vars: an object of var names to values", "vars")])
    problems = _subdag_problems(body["dag"])
    if problems:
        raise RequestError(422, "the DAG names files of the server's", problems)
    try:
        dag = orch.load_dag(load_dag(body["dag"]))
    except DagParseError as e:
        raise RequestError(422, "the DAG is invalid", [p.to_dict() for p in e.problems]) from None
    if len(dag.nodes) > max_nodes:
        raise RequestError(422, "the DAG is too large", [_problem(
            f"the DAG has {len(dag.nodes)} nodes; at most {max_nodes} (max_dag_nodes)", "dag")])
    paths = _path_problems(orch, dag, variables, True)
    if paths:
        raise RequestError(422, "the DAG names files of the server's", paths)
    try:
        orch.validate(vars={**dag.vars, **variables})
    except ValidationError as e:
        raise RequestError(422, "the DAG is invalid", [p.to_dict() for p in e.problems]) from None
    return len(dag.nodes)
