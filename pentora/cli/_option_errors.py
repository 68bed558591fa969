"""A DAG problem caused by a command-line option is that option's error.

``pentora scan -t 300.1.1.1`` sets the var ``targets``, which a node config reads as
``${targets}``; the validator blames the node (``standard.yaml:27: Node
'target_ingestion' (target_parser): config.targets: …``), which tells a user nothing about
what they typed. Here such a problem becomes ``-t 300.1.1.1: invalid target …``.
"""

from __future__ import annotations

import re
from typing import Any

from .._errors import Problem, ValidationError
from .._interpolate import VAR_REFERENCE
from ._common import EXIT_INVALID, EXIT_USAGE, CliError, _cut

_PATH_PART = re.compile(r"[^.\[\]]+")
_GOT = re.compile(r" \(got [^\n]*\)$")


def option_errors(error: ValidationError, dag: Any, variables: dict[str, Any],
                  argv: list[str]) -> ValidationError | CliError:
    """``error`` with each problem a var set on the command line caused said as the
    option's error (exit 2 when they are all such); ``error`` itself when none is."""
    options = {var: text for var, value in variables.items()
               if (text := option_given(argv, var, value)) is not None}
    nodes = {node.instance_id: node for node in dag.nodes}
    said: dict[str, str] = {}  # option as typed -> its one message
    rest: list[Problem] = []
    in_a_file = False
    for problem in error.problems:
        found = _as_option_error(problem, nodes, options)
        if found is None:
            rest.append(problem)
            continue
        line, var = found
        # ``-t @FILE``: what is wrong is in the file, invalid input like any file (exit 1).
        in_a_file = in_a_file or str(variables[var]).startswith("@")
        # One message an option: two nodes reading the same var fail the same way, or say
        # it in their own words (a rate the SYN and the connect scanner both take).
        said.setdefault(options[var], line)
    if not said:
        return error
    text = "\nerror: ".join(said.values())
    if rest:
        text += "\nerror: " + str(ValidationError(rest))
    return CliError(text, EXIT_INVALID if rest or in_a_file else EXIT_USAGE)


def _as_option_error(problem: Problem, nodes: dict[str, Any],
                     options: dict[str, str]) -> tuple[str, str] | None:
    """The problem as the error of the option that set the var it is about, and the var."""
    node = nodes.get(problem.node or "")
    if node is None or not problem.key or not problem.key.startswith("config."):
        return None
    names = _vars_at(node.config, problem.key.removeprefix("config."))
    hit = [name for name in names if name in options]
    if not hit:
        return None
    prefix = f"Node '{node.instance_id}' ({node.module_type}): {problem.key}: "
    # The option as typed shows the value: the validator's "(got …)" would repeat it.
    message = _GOT.sub("", problem.message.removeprefix(prefix))
    return f"{options[hit[0]]}: {message}", hit[0]


def _vars_at(config: Any, key: str) -> list[str]:
    """The vars the raw config value at ``key`` (``targets[1]``, ``probe.size``) reads; the
    walk stops at a string, which is where ``${var}`` is written."""
    value = config
    for part in _PATH_PART.findall(key):
        if isinstance(value, str):
            break
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return []
    return VAR_REFERENCE.findall(value) if isinstance(value, str) else []


def option_given(argv: list[str], var: str, value: Any) -> str | None:
    """The option and value as typed that set ``var`` to ``value`` (``-t 300.1.1.1``,
    ``--ports=1-65536``, ``--set rate=fast``), the last one given winning; None when the
    command line does not hold it (a resumed scan's vars come from the store)."""
    if not isinstance(value, str):
        value = str(value)
    for i in range(len(argv) - 1, -1, -1):
        arg = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg == "--set" and nxt is not None and nxt.partition("=")[0].strip() == var:
            return f"--set {_cut(nxt)}"
        if not arg.startswith("-") or arg == "--set":
            continue
        if nxt == value:
            return f"{arg} {_cut(value)}"
        flag, eq, rest = arg.partition("=")
        if eq and arg.startswith("--") and rest == value:
            return f"{flag} {_cut(value)}"
        if not arg.startswith("--") and len(arg) > 2 and arg[2:] == value:  # -t300.1.1.1
            return f"{arg[:2]} {_cut(value)}"
    return None
