"""JSON and JSONL outputs against the shipped JSON Schema, from a real loopback scan."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator

import pentora_plugins.kit.records as records_module
import pytest
from pentora_plugins.kit.records import record_dict
from pentora_plugins.output.formats import json_report
from pentora_plugins.output.formats._model import Report

from pentora import Orchestrator
from pentora._records import NodeRecord, ScanResult

from ._formats_scan import SCHEMA, TARGETS, Scan, run_scan, schema_errors


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    yield from run_scan(tmp_path_factory)




def _record_classes() -> list[type]:
    """Every record class of every installed plugin (loading them imports their modules)."""
    Orchestrator()
    found, todo = [], [records_module.Record]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("pentora_plugins.") and sub.kind:
                found.append(sub)
    return sorted(found, key=lambda c: c.kind)


RECORD_CLASSES = _record_classes()


def test_every_jsonl_line_of_a_real_scan_validates(scan):
    assert scan.proc.returncode == 3, scan.proc.stderr  # the 'explode' node failed on purpose
    lines = scan.jsonl()
    kinds = [line["kind"] for line in lines]
    assert {"target_error", "host", "port", "banner", "service", "asset", "vulnerability", "node",
            "scan"} <= set(kinds)
    assert kinds[-1] == "scan"
    for number, line in enumerate(lines, 1):
        assert schema_errors(line) == [], (number, line)


def test_the_scan_line_carries_the_dag_shape_and_vars(scan):
    last = scan.jsonl()[-1]
    assert last["vars"]["targets"] == TARGETS
    shape = {n["node"]: n["depends_on"] for n in last["graph"]["nodes"]}
    assert shape["banner_grab"] == ["port_scan"] and shape["explode"] == ["port_scan"]
    assert last["counts"] == {"completed": 7, "failed": 1}


def test_json_document_of_a_real_scan_validates_and_holds_every_line(scan):
    doc = json.loads(scan.out("json").read_text())
    assert schema_errors(doc) == []
    assert doc["format"] == "pentora-report" and doc["scan"]["status"] == "completed"
    lines = scan.jsonl()
    assert sorted(json.dumps(r, sort_keys=True) for r in doc["records"]) == sorted(
        json.dumps(r, sort_keys=True) for r in lines if r["kind"] != "scan")
    assert {k: v for k, v in lines[-1].items() if k != "kind"} == doc["scan"]


def test_json_document_is_the_same_whatever_the_record_order(scan):
    lines = scan.jsonl()
    shuffled = lines[:-1]
    random.Random(7).shuffle(shuffled)
    renders = []
    for order in (lines[:-1], shuffled):
        report = Report()
        for rec in [*order, lines[-1]]:
            report.add(rec)
        renders.append(json.dumps(json_report.document(report)))
    assert renders[0] == renders[1]


def _schema() -> dict:
    return json.loads(SCHEMA.read_text())


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.kind)
def test_schema_documents_every_field_of_every_record_kind(cls):
    """A field added to a record without the schema learning it fails here, by name."""
    spec = _schema()["$defs"].get(cls.kind)
    assert spec is not None, f"the schema has no '{cls.kind}' record: add it to {SCHEMA.name}"
    fields = {f.name for f in dataclasses.fields(cls)}
    assert fields | {"kind"} == set(spec["properties"]), cls.kind


def test_schema_documents_node_and_scan_lines():
    spec = _schema()["$defs"]
    node = NodeRecord("n", "noop").to_dict()
    assert set(node) | {"kind"} == set(spec["node"]["properties"])
    failure = {"hook": "pentora_record", "plugin": "p", "error_type": "E", "error": "e"}
    result = ScanResult("id", "dag", "completed", nodes={}, context=None, started_at=0.0,  # type: ignore[arg-type]
                        finished_at=1.0, hook_errors=[failure])
    line = set(result.to_dict()) - {"nodes"} | {"kind", "vars", "graph", "command_line"}  # JSONL adds these
    assert line == set(spec["scan"]["properties"])


def _sample(cls: type) -> object:
    """An instance with every field set to a value of its declared type."""
    values = {"str": "x", "int": 1, "float": 0.5, "bool": True}
    kwargs = {}
    for f in dataclasses.fields(cls):
        text = str(f.type)
        if f.name == "port":
            kwargs[f.name] = 443
        elif f.name == "severity":
            kwargs[f.name] = "high"
        elif f.name == "confidence":
            kwargs[f.name] = 0.9
        elif f.name == "protocol":
            kwargs[f.name] = "tcp"
        elif text.startswith("list"):
            kwargs[f.name] = [{"a": 1}] if "dict" in text else (["x"] if "str" in text else [1])
        elif text.startswith("dict"):
            kwargs[f.name] = {"TLSv1.3": True} if "bool" in text else (
                {"GET": 200} if "int" in text else {"k": "v"} if "str, str" in text else {"k": 1})
        else:
            kwargs[f.name] = values.get(text.split(" ")[0].split("|")[0].strip(), "x")
    return cls(**kwargs)


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda c: c.kind)
def test_a_full_record_of_every_kind_validates(cls):
    line = record_dict(cls.kind, _sample(cls))
    assert schema_errors(line) == []


def test_schema_rejects_what_pentora_never_writes():
    assert schema_errors({"kind": "port", "host": "127.0.0.1", "port": 70000, "protocol": "tcp",
                          "state": "open"})
    assert schema_errors({"kind": "vulnerability", "host": "h", "port": None, "id": "X",
                          "severity": "apocalyptic"})
    assert schema_errors({"kind": "host", "address": "127.0.0.1", "alive": True, "surprise": 1})
    assert schema_errors({"format": "pentora-report", "version": 1, "scan": None,
                          "records": [{"kind": "scan", "scan_id": "x"}]})
    # a third-party module's kind needs only its kind
    assert schema_errors({"kind": "my_plugin_thing", "anything": [1, 2]}) == []
