"""JSON for what the scan store keeps: findings, and the DataContext values nodes set.

Findings are stored as their ``to_dict()`` (what the JSONL output shows) and rebuilt
through a kind → class map of every ``Record`` subclass loaded (``plugins/records.py``
and any plugin's own); a kind nobody defines comes back as a plain dict.

Node outputs must come back exactly as the module left them, so ``encode`` also keeps
tuples, sets, dicts with non-string keys, and the record types pentora stores in the
DataContext (the dataclasses of ``kit.records``, ``TargetError``, ``TargetSet`` and -Pn's
``AssumedHosts`` view of it) as
``{"$obj": "module:Class", "state": {...}}``. A list of records of one such class (a
sweep's host list: tens of thousands) is kept as columns,
``{"$rows": "module:Class", "columns": {"field": [value, ...], ...}}``: one JSON object
instead of one per record, a list of plain values per field, which JSON encodes and
decodes several times faster than as many small objects. A store is data from a file anyone may
have edited, so decoding rebuilds only the types of ``ALLOWED`` (under their current or
an earlier module path), through their own constructor, with their declared fields:
no module named in the store is imported, no ``__setstate__`` or ``__reduce__`` runs,
no attribute is set that the class does not declare. Any other name raises
``RefusedTypeError``: the node is then not restored but runs again on resume, as it
does for a value ``encode`` refuses (sockets, lambdas, third-party objects).
"""

from __future__ import annotations

import dataclasses
import json
from itertools import chain
from typing import Any

from pentora_plugins.kit import records as kit_records
from pentora_plugins.kit.assumed import AssumedHosts
from pentora_plugins.kit.records import Record, record_dict
from pentora_plugins.kit.targetset import TargetSet

_KIT = "pentora_plugins.kit.records"
_KIT_RECORDS = sorted(name for name, obj in vars(kit_records).items()
                      if isinstance(obj, type) and issubclass(obj, Record) and obj is not Record
                      and dataclasses.is_dataclass(obj) and obj.__module__ == _KIT)
TARGET_SET = "pentora_plugins.kit.targetset:TargetSet"
# The targets area defines it: the store may not import that area, so the class is found
# among the loaded Record subclasses (the area is loaded whenever a scan runs its node).
TARGET_ERROR = "pentora_plugins.targets.target_parser:TargetError"
ASSUMED_HOSTS = "pentora_plugins.kit.assumed:AssumedHosts"
# The only types a store may name: what pentora itself puts in the DataContext.
ALLOWED = frozenset({*(f"{_KIT}:{name}" for name in _KIT_RECORDS), TARGET_SET, TARGET_ERROR,
                     ASSUMED_HOSTS})
# Where those classes lived in earlier versions (CHANGELOG: module paths), so that the
# scans stored then still resume.
FORMER_NAMES = {
    **{f"pentora_plugins.records:{name}": f"{_KIT}:{name}" for name in _KIT_RECORDS},
    "pentora_plugins._targetset:TargetSet": TARGET_SET,
    "pentora_plugins.kit._targetset:TargetSet": TARGET_SET,
    "pentora_plugins.targets:TargetError": TARGET_ERROR,
    "pentora_plugins.targets.targets:TargetError": TARGET_ERROR,
}


class UnstorableError(TypeError):
    """A value the store cannot keep faithfully."""


class RefusedTypeError(UnstorableError):
    """The store names a type that is not one pentora stores: it is not rebuilt."""

    def __init__(self, name: str, why: str) -> None:
        self.type_name = name
        super().__init__(why)


_SCALARS = frozenset({str, int, float, bool, type(None)})
COLUMNS_FROM = 16  # records in a list from which it is stored as columns: below, a
                   # record each is as small and reads better


def encode(value: Any) -> Any:
    """A JSON-able structure that ``decode`` turns back into ``value``."""
    if type(value) in _SCALARS:  # the common case first: a sweep's outputs are millions of them
        return value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        if len(value) >= COLUMNS_FROM and (columns := _columns(value)) is not None:
            return columns
        if _SCALARS.issuperset(map(type, value)):  # types checked in C: a list of text, say
            return list(value)
        return [v if type(v) in _SCALARS else encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"$set": sorted((encode(v) for v in value), key=repr)}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$map": [[encode(k), encode(v)] for k, v in value.items()]}
    cls = type(value)
    name = f"{cls.__module__}:{cls.__qualname__}"
    if name == TARGET_SET:  # all its attributes, as earlier versions stored and read them
        return {"$obj": name, "state": encode(vars(value))}
    if name == ASSUMED_HOSTS:  # a view: its target set is all it holds
        return {"$obj": name, "state": {"targets": encode(value.targets)}}
    if name in ALLOWED:
        fields = _init_fields(cls)
        state = dict(vars(value))
        if len(state) == len(fields) and all(f in state for f in fields):
            # the usual record: its attributes are its declared fields, copied in C
            for field, item in state.items():
                if type(item) not in _SCALARS:
                    state[field] = encode(item)
        else:  # anything else it carries stays out
            state = {f: encode(getattr(value, f)) for f in fields}
        return {"$obj": name, "state": state}
    raise UnstorableError(f"{cls.__module__}.{cls.__qualname__} values cannot be stored")


