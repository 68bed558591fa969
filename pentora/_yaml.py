"""Safe YAML/JSON reading with bounds: size, alias expansion, duplicate keys, numbers.

Only ``yaml.safe_load`` semantics: tags that build Python objects are refused. Aliases
are shared references in PyYAML, but anything that walks the result (validation,
serialisation) expands them, so a "billion laughs" document is refused up front by
comparing its expanded size with its real size. A date stays the text it is written as
(YAML 1.2 and JSON have no date type), so an impossible one (``2001-13-45``) cannot crash
the reader and every value read stays JSON-serialisable. An integer longer than Python
converts (4,300 digits) is refused at its line. Every refusal is an ``InputError`` that
names the source and line and quotes nothing of the document.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

from ._errors import DagParseError
from ._input import InputError, too_large
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

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A constructor's ValueError (a number or date Python cannot make) would leave the
        # reader unmarked: give it the node's line. Inner nodes raise first, so the mark is
        # the innermost one; the ConstructorError passes the outer frames untouched.
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as e:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this {node.tag.rsplit(':', 1)[-1]} value ({e})",
                node.start_mark) from None

    def construct_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)  # type: ignore[no-any-return]
        except ValueError:
            digits = sum(c.isdigit() for c in str(node.value))
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {digits} digits is over the {_max_digits()}-digit limit; "
                "quote it if it is text", node.start_mark) from None

    def construct_date_as_text(self, node: yaml.ScalarNode) -> str:
        return str(self.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_date_as_text)


_VALUE_PROBLEMS = ("an integer of", "cannot read this")


def _max_digits() -> int:
    return sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 4300


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


def parse(text: str | bytes, source: str | None, *, what: str, max_bytes: int = MAX_BYTES,
          as_json: bool | None = None, empty: str | None = None) -> tuple[Any, yaml.Node | None]:
    """Parse YAML or JSON text; the data and, for YAML, the root node (for line numbers).

    ``what`` names the input in messages ("DAG", "probe catalog"). ``as_json``: True reads
    JSON only, False YAML only, None decides by the ``source`` suffix and the first
    character. ``empty``: the message for a document with nothing in it (else None is
    returned). Raises ``InputError`` with the source and line at fault.
    """
    if len(text) > max_bytes:
        raise too_large(what, max_bytes, source)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InputError(f"not UTF-8 text (byte {e.start}): a {what} is YAML or JSON",
                             source) from e
    if empty and not text.strip():
        raise InputError(empty, source)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"text holds a character that is not valid Unicode at offset {e.start}",
                         source) from None
    suffix_json = bool(source and source.endswith(".json"))
    is_json = as_json if as_json is not None else suffix_json
    if is_json or (as_json is None and text.lstrip().startswith("{")
                   and not (source or "").endswith((".yaml", ".yml"))):
        try:
            return parse_json(text, source, what=what), None
        except _JsonSyntaxError:
            if is_json:
                raise
            # YAML flow mappings also start with '{'; let the YAML parser judge.
    return _parse_yaml(text, source, what, empty)


def _parse_yaml(text: str, source: str | None, what: str, empty: str | None) -> tuple[Any, yaml.Node | None]:
    loader = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        if root is None:
            if empty:
                raise InputError(empty, source)
            return None, None
        try:
            expanded, distinct = _expanded_size(root)
        except ValueError as e:
            raise InputError(f"{e}: a {what} cannot be recursive", source) from e
        if expanded > distinct * ALIAS_EXPANSION_FACTOR + ALIAS_EXPANSION_SLACK:
            raise InputError(
                f"YAML aliases expand to {expanded} nodes from {distinct}: refusing a "
                "document that grows more than tenfold through aliases (alias bomb?)", source)
        return loader.construct_document(root), root
    except yaml.constructor.ConstructorError as e:
        raise InputError(_constructor_message(e, what), source, _line(e)) from e
    except yaml.YAMLError as e:
        raise YamlSyntaxError(f"invalid YAML: {_yaml_message(e)}", source, _line(e)) from e
    except RecursionError:
        raise InputError(f"YAML nested too deeply for a {what}", source) from None
    finally:
        if loader is not None:
            loader.dispose()


class YamlSyntaxError(InputError):
    """Not YAML at all (as opposed to YAML that is refused): ``--set`` takes it as text."""


class _JsonSyntaxError(InputError):
    """Not JSON at all: text that may still be YAML."""


class _LongIntError(ValueError):
    def __init__(self, token: str) -> None:
        self.token = token
        super().__init__(token[:20])


def _json_int(token: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise _LongIntError(token) from None


def parse_json(text: str, source: str | None, *, what: str) -> Any:
    """JSON text (duplicate keys refused, integers bounded); ``InputError`` with the line."""
    try:
        return json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int)
    except json.JSONDecodeError as e:
        raise _JsonSyntaxError(f"invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})",
                          source, e.lineno) from None
    except _LongIntError as e:
        digits = sum(c.isdigit() for c in e.token)
        line = text.count("\n", 0, max(text.find(e.token), 0)) + 1
        raise InputError(f"an integer of {digits} digits is over the {_max_digits()}-digit limit; "
                         "quote it if it is text", source, line) from None
    except ValueError as e:
        raise InputError(f"invalid JSON: {e}", source) from None
    except RecursionError:
        raise InputError(f"JSON nested too deeply for a {what}", source) from None


def load_yaml(text: str | bytes, source: str | None, *, what: str, max_bytes: int = MAX_BYTES) -> Any:
    """The data of a YAML (or JSON) document read with every bound of a DAG: safe tags only,
    no duplicate keys, no alias bomb, dates as text, integers bounded. ``InputError`` names
    ``source`` and the line."""
    return parse(text, source, what=what, max_bytes=max_bytes, as_json=False)[0]


def load_json(text: str | bytes, source: str | None, *, what: str, max_bytes: int = MAX_BYTES) -> Any:
    """The data of a JSON document: duplicate keys refused, integers bounded, ``InputError``
    with ``source`` and the line."""
    return parse(text, source, what=what, max_bytes=max_bytes, as_json=True)[0]


def load_document(
    text: str | bytes, source: str | None, max_bytes: int = MAX_BYTES
) -> tuple[Any, list[int]]:
    """Parse a DAG's YAML or JSON text; return the data and the line of each DAG node."""
    try:
        data, root = parse(text, source, what="DAG", max_bytes=max_bytes,
                           empty="empty DAG: expected a mapping with 'nodes'")
    except InputError as e:
        raise DagParseError(e.problem) from e
    return data, node_lines(root)


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


def _constructor_message(e: yaml.constructor.ConstructorError, what: str) -> str:
    problem = e.problem or str(e)
    if "could not determine a constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip().strip("'")
        tag = tag.replace("tag:yaml.org,2002:", "!!")
        return (
            f"YAML tag '{tag}' is not allowed: a {what} is plain data "
            "(safe YAML only, no tags that build objects)"
        )
    if problem.startswith(_VALUE_PROBLEMS):
        return problem  # a well-formed value pentora refuses: "invalid YAML" would mislead
    return f"invalid YAML: {problem}"
