"""Safe YAML/JSON reading with bounds: file size, alias expansion, duplicate keys.

Only ``yaml.safe_load`` semantics: tags that build Python objects are refused. Aliases
are shared references in PyYAML, but anything that walks the result (validation,
serialisation) expands them, so a "billion laughs" document is refused up front by
comparing its expanded size with its real size.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from ._errors import DagParseError, Problem
from ._units import MAX_BYTES

# Expanded size may exceed the real size by this factor before we call it a bomb.
ALIAS_EXPANSION_FACTOR = 10
ALIAS_EXPANSION_SLACK = 10_000

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<' merge keys are PyYAML's to resolve, not duplicates
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"unhashable mapping key {key!r}", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(expanded node count, distinct node count); raises on a recursive alias."""
    memo: dict[int, int] = {}
    on_stack: set[int] = set()
    # Iterative post-order walk: deep documents must not hit the recursion limit.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_stack.discard(key)
            total = 1
            if isinstance(node, yaml.SequenceNode):
                total += sum(memo[id(c)] for c in node.value)
            elif isinstance(node, yaml.MappingNode):
                total += sum(memo[id(k)] + memo[id(v)] for k, v in node.value)
            memo[key] = total
            continue
        if key in memo:
            continue
        if key in on_stack:
            raise ValueError(f"recursive alias at line {node.start_mark.line + 1}")
        on_stack.add(key)
        stack.append((node, True))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                children += [k, v]
        for child in children:
            if id(child) in on_stack:
                raise ValueError(f"recursive alias at line {child.start_mark.line + 1}")
            if id(child) not in memo:
                stack.append((child, False))
    return memo[id(root)], len(memo)


def node_lines(root: yaml.Node | None) -> list[int]:
    """1-based line of each item of the top-level ``nodes`` sequence, for messages."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "nodes":
            if isinstance(value, yaml.SequenceNode):
                return [item.start_mark.line + 1 for item in value.value]
    return []


def load_document(
    text: str | bytes, source: str | None, max_bytes: int = MAX_BYTES
) -> tuple[Any, list[int]]:
    """Parse YAML or JSON text; return the data and the line of each DAG node."""
    size = len(text)
    if size > max_bytes:
        raise DagParseError(
            Problem(f"file is {size} bytes, over the {max_bytes}-byte limit for a DAG", source=source)
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DagParseError(
                Problem(f"not UTF-8 text (byte {e.start}): a DAG is YAML or JSON", source=source)
            ) from e
    if not text.strip():
        raise DagParseError(Problem("empty DAG: expected a mapping with 'nodes'", source=source))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DagParseError(Problem(f"text holds a character that is not valid Unicode at "
                                    f"offset {e.start}", source=source)) from None
    is_json = bool(source and source.endswith(".json"))
    if is_json or (text.lstrip().startswith("{") and not (source or "").endswith((".yaml", ".yml"))):
        try:
            return json.loads(text, object_pairs_hook=_json_object), []
        except json.JSONDecodeError as e:
            if is_json:
                raise DagParseError(Problem(f"invalid JSON: {e.msg} (line {e.lineno}, column "
                                            f"{e.colno})", source=source, line=e.lineno)) from None
            # YAML flow mappings also start with '{'; let the YAML parser judge.
        except ValueError as e:
            raise DagParseError(Problem(f"invalid JSON: {e}", source=source)) from None
        except RecursionError:
            raise DagParseError(Problem("JSON nested too deeply for a DAG", source=source)) from None
    loader = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        if root is None:
            raise DagParseError(Problem("empty DAG: expected a mapping with 'nodes'", source=source))
        try:
            expanded, distinct = _expanded_size(root)
        except ValueError as e:
            raise DagParseError(Problem(f"{e}: DAG files cannot be recursive", source=source)) from e
        if expanded > distinct * ALIAS_EXPANSION_FACTOR + ALIAS_EXPANSION_SLACK:
            raise DagParseError(
                Problem(
                    f"YAML aliases expand to {expanded} nodes from {distinct}: refusing a "
                    "document that grows more than tenfold through aliases (alias bomb?)",
                    source=source,
                )
            )
        data = loader.construct_document(root)
        return data, node_lines(root)
    except yaml.constructor.ConstructorError as e:
        raise DagParseError(Problem(_constructor_message(e), source=source, line=_line(e))) from e
    except yaml.YAMLError as e:
        raise DagParseError(Problem(f"invalid YAML: {_yaml_message(e)}", source=source, line=_line(e))) from e
    except RecursionError:
        raise DagParseError(Problem("YAML nested too deeply for a DAG", source=source)) from None
    finally:
        if loader is not None:
            loader.dispose()


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _line(e: yaml.YAMLError) -> int | None:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def _yaml_message(e: yaml.YAMLError) -> str:
    parts = [getattr(e, "context", None), getattr(e, "problem", None)]
    text = ", ".join(p for p in parts if p)
    return text or str(e).splitlines()[0]


def _constructor_message(e: yaml.constructor.ConstructorError) -> str:
    problem = e.problem or str(e)
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip().strip("'")
        tag = tag.replace("tag:yaml.org,2002:", "!!")
        return (
            f"YAML tag '{tag}' is not allowed: DAG files are plain data "
            "(safe YAML only, no tags that build objects)"
        )
    return f"invalid YAML: {problem}"