def _columns(records: list[Any]) -> dict[str, Any] | None:
    """``records`` as ``{"$rows": name, "columns": ...}`` when all are the usual record of
    one stored class (their attributes exactly its declared fields); None otherwise."""
    cls = type(records[0])
    name = f"{cls.__module__}:{cls.__qualname__}"
    if name not in ALLOWED or name in (TARGET_SET, ASSUMED_HOSTS):
        return None
    if not all(type(r) is cls for r in records):
        return None
    fields = _init_fields(cls)
    states = [vars(r) for r in records]
    if not all(len(s) == len(fields) for s in states):
        return None  # one carries something else: each is stored its own way
    columns: dict[str, list[Any]] = {}
    try:
        for field in fields:
            column = [s[field] for s in states]
            if not _plain(column):
                column = [v if type(v) in _SCALARS else encode(v) for v in column]
            columns[field] = column
    except KeyError:  # an attribute that is not a field, as many as the fields
        return None
    return {"$rows": name, "columns": columns}


def _plain(column: list[Any]) -> bool:
    """Whether JSON keeps ``column`` as it is: scalars, or lists of scalars (a host's
    methods), its types checked in C rather than a call per value."""
    kinds = set(map(type, column))
    if kinds <= _SCALARS:
        return True
    return kinds == {list} and _SCALARS.issuperset(map(type, chain.from_iterable(column)))


