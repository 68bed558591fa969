"""The malformed-DAG corpus: each file of ``tests/data/malformed/`` and the error it must give.

``expected.yaml`` in that directory says, per file, whether ``pentora.load_dag`` or
``Orchestrator.validate()`` refuses it, which substrings the error holds, how many
problems it lists and which node each one names. Hostile inputs too large or too odd to
commit (over-size files, deep nesting, lone surrogates) are generated here.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import pentora
from pentora import DagParseError, ValidationError
from tests.conftest import ROOT, TESTS, make_orch
from tests.dag_modules import MODULES, POLICIES

CORPUS = TESTS / "data" / "malformed"
MANIFEST: dict[str, dict[str, Any]] = yaml.safe_load(
    (CORPUS / "expected.yaml").read_text(encoding="utf-8"))
HOOKS = TESTS / "dag_modules.py"
SPEC_KEYS = {"stage", "messages", "problems", "node", "nodes", "line"}
INCLUDED = CORPUS / "_included"


def _messages(texts: list[str]) -> list[str]:
    return [t.replace("{dir}", str(CORPUS.resolve())) for t in texts]


def _names_node(message: str, node: str) -> bool:
    """``node`` appears in ``message`` as a whole id (not as part of a longer one)."""
    return re.search(rf"(?<![\w.]){re.escape(node)}(?![\w.])", message) is not None


def read_case(name: str) -> ValidationError:
    """Read a corpus file the way its manifest entry says it fails; return the error."""
    path = CORPUS / name
    if MANIFEST[name]["stage"] == "parse":
        with pytest.raises(DagParseError) as info:
            pentora.load_dag(path)
        return info.value
    dag = pentora.load_dag(path)  # a validation case must parse cleanly
    orch = make_orch(*MODULES, policies=POLICIES)
    orch.load_dag(dag)
    with pytest.raises(ValidationError) as info:
        orch.validate()
    assert not isinstance(info.value, DagParseError)
    return info.value


def test_manifest_matches_the_files() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.is_file() and p.name != "expected.yaml"}
    assert files == set(MANIFEST), "every corpus file has a manifest entry and vice versa"
    assert len(MANIFEST) >= 35
    assert any(name.endswith(".json") for name in MANIFEST)
    for name, spec in MANIFEST.items():
        assert set(spec) <= SPEC_KEYS, name
        assert spec["stage"] in ("parse", "validate"), name
        assert spec["messages"], name
        assert not ("node" in spec and "nodes" in spec), name
        if "nodes" in spec:
            assert len(spec["nodes"]) == spec.get("problems", 1), name


@pytest.mark.parametrize("name", list(MANIFEST))
def test_corpus_case(name: str) -> None:
    spec = MANIFEST[name]
    err = read_case(name)
    text = str(err)
    assert "Traceback" not in text
    for expected in _messages(spec["messages"]):
        assert expected in text
    problems = err.problems
    assert len(problems) == spec.get("problems", 1), text
    nodes = spec.get("nodes") or [spec.get("node")] * len(problems)
    for problem, node in zip(problems, nodes):
        assert problem.node == node, problem
        if node is not None:
            assert _names_node(problem.message, node), problem
        # Every problem says which file it is about (the case or a file it includes).
        assert problem.source is not None, problem
        assert Path(problem.source).resolve().is_relative_to(CORPUS.resolve()), problem
        # A parse problem inside an included file names the subdag node that included it.
        if spec["stage"] == "parse" and Path(problem.source).resolve().is_relative_to(INCLUDED.resolve()):
            assert node is not None, problem
            assert problem.message.startswith(f"Node '{node}': in sub-DAG {problem.source}: "), problem
    if "line" in spec:
        assert problems[0].line == spec["line"], problems[0]


# -- safety: tags never run, aliases never expand ------------------------------------------------


def test_python_tags_run_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    monkeypatch.chdir(tmp_path)
    for name in ("tag_python_apply_os_system.yaml", "tag_python_object.yaml"):
        with pytest.raises(DagParseError):
            pentora.load_dag(CORPUS / name)
        with pytest.raises(DagParseError):
            pentora.load_dag((CORPUS / name).read_text(encoding="utf-8"))
    assert calls == []
    assert list(tmp_path.iterdir()) == []


def _alias_bomb(levels: int, width: int) -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines += ["nodes:", "  - instance_id: x", "    module_type: step",
              f"    config: {{hosts: *a{levels - 1}}}", ""]
    return "\n".join(lines)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("levels,width", [(9, 9), (12, 10), (40, 2)])
def test_alias_bombs_are_refused_before_expansion(levels: int, width: int) -> None:
    # 10^12 or 2^40 strings once expanded: only a refusal up front finishes at all.
    text = _alias_bomb(levels, width)
    with pytest.raises(DagParseError, match="alias bomb"):
        pentora.load_dag(text)


def test_modest_alias_use_is_fine() -> None:
    text = ("nodes:\n"
            "  - {instance_id: a, module_type: configured, config: {retries: 1, ports: &p [22, 80, 443]}}\n"
            "  - {instance_id: b, module_type: configured, config: {retries: 1, ports: *p}}\n")
    dag = pentora.load_dag(text)
    assert [n.config["ports"] for n in dag.nodes] == [[22, 80, 443], [22, 80, 443]]


# -- generated hostile inputs ---------------------------------------------------------------------

SMALL_DAG = "nodes:\n  - instance_id: targets\n    module_type: step\n"


def test_oversize_file_is_refused(tmp_path: Path) -> None:
    limit = 1 << 20
    path = tmp_path / "huge.yaml"
    path.write_text(SMALL_DAG + "#" + "x" * limit + "\n", encoding="utf-8")
    with pytest.raises(DagParseError) as info:
        pentora.load_dag(path, max_bytes=limit)
    assert f"over the {limit}-byte limit for a DAG" in str(info.value)
    assert info.value.problems[0].source == str(path)
    data = path.read_bytes()
    for source in (data, data.decode("utf-8")):
        with pytest.raises(DagParseError, match=f"over the {limit}-byte limit"):
            pentora.load_dag(source, max_bytes=limit)


def test_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "exact.yaml"
    body = SMALL_DAG + "#"
    path.write_text(body + "x" * (4096 - len(body) - 1) + "\n", encoding="utf-8")
    assert path.stat().st_size == 4096
    assert pentora.load_dag(path, max_bytes=4096).nodes[0].instance_id == "targets"


def test_sub_dag_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "stage.yaml").write_text(SMALL_DAG + "#" + "x" * 5000 + "\n", encoding="utf-8")
    main = tmp_path / "main.yaml"
    main.write_text("nodes:\n  - {instance_id: discover, module_type: subdag, subdag_file: stage.yaml}\n",
                    encoding="utf-8")
    with pytest.raises(DagParseError) as info:
        pentora.load_dag(main, max_bytes=4096)
    assert "Node 'discover': in sub-DAG" in str(info.value)
    assert "over the 4096-byte limit" in str(info.value)
    assert info.value.problems[0].node == "discover"


def test_missing_dag_file_is_a_parse_error(tmp_path: Path) -> None:
    with pytest.raises(DagParseError, match="DAG file not found: .*nope.yaml"):
        pentora.load_dag(tmp_path / "nope.yaml")
    with pytest.raises(DagParseError, match="is a directory"):
        pentora.load_dag(tmp_path)


def test_only_regular_files_are_read_as_dags(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # no writer: a blocking open would wait for ever
    for source, kind in [("/dev/zero", "a character device"), (fifo, "a FIFO (named pipe)"),
                         (tmp_path, "a directory")]:
        with pytest.raises(DagParseError) as info:
            pentora.load_dag(source)
        assert str(info.value.problems[0]) == f"{source} is {kind}, not a regular file: give a file"


def test_a_sub_dag_must_be_a_regular_file(tmp_path: Path) -> None:
    main = tmp_path / "main.yaml"
    main.write_text("nodes:\n  - {instance_id: d, module_type: subdag, subdag_file: /dev/zero}\n")
    with pytest.raises(DagParseError, match="Node 'd': in sub-DAG /dev/zero: /dev/zero is a "
                                            "character device, not a regular file"):
        pentora.load_dag(main)


def test_dates_stay_text_and_long_integers_are_refused_at_their_line() -> None:
    dag = pentora.load_dag("vars:\n  a: 2001-13-45\n  b: 2024-01-31\n  c: 2001-12-14t21:59:43.10-05:00\n"
                           "  d: !!timestamp 2001-12-14\n" + SMALL_DAG)
    assert dag.vars == {"a": "2001-13-45", "b": "2024-01-31", "c": "2001-12-14t21:59:43.10-05:00",
                        "d": "2001-12-14"}
    for text, line in [("vars:\n  n: " + "9" * 4301 + "\n" + SMALL_DAG, 2),
                       ("vars:\n  n: [1, -" + "9" * 4301 + "]\n" + SMALL_DAG, 2),
                       ('{"nodes": [],\n "vars": {"n": ' + "9" * 4301 + "}}", 2)]:
        with pytest.raises(DagParseError) as info:
            pentora.load_dag(text)
        problem = info.value.problems[0]
        assert problem.message.startswith("an integer of 4301 digits is over the 4300-digit limit")
        assert problem.line == line
    assert pentora.load_dag("vars:\n  n: " + "9" * 4300 + "\n" + SMALL_DAG).vars["n"] == int("9" * 4300)


GENERATED: list[Any] = [
    pytest.param('{"nodes": ' + "[" * 50_000 + "]" * 50_000 + "}", "JSON nested too deeply for a DAG",
                 id="deep-json"),
    pytest.param("nodes: " + "[" * 50_000 + "]" * 50_000 + "\n", "maximum nesting depth", id="deep-yaml"),
    pytest.param("nodes:\n" + "  " * 2 + "- " * 5_000 + "x\n", "maximum nesting depth", id="deep-block-yaml"),
    pytest.param("nodes: \x00\n", "unacceptable character", id="nul-character"),
    pytest.param("nodes:\n  - {instance_id: a\ud800, module_type: step}\n",
                 "text holds a character that is not valid Unicode at offset 26", id="lone-surrogate"),
    pytest.param(b"\xef\xbb\xbf" + SMALL_DAG.encode() + b"  - {instance_id: 5, module_type: step}\n",
                 "instance_id must be a string", id="bom-then-error"),
    pytest.param(b"\xff\xfe" + SMALL_DAG.encode("utf-16-le"), "not UTF-8 text (byte 0)", id="utf-16"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("source,message", GENERATED)
def test_generated_hostile_input(source: str | bytes, message: str) -> None:
    with pytest.raises(DagParseError) as info:
        pentora.load_dag(source)
    assert message in str(info.value)
    assert "Traceback" not in str(info.value)


# -- the same files through the command line ------------------------------------------------------

CLI_CASES = [
    "cycle_three_nodes.yaml", "missing_dependency.yaml", "data_contract_no_producer.yaml",
    "module_config_error.yaml", "unknown_module_type.yaml", "tag_python_apply_os_system.yaml",
    "billion_laughs.yaml", "non_utf8.yaml", "top_field_typo_node.yaml", "subdag_missing_file.yaml",
    "json_wrong_types.json", "node_fields_all_wrong.yaml",
]
# The core alone: only the test module types, no built-in plugin.
CLI_ENV = {"PENTORA_DISABLE_PLUGIN_AUTOLOAD": "1"}


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_validate_text(run_cli: Any, name: str) -> None:
    spec = MANIFEST[name]
    proc = run_cli("dag", "validate", str(CORPUS / name), "--hooks", str(HOOKS), env=CLI_ENV, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    for expected in _messages(spec["messages"]):
        assert expected in proc.stderr


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_validate_json(run_cli: Any, name: str) -> None:
    spec = MANIFEST[name]
    proc = run_cli("dag", "validate", str(CORPUS / name), "--hooks", str(HOOKS), "--format", "json",
                   env=CLI_ENV, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["valid"] is False
    problems = report["problems"]
    assert len(problems) == spec.get("problems", 1)
    messages = "\n".join(p["message"] for p in problems)
    for expected in _messages(spec["messages"]):
        assert expected in messages
    nodes = spec.get("nodes") or [spec.get("node")] * len(problems)
    assert [p["node"] for p in problems] == nodes
    assert all(p["source"] for p in problems)


def test_cli_accepts_a_valid_dag_with_the_same_modules(run_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("nodes:\n  - {instance_id: grab, module_type: producer}\n"
                    "  - {instance_id: fingerprint, module_type: consumer, depends_on: [grab]}\n",
                    encoding="utf-8")
    proc = run_cli("dag", "validate", str(path), "--hooks", str(HOOKS), env=CLI_ENV, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "valid (2 nodes)" in proc.stdout
