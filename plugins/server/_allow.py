"""The allow-list: which targets a request may name, checked before a scan exists.

Specs are parsed with the kit's target parser into intervals and compared by their
bounds, so that a /8 costs no more than one address. Host names are refused unless
listed verbatim: resolving them now would prove nothing about what they resolve to when
the scan runs (DNS rebinding). ``@FILE`` specs are refused outright: they would read a
file of the server's.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Any

from pentora_plugins.kit.targetset import union
from pentora_plugins.kit.targetspec import TargetSpecError, parse_spec, split_specs

from pentora import interpolate

# Keys whose values are targets whatever they look like; any other string is checked when
# every part of it parses as an address, a CIDR block or a range.
TARGET_KEYS = frozenset({"targets", "target", "hosts", "host", "addresses", "address"})
# Keys whose values narrow a scan, never widen it.
SAFE_KEYS = frozenset({"exclude", "excludes", "blocklist", "blocklists"})


class AllowList:
    def __init__(self, allow: Iterable[str]) -> None:
        spans, names = [], set()
        for item in allow:
            spec = parse_spec(item)
            if spec.hostname is not None:
                names.add(spec.hostname)
            else:
                spans.append((spec.start, spec.end))
        self.spans = union(spans)
        self._starts = [s for s, _ in self.spans]
        self.names = frozenset(names)

    def _inside(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self.spans[i][0] <= start and end <= self.spans[i][1]

    def outside(self, value: Any, strict: bool = True) -> list[str]:
        """The parts of ``value`` (a spec string or a list of them) not allowed. ``strict``:
        ``value`` is known to hold targets (every part counts, names and files included);
        else only a value that parses wholly as addresses is taken for targets."""
        if strict and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # a bare number as a target: refused below, as its text is
        texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        tokens = [t for text in texts for t in (split_specs(text) if isinstance(text, str)
                                                 else [str(text)] if strict else [])]
        if not tokens or any("${" in t for t in tokens):
            return []  # a reference to a var: the var itself is checked
        parsed: list[tuple[str, Any]] = []
        for token in tokens:
            if token.startswith("@"):
                if not strict:
                    return []
                parsed.append((token, None))
                continue
            try:
                parsed.append((token, parse_spec(token)))
            except TargetSpecError:
                if not strict:
                    return []
                # Unprovable is outside: "167772161" or "127.1" fail here yet a resolver's
                # inet_aton would take them for 10.0.0.1 and 127.0.0.1.
                parsed.append((token, None))
        if not strict and any(spec is None or spec.hostname is not None for _, spec in parsed):
            return []
        bad = []
        for token, spec in parsed:
            if spec is None:
                bad.append(token)
            elif spec.hostname is not None:
                if spec.hostname not in self.names:
                    bad.append(token)
            elif not self._inside(spec.start, spec.end):
                bad.append(token)
        return bad

    def check_request(self, variables: dict[str, Any], dag: Any) -> list[dict[str, str]]:
        """Every value of ``variables`` and of ``dag``'s node configs outside the list, as
        problems (``{"message", "key"[, "node"]}``)."""
        problems = []
        for key, value in variables.items():
            problems += self._problems(key, value, None, f"vars.{key}")
        if dag is not None:
            for key, value in dag.vars.items():
                if key not in variables:
                    problems += self._problems(key, value, None, f"vars.{key}")
            merged = {**dag.vars, **variables}
            for node in dag.nodes:
                # The config as the node will get it: a var spliced into a longer value
                # ("198.18.0.${n}") or named as a whole under a target key is checked there.
                try:
                    config = interpolate(node.config or {}, merged)
                except KeyError:
                    config = node.config or {}  # an unknown var: validation refuses the scan
                for path, key, value in _walk(config, "config"):
                    problems += self._problems(key, value, node.instance_id, path)
        # A var's value reaches the nodes that use it: each offending value is listed once,
        # where it was given.
        first = {p["target"]: p for p in reversed(problems)}
        return [p for p in problems if first[p["target"]] is p]

    def _problems(self, key: str, value: Any, node: str | None, path: str) -> list[dict[str, str]]:
        out = []
        for sub_path, sub_key, sub in _walk(value, path, key):
            if sub_key in SAFE_KEYS:
                continue
            for bad in self.outside(sub, strict=sub_key in TARGET_KEYS):
                problem = {"message": f"target '{bad}' is outside this server's allow-list "
                                      f"({', '.join(self.describe())}); ask its operator to add "
                                      "it to `allow` in the server config", "key": sub_path,
                           "target": bad}
                if node is not None:
                    problem["node"] = node
                out.append(problem)
        return out

    def describe(self) -> list[str]:
        from pentora_plugins.kit.targetspec import address_of

        shown = [f"{address_of(s)}-{address_of(e)}" if s != e else str(address_of(s))
                 for s, e in self.spans]
        return shown + sorted(self.names)


def _walk(value: Any, path: str, key: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, nearest key, value) for each string or list of strings in ``value``."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}", str(k))
    elif isinstance(value, list) and not all(isinstance(v, str) for v in value):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]", key)
    elif isinstance(value, (str, list)) or (key in TARGET_KEYS and value is not None):
        yield path, key, value