def decode(data: Any) -> Any:
    """The value ``encode`` gave ``data`` for; ``RefusedTypeError`` for a type not allowed."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "$tuple" in data:
        return tuple(decode(v) for v in data["$tuple"])
    if "$set" in data:
        return {decode(v) for v in data["$set"]}
    if "$map" in data:
        return {_hashable(decode(k)): decode(v) for k, v in data["$map"]}
    if "$obj" in data:
        return _rebuild_object(data["$obj"], data.get("state"))
    if "$rows" in data:
        return _rebuild_rows(data["$rows"], data.get("columns"))
    return {k: decode(v) for k, v in data.items()}


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


_INIT_FIELDS: dict[type, tuple[str, ...]] = {}


def _init_fields(cls: type) -> tuple[str, ...]:
    """The declared fields a record is rebuilt from (never whatever else the instance
    carries); looked up once per class, a sweep storing millions of records."""
    names = _INIT_FIELDS.get(cls)
    if names is None:
        names = _INIT_FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    return names


# The attributes of a stored TargetSet that every version wrote; its constructor derives
# the others (offsets, counts) from them.
TARGETSET_STATE = ("_starts", "_ends", "_labels", "sources", "names", "unresolved", "seed", "errors")


def allowed_name(name: object) -> str:
    """The current ``module:Class`` of a type the store may name; ``RefusedTypeError`` else."""
    text = str(name)
    current = FORMER_NAMES.get(text, text)
    if current not in ALLOWED:
        raise RefusedTypeError(text, f"the store names type {text!r}, which is not a record "
                                     "type pentora stores; it is not rebuilt")
    return current


def _rebuild_object(name: object, state: Any) -> Any:
    current = allowed_name(name)
    if not isinstance(state, dict):
        raise UnstorableError(f"the stored {current} has no field mapping")
    if current == TARGET_SET:
        return _rebuild_targetset(state)
    if current == ASSUMED_HOSTS:
        targets = decode(state.get("targets"))
        if not isinstance(targets, TargetSet):
            raise UnstorableError(f"the stored {ASSUMED_HOSTS} holds no target set")
        return AssumedHosts(targets)
    cls = _record_class(current)
    declared = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(state) - declared)
    if unknown:
        raise UnstorableError(f"the stored {current} has fields {unknown} it does not declare")
    try:
        return cls(**{k: decode(v) for k, v in state.items()})
    except TypeError as e:  # a declared field missing
        raise UnstorableError(f"the stored {current} cannot be rebuilt: {e}") from e


def _rebuild_rows(name: object, columns: Any) -> list[Any]:
    """The records of a ``$rows`` list, each through its class's constructor, as
    ``_rebuild_object`` does one."""
    current = allowed_name(name)
    if current in (TARGET_SET, ASSUMED_HOSTS) or not isinstance(columns, dict):
        raise UnstorableError(f"the stored rows of {current} have no field columns")
    cls = _record_class(current)
    declared = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(columns) - declared)
    if unknown:
        raise UnstorableError(f"the stored rows of {current} have fields {unknown} it does not declare")
    if not all(isinstance(c, list) for c in columns.values()) or len({len(c) for c in columns.values()}) > 1:
        raise UnstorableError(f"the stored rows of {current} have columns of different lengths")
    names = list(columns)
    values = [c if _plain(c) else [decode(v) for v in c]
              for c in columns.values()]
    try:
        return [cls(**dict(zip(names, row, strict=True))) for row in zip(*values, strict=True)]
    except TypeError as e:  # a declared field missing
        raise UnstorableError(f"the stored rows of {current} cannot be rebuilt: {e}") from e


def _record_class(current: str) -> type:
    for cls in _subclasses(Record):
        if f"{cls.__module__}:{cls.__qualname__}" == current and dataclasses.is_dataclass(cls):
            return cls
    raise UnstorableError(f"{current} is not loaded (its plugin is disabled?)")


def _subclasses(base: type) -> list[type]:
    out, todo = [], [base]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        out.append(cls)
    return out


def _rebuild_targetset(state: dict[str, Any]) -> TargetSet:
    if not set(TARGETSET_STATE) <= set(state):
        raise UnstorableError(f"the stored {TARGET_SET} lacks {sorted(set(TARGETSET_STATE) - set(state))}")
    starts, ends, labels, sources = (decode(state[k]) for k in ("_starts", "_ends", "_labels", "sources"))
    names, unresolved, seed = decode(state["names"]), decode(state["unresolved"]), decode(state["seed"])
    ints = [*starts, *ends, *labels, *names]
    if not all(type(v) is int for v in ints) or not (seed is None or type(seed) is int):
        raise UnstorableError(f"the stored {TARGET_SET} has addresses that are not integers")
    if not isinstance(names, dict) or not all(isinstance(v, str) for v in (*sources, *names.values())):
        raise UnstorableError(f"the stored {TARGET_SET} has names that are not text")
    try:
        intervals = [(a, b, sources[label]) for a, b, label in zip(starts, ends, labels, strict=True)]
        unresolved = [(str(n), str(s)) for n, s in unresolved]
    except (IndexError, ValueError, TypeError) as e:
        raise UnstorableError(f"the stored {TARGET_SET} is inconsistent: {e}") from e
    return TargetSet(intervals, names=names, unresolved=unresolved, seed=seed,
                     errors=decode(state["errors"]))


def dumps(value: Any) -> str:
    return json.dumps(encode(value), sort_keys=True, separators=(",", ":"))


def loads(text: str) -> Any:
    return decode(json.loads(text))


# -- findings ----------------------------------------------------------------------------


# json.dumps with options builds an encoder per call: a third of the cost of a host's text
_FINDING = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def finding_json(kind: str, record: Any) -> str:
    """The finding as stored: its JSONL object (``kind`` first), keys sorted, so that the
    same finding always gives the same text (the store keeps each once)."""
    return _FINDING.encode(record_dict(kind, record))


def record_classes() -> dict[str, type]:
    """kind → class, over every ``Record`` subclass loaded (the first one wins)."""
    out: dict[str, type] = {}
    for cls in _subclasses(Record):
        kind = getattr(cls, "kind", "")
        if kind and kind not in out:
            out[kind] = cls
    return out


def rebuild(data: dict[str, Any], classes: dict[str, type]) -> Any:
    """A finding from its stored object: the record class of its kind (through its
    constructor: fields only), else the dict."""
    if not isinstance(data, dict):
        raise UnstorableError(f"a stored finding is not an object: {str(data)[:60]!r}")
    cls = classes.get(str(data.get("kind")))
    if cls is None:  # a dict keeps its kind under "kind" (nodectx.record_kind reads it)
        return dict(data)
    try:
        return cls(**{k: v for k, v in data.items() if k != "kind"})
    except TypeError:  # fields of another version of the class: keep what was stored
        return dict(data)
