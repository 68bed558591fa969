"""Records across the wire: JSON-safe encoding of findings and keys, and the merge.

Shard results travel as JSON (never pickle: whoever can write to the broker must not
get to run code on the workers or the submitting machine). A record is its fields plus
``__kind__``; the submitting side rebuilds the dataclass registered for that kind (any
``Record`` subclass that is imported, built-in or a plugin's). Values that are neither
records nor plain JSON data (e.g. the lazy ``TargetSet`` of ``targets``) do not travel.

Merging keeps the first of several records with the same identity (``kind`` plus the
record's ``sort_key``: a host's address, a port's host/protocol/port…), taking shards in
shard order, so the same shard results always merge to the same list. A shard's result
counts once, however often it arrives (:class:`ShardResults`, keyed by shard index): a
shard sent again because its worker looked dead may also finish on the first worker.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from pentora_plugins.kit.records import Record, sorted_records

KIND = "__kind__"
UNSHIPPABLE = "__unshippable__"


def _record_classes() -> dict[str, type[Record]]:
    out: dict[str, type[Record]] = {}
    todo = list(Record.__subclasses__())
    while todo:
        cls = todo.pop(0)
        todo.extend(cls.__subclasses__())
        if cls.kind and dataclasses.is_dataclass(cls):
            out.setdefault(cls.kind, cls)
    return out


def encode(value: Any) -> Any:
    """A JSON-safe form of a record, a list of records, or plain data; else a marker."""
    if isinstance(value, Record) and dataclasses.is_dataclass(value):
        return {KIND: value.kind, **value.to_dict()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return {UNSHIPPABLE: type(value).__name__}


def shippable(encoded: Any) -> bool:
    if isinstance(encoded, dict):
        return UNSHIPPABLE not in encoded and all(shippable(v) for v in encoded.values())
    if isinstance(encoded, list):
        return all(shippable(v) for v in encoded)
    return True


def decode(value: Any, classes: dict[str, type[Record]] | None = None) -> Any:
    """Rebuild records encoded by :func:`encode`; unknown kinds stay dicts."""
    classes = _record_classes() if classes is None else classes
    if isinstance(value, list):
        return [decode(v, classes) for v in value]
    if isinstance(value, dict):
        cls = classes.get(value.get(KIND, ""))
        fields = {k: decode(v, classes) for k, v in value.items() if k != KIND}
        if cls is not None:
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in fields.items() if k in names})
        return fields
    return value


def identity(kind: str, record: Any) -> tuple[str, str]:
    """What makes two findings the same finding (a re-run shard finds the same again)."""
    if isinstance(record, Record):
        try:
            return kind, repr(record.sort_key())
        except NotImplementedError:
            pass
    data = record.to_dict() if isinstance(record, Record) else record
    return kind, json.dumps(encode(data), sort_keys=True, default=str)


class Deduper:
    """Remembers identities seen; ``new`` says whether a finding is seen for the first time."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def new(self, kind: str, record: Any) -> bool:
        key = identity(kind, record)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def merge_values(values: Iterable[Any]) -> Any:
    """One key's values from several shards: lists are joined without duplicates (and
    sorted when they hold records); other values keep the first shard's."""
    values = list(values)
    if not values:
        return []
    if not all(isinstance(v, list) for v in values):
        return values[0]
    seen = Deduper()
    out = [item for value in values for item in value
           if seen.new(getattr(item, "kind", ""), item)]
    if out and all(isinstance(item, Record) for item in out):
        return sorted_records(out)
    return out


class ShardResults:
    """The results of a scan's shards, one per shard index: a repeat is ignored."""

    def __init__(self) -> None:
        self.results: dict[int, dict[str, Any]] = {}
        self.seen = Deduper()

    def __contains__(self, shard: int) -> bool:
        return shard in self.results

    def __len__(self) -> int:
        return len(self.results)

    def add(self, result: dict[str, Any]) -> list[tuple[str, Any]] | None:
        """Keep shard ``result["shard"]``'s result; its findings not seen in an earlier
        shard, as ``(kind, record)``. ``None`` when that shard's result is already here."""
        shard = int(result["shard"])
        if shard in self.results:
            return None
        self.results[shard] = result
        classes = _record_classes()
        new = []
        for _node, kind, data in result["records"]:
            record = decode(data, classes)
            if self.seen.new(kind, record):
                new.append((kind, record))
        return new

    def merged(self, nodes: list[str]) -> dict[str, Any]:
        """Per remote node: its status on each shard, errors; and the merged keys."""
        shards = [self.results[k] for k in sorted(self.results)]
        keys = sorted({key for r in shards for key in r["outputs"]})
        outputs = {key: merge_values([decode(r["outputs"][key]) for r in shards if key in r["outputs"]])
                   for key in keys}
        out: dict[str, Any] = {"__outputs__": outputs}
        for nid in nodes:
            states = {r["shard"]: r["nodes"].get(nid, {}) for r in shards}
            out[nid] = {"statuses": {k: s.get("status") for k, s in states.items()},
                        "errors": {k: s.get("error") for k, s in states.items() if s.get("error")}}
        return out
