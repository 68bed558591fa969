"""JSON for what the scan store keeps: findings, and the DataContext values nodes set.

Findings are stored as their ``to_dict()`` (what the JSONL output shows) and rebuilt
through a kind → class map of every ``Record`` subclass loaded (``plugins/records.py``
and any plugin's own); a kind nobody defines comes back as a plain dict.

Node outputs must come back exactly as the module left them, so ``encode`` also keeps
tuples, sets, dicts with non-string keys, and objects of pentora's own classes (records,
``TargetSet``…) as ``{"$obj": "module:Class", "state": {...}}``. Decoding such an object
imports only modules under ``pentora`` or ``pentora_plugins`` and sets the instance's
attributes without calling any code, so a crafted store cannot run code. Anything else
(sockets, lambdas, third-party objects) raises ``UnstorableError``: the node is then not
restored but runs again on resume.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from pentora_plugins.kit.records import Record, record_dict

TRUSTED = ("pentora.", "pentora_plugins.")
# Where classes a store of an earlier version names now live, so that its scans still load.
FORMER_MODULES = {
    "pentora_plugins.records": "pentora_plugins.kit.records",
    "pentora_plugins._targetset": "pentora_plugins.kit.targetset",
    "pentora_plugins._targetspec": "pentora_plugins.kit.targetspec",
    "pentora_plugins._shard": "pentora_plugins.kit.shard",
    "pentora.records": "pentora._records",
    "pentora.dag": "pentora._dag",
}


class UnstorableError(TypeError):
    """A value the store cannot keep faithfully."""


def encode(value: Any) -> Any:
    """A JSON-able structure that ``decode`` turns back into ``value``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"$set": sorted((encode(v) for v in value), key=repr)}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$map": [[encode(k), encode(v)] for k, v in value.items()]}
    cls = type(value)
    if cls.__module__.startswith(TRUSTED) and hasattr(value, "__dict__") and not hasattr(cls, "__slots__"):
        return {"$obj": f"{cls.__module__}:{cls.__qualname__}", "state": encode(vars(value))}
    raise UnstorableError(f"{cls.__module__}.{cls.__qualname__} values cannot be stored")


def decode(data: Any) -> Any:
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
        obj: object = object.__new__(_trusted_class(data["$obj"]))
        obj.__dict__.update(decode(data["state"]))
        return obj
    return {k: decode(v) for k, v in data.items()}


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def _trusted_class(name: str) -> type:
    module, _, qualname = str(name).partition(":")
    module = FORMER_MODULES.get(module, module)
    if not module.startswith(TRUSTED) or not qualname:
        raise UnstorableError(f"the store names class {name!r}, outside pentora's own modules")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise UnstorableError(f"{name!r} is not a class")
    return obj


def dumps(value: Any) -> str:
    return json.dumps(encode(value), sort_keys=True, separators=(",", ":"))


def loads(text: str) -> Any:
    return decode(json.loads(text))


# -- findings ----------------------------------------------------------------------------


def finding_json(kind: str, record: Any) -> str:
    """The finding as stored: its JSONL object (``kind`` first), keys sorted, so that the
    same finding always gives the same text (the store keeps each once)."""
    return json.dumps(record_dict(kind, record), sort_keys=True, default=str, separators=(",", ":"))


def record_classes() -> dict[str, type]:
    """kind → class, over every ``Record`` subclass loaded (the first one wins)."""
    out: dict[str, type] = {}
    todo = [Record]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        kind = getattr(cls, "kind", "")
        if kind and kind not in out:
            out[kind] = cls
    return out


def rebuild(data: dict[str, Any], classes: dict[str, type]) -> Any:
    """A finding from its stored object: the record class of its kind, else the dict."""
    cls = classes.get(str(data.get("kind")))
    if cls is None:  # a dict keeps its kind under "kind" (nodectx.record_kind reads it)
        return dict(data)
    try:
        return cls(**{k: v for k, v in data.items() if k != "kind"})
    except TypeError:  # fields of another version of the class: keep what was stored
        return dict(data)
