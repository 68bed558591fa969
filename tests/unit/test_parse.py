"""The DAG parser on well-formed input: every field of the format, from every kind of source.

Sub-DAG expansion, ``DagBuilder`` and ``Dag.to_dict()`` round trips are here too; what
malformed input must produce is in ``test_parse_corpus.py``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import pentora
from pentora import Dag, DagBuilder, DagParseError, DataContextSpec, EngineConfig, NodeSpec, RetrySpec
from tests.conftest import make_orch
from tests.dag_modules import MODULES, POLICIES

FULL_YAML = """\
name: full
description: Every field of the DAG format.
vars:
  vuln_enabled: true
  depth: 3
  ports: [22, 80]
engine:
  fail_fast: false
  retry:
    enabled: true
    max_attempts: 5
    backoff: fixed
    initial: 500ms
    max: 10m
    jitter: 0.25
    retry_on: [timeout, network_error, transient]
  max_parallel_nodes: 4
  max_parallel_targets: 64
  data_context:
    max_size: 1GB
    evict_policy: none
  global_timeout: 1h
  node_timeout: 2s
  reporter_timeout: 45s
nodes:
  - instance_id: targets
    module_type: host_lister
    description: parse the targets
  - instance_id: scan
    module_type: configured
    depends_on: [targets]
    config:
      timeout: 2s
      retries: 2
    condition: ${vuln_enabled}
    retry:
      max_attempts: 2
      backoff: none
    timeout: 500ms
    for_each: hosts
  - instance_id: grab
    module_type: producer
    depends_on: scan
    condition: true
    retry: false
    timeout: 10m
  - instance_id: report
    module_type: consumer
    depends_on: [scan, grab]
    retry: {jitter: true, max: null, retry_on: any}
    timeout: null
"""

FULL_ENGINE = EngineConfig(
    fail_fast=False,
    retry=RetrySpec(enabled=True, max_attempts=5, backoff="fixed", initial=0.5, max=600.0,
                    jitter=0.25, retry_on=("timeout", "network_error", "transient")),
    max_parallel_nodes=4,
    max_parallel_targets=64,
    data_context=DataContextSpec(max_size=10**9, evict_policy="none"),
    global_timeout=3600.0,
    node_timeout=2.0,
    reporter_timeout=45.0,
)

FULL_NODES = [
    NodeSpec("targets", "host_lister", [], description="parse the targets"),
    NodeSpec("scan", "configured", ["targets"], {"timeout": "2s", "retries": 2},
             condition="${vuln_enabled}", retry={"max_attempts": 2, "backoff": "none"},
             timeout=0.5, for_each="hosts"),
    NodeSpec("grab", "producer", ["scan"], condition="true", retry={"enabled": False}, timeout=600.0),
    NodeSpec("report", "consumer", ["scan", "grab"],
             retry={"jitter": 0.5, "max": None, "retry_on": ["any"]}, timeout=None),
]
FULL_LINES = [26, 29, 41, 47]


def without_origin(dag: Dag) -> Dag:
    """The DAG with where-defined information (file, line) cleared, for comparisons."""
    nodes = [dataclasses.replace(n, source=None, line=None) for n in dag.nodes]
    return dataclasses.replace(dag, nodes=nodes, source=None)


def assert_full(dag: Dag) -> None:
    assert dag.name == "full"
    assert dag.description == "Every field of the DAG format."
    assert dag.vars == {"vuln_enabled": True, "depth": 3, "ports": [22, 80]}
    assert dag.engine == FULL_ENGINE
    assert without_origin(dag).nodes == FULL_NODES


# -- every field, every kind of source ---------------------------------------------------------------


def test_every_field_from_yaml_text() -> None:
    dag = pentora.load_dag(FULL_YAML)
    assert_full(dag)
    assert dag.source is None
    assert [n.line for n in dag.nodes] == FULL_LINES


def test_every_field_from_json_text() -> None:
    text = json.dumps(yaml.safe_load(FULL_YAML), indent=2)
    dag = pentora.load_dag(text)
    assert_full(dag)
    assert all(n.line is None for n in dag.nodes)  # JSON has no line table


def test_every_field_from_one_line_json() -> None:
    text = json.dumps(yaml.safe_load(FULL_YAML))
    assert "\n" not in text
    assert_full(pentora.load_dag(text))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_every_field_from_bytes(encoding: str) -> None:
    assert_full(pentora.load_dag(FULL_YAML.encode(encoding)))


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json", ".dag"])
def test_every_field_from_a_path(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"scan{suffix}"
    text = json.dumps(yaml.safe_load(FULL_YAML)) if suffix == ".json" else FULL_YAML
    path.write_text(text, encoding="utf-8")
    for source in (path, str(path)):
        dag = pentora.load_dag(source)
        assert_full(dag)
        assert dag.source == str(source)
        assert all(n.source == str(source) for n in dag.nodes)


def test_relative_path_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "scan.yaml").write_text(FULL_YAML, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert_full(pentora.load_dag("scan.yaml"))


def test_yaml_flow_mapping_that_is_not_json() -> None:
    dag = pentora.load_dag("{nodes: [{instance_id: a, module_type: step}]}")
    assert [n.instance_id for n in dag.nodes] == ["a"]


def test_defaults() -> None:
    dag = pentora.load_dag("nodes:\n  - instance_id: a\n    module_type: step\n")
    assert dag.name == "dag"
    assert dag.description == ""
    assert dag.vars == {}
    assert dag.engine == EngineConfig()
    assert dag.engine.fail_fast is True
    node = dag.nodes[0]
    assert (node.depends_on, node.config, node.condition, node.subdag_file, node.retry, node.timeout,
            node.for_each, node.description) == ([], {}, None, None, None, None, None, "")


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "web-scan.yaml"
    path.write_text("nodes:\n  - {instance_id: a, module_type: step}\n", encoding="utf-8")
    assert pentora.load_dag(path).name == "web-scan"


def test_nulls_mean_defaults() -> None:
    dag = pentora.load_dag("description: null\nvars: null\nengine: null\nnodes:\n"
                           "  - {instance_id: a, module_type: step, depends_on: null, config: null,"
                           " condition: null, timeout: null}\n")
    assert dag.engine == EngineConfig()
    assert dag.vars == {}
    assert without_origin(dag).nodes == [NodeSpec("a", "step")]


def test_engine_timeouts_may_be_null() -> None:
    dag = pentora.load_dag("engine: {global_timeout: null, node_timeout: null,\n"
                           "         data_context: {max_size: null}}\n"
                           "nodes:\n  - {instance_id: a, module_type: step}\n")
    assert dag.engine.global_timeout is None
    assert dag.engine.node_timeout is None
    assert dag.engine.data_context.max_size is None


@pytest.mark.parametrize("text,seconds", [
    ("500ms", 0.5), ("2s", 2.0), ("10m", 600.0), ("1h", 3600.0), ("1d", 86400.0), ("1.5s", 1.5),
    ("250 ms", 0.25), ("0s", 0.0), (3, 3.0), (0.25, 0.25),
])
def test_durations(text: str | float, seconds: float) -> None:
    value = json.dumps(text)
    dag = pentora.load_dag(
        f"engine: {{global_timeout: {value}, node_timeout: {value}, reporter_timeout: {value},"
        f" retry: {{initial: {value}, max: {value}}}}}\n"
        f"nodes:\n  - {{instance_id: a, module_type: step, timeout: {value}}}\n")
    engine = dag.engine
    assert [engine.global_timeout, engine.node_timeout, engine.reporter_timeout, engine.retry.initial,
            engine.retry.max, dag.nodes[0].timeout] == [pytest.approx(seconds)] * 6


@pytest.mark.parametrize("text,size", [
    ("1GB", 10**9), ("512MiB", 512 * 2**20), ("100KB", 100_000), ("1.5GiB", 3 * 2**29),
    ("2tb", 2 * 10**12), ("64 B", 64), (4096, 4096), ("0", 0),
])
def test_sizes(text: str | int, size: int) -> None:
    dag = pentora.load_dag(f"engine: {{data_context: {{max_size: {json.dumps(text)}}}}}\n"
                           "nodes:\n  - {instance_id: a, module_type: step}\n")
    assert dag.engine.data_context.max_size == size


def test_a_single_dependency_may_be_a_string() -> None:
    dag = pentora.load_dag("nodes:\n  - {instance_id: a, module_type: step}\n"
                           "  - {instance_id: b, module_type: step, depends_on: a}\n")
    assert dag.nodes[1].depends_on == ["a"]


def test_retry_on_may_be_a_string() -> None:
    dag = pentora.load_dag("engine: {retry: {retry_on: timeout}}\n"
                           "nodes:\n  - {instance_id: a, module_type: step}\n")
    assert dag.engine.retry.retry_on == ("timeout",)


@pytest.mark.parametrize("value,text", [("true", "true"), ("false", "false"), ("'${x} and not ${y}'",
                                                                                "${x} and not ${y}")])
def test_condition_forms(value: str, text: str) -> None:
    dag = pentora.load_dag(f"nodes:\n  - {{instance_id: a, module_type: step, condition: {value}}}\n")
    assert dag.nodes[0].condition == text


def test_node_retry_true_enables_the_engine_policy() -> None:
    dag = pentora.load_dag("nodes:\n  - {instance_id: a, module_type: step, retry: true}\n")
    assert dag.nodes[0].retry == {"enabled": True}
    assert dag.engine.retry.merged(dag.nodes[0].retry).enabled is True


def test_the_full_dag_is_valid_and_plans() -> None:
    orch = make_orch(*MODULES, policies=POLICIES)
    orch.load_dag(pentora.load_dag(FULL_YAML))
    validated = orch.validate()
    assert validated.configs["scan"] == {"timeout": 2.0, "retries": 2, "ports": [80],
                                          "probe": {"size": 64}}
    assert orch.plan is not None
    assert orch.plan.order_ids() == ["targets", "scan", "grab", "report"]


def test_yaml_merge_keys_share_settings() -> None:
    text = ("nodes:\n"
            "  - &probe {instance_id: a, module_type: configured, config: {retries: 2}}\n"
            "  - {<<: *probe, instance_id: b}\n")
    assert yaml.safe_load(text)["nodes"][1]["module_type"] == "configured"
    dag = pentora.load_dag(text)
    assert [(n.instance_id, n.module_type, n.config) for n in dag.nodes] == [
        ("a", "configured", {"retries": 2}), ("b", "configured", {"retries": 2})]


# -- sub-DAGs ------------------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def discover_dag(tmp_path: Path) -> Path:
    """main.yaml includes stages/discover.yaml, which includes inner.yaml beside it."""
    write(tmp_path / "stages" / "discover.yaml", """\
vars: {go: true, depth: 9}
nodes:
  - {instance_id: icmp, module_type: step}
  - {instance_id: tcp, module_type: step, timeout: 1s}
  - {instance_id: merge, module_type: step, depends_on: [icmp, tcp]}
  - {instance_id: arp, module_type: step, condition: "${depth} > 1"}
  - {instance_id: inner, module_type: subdag, subdag_file: inner.yaml, depends_on: [icmp]}
""")
    write(tmp_path / "stages" / "inner.yaml", """\
nodes:
  - {instance_id: x, module_type: step}
  - {instance_id: y, module_type: step, depends_on: [x]}
""")
    return write(tmp_path / "main.yaml", """\
vars: {depth: 2}
nodes:
  - {instance_id: targets, module_type: step}
  - instance_id: discover
    module_type: subdag
    subdag_file: stages/discover.yaml
    depends_on: [targets]
    condition: ${go}
    timeout: 30s
    retry: {max_attempts: 2}
  - {instance_id: scan, module_type: step, depends_on: [discover, targets]}
""")


def test_subdag_nodes_are_namespaced_and_rewired(discover_dag: Path) -> None:
    dag = pentora.load_dag(discover_dag)
    deps = {n.instance_id: n.depends_on for n in dag.nodes}
    assert deps == {
        "targets": [],
        # The sub-DAG's roots inherit the subdag node's dependencies...
        "discover.icmp": ["targets"],
        "discover.tcp": ["targets"],
        "discover.merge": ["discover.icmp", "discover.tcp"],
        "discover.arp": ["targets"],
        "discover.inner.x": ["discover.icmp"],
        "discover.inner.y": ["discover.inner.x"],
        # ...and a node that depended on the subdag node waits for each of its sinks.
        "scan": ["discover.merge", "discover.arp", "discover.inner.y", "targets"],
    }
    assert "discover" not in deps


def test_subdag_nodes_inherit_condition_retry_and_timeout(discover_dag: Path) -> None:
    nodes = pentora.load_dag(discover_dag).node_map()
    assert nodes["discover.icmp"].condition == "${go}"
    assert nodes["discover.arp"].condition == "(${go}) and (${depth} > 1)"
    assert nodes["discover.inner.y"].condition == "${go}"
    assert nodes["discover.icmp"].timeout == 30.0
    assert nodes["discover.tcp"].timeout == 1.0  # its own setting wins
    assert nodes["discover.merge"].retry == {"max_attempts": 2}
    assert nodes["targets"].condition is None and nodes["scan"].timeout is None


def test_subdag_vars_are_defaults_under_the_parents(discover_dag: Path) -> None:
    assert pentora.load_dag(discover_dag).vars == {"depth": 2, "go": True}


def test_subdag_nodes_remember_their_file_and_line(discover_dag: Path) -> None:
    nodes = pentora.load_dag(discover_dag).node_map()
    stages = discover_dag.parent / "stages"
    tcp, inner_y = nodes["discover.tcp"], nodes["discover.inner.y"]
    assert (tcp.source, tcp.line) == (str(stages / "discover.yaml"), 4)
    assert (inner_y.source, inner_y.line) == (str(stages / "inner.yaml"), 3)
    assert nodes["scan"].line == 11


def test_subdag_paths_resolve_from_the_including_file(discover_dag: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert len(pentora.load_dag(discover_dag).nodes) == 8


def test_subdag_paths_in_text_resolve_from_base_dir(discover_dag: Path) -> None:
    text = discover_dag.read_text(encoding="utf-8")
    dag = pentora.load_dag(text, base_dir=discover_dag.parent)
    assert [n.instance_id for n in dag.nodes] == [n.instance_id for n in pentora.load_dag(discover_dag).nodes]


def test_expanded_dag_validates_and_plans(discover_dag: Path) -> None:
    orch = make_orch(*MODULES, policies=POLICIES)
    orch.load_dag(discover_dag)
    orch.validate()
    assert orch.plan is not None
    assert orch.plan.layer_ids() == [
        ["targets"],
        ["discover.icmp", "discover.tcp", "discover.arp"],
        ["discover.merge", "discover.inner.x"],
        ["discover.inner.y"],
        ["scan"],
    ]


def test_one_file_included_twice_is_not_a_cycle(tmp_path: Path) -> None:
    write(tmp_path / "probe.yaml", "nodes:\n  - {instance_id: p, module_type: step}\n"
                                   "  - {instance_id: q, module_type: step, depends_on: [p]}\n")
    main = write(tmp_path / "main.yaml", """\
nodes:
  - {instance_id: first, module_type: subdag, subdag_file: probe.yaml}
  - {instance_id: second, module_type: subdag, subdag_file: probe.yaml, depends_on: [first]}
  - {instance_id: last, module_type: step, depends_on: [second]}
""")
    deps = {n.instance_id: n.depends_on for n in pentora.load_dag(main).nodes}
    assert deps == {"first.p": [], "first.q": ["first.p"], "second.p": ["first.q"],
                    "second.q": ["second.p"], "last": ["second.q"]}


def test_subdag_file_may_be_absolute(tmp_path: Path) -> None:
    stage = write(tmp_path / "abs" / "stage.yaml", "nodes:\n  - {instance_id: s, module_type: step}\n")
    dag = pentora.load_dag(f"nodes:\n  - {{instance_id: d, module_type: subdag, subdag_file: '{stage}'}}\n",
                           base_dir=tmp_path / "nowhere")
    assert [n.instance_id for n in dag.nodes] == ["d.s"]


# -- DagBuilder ----------------------------------------------------------------------------------------


def full_builder() -> DagBuilder:
    return (DagBuilder("full", "Every field of the DAG format.")
            .vars(vuln_enabled=True, depth=3, ports=[22, 80])
            .engine(fail_fast=False,
                    retry={"enabled": True, "max_attempts": 5, "backoff": "fixed", "initial": "500ms",
                           "max": "10m", "jitter": 0.25,
                           "retry_on": ["timeout", "network_error", "transient"]},
                    max_parallel_nodes=4, max_parallel_targets=64,
                    data_context={"max_size": "1GB", "evict_policy": "none"},
                    global_timeout="1h", node_timeout="2s", reporter_timeout="45s")
            .add_node("targets", "host_lister", description="parse the targets")
            .add_node("scan", "configured", ["targets"], {"timeout": "2s", "retries": 2},
                      condition="${vuln_enabled}", retry={"max_attempts": 2, "backoff": "none"},
                      timeout="500ms", for_each="hosts")
            .add_node("grab", "producer", ["scan"], condition=True, retry=False, timeout="10m")
            .add_node("report", "consumer", ["scan", "grab"],
                      retry={"jitter": True, "max": None, "retry_on": "any"}, timeout=None))


def test_builder_makes_the_same_dag_as_yaml() -> None:
    built = full_builder().build()
    assert_full(built)
    assert without_origin(built) == without_origin(pentora.load_dag(FULL_YAML))
    assert built.to_dict() == pentora.load_dag(FULL_YAML).to_dict()


def test_builder_expands_subdags(discover_dag: Path) -> None:
    built = (DagBuilder("main", base_dir=discover_dag.parent).vars(depth=2)
             .add_node("targets", "step")
             .add_node("discover", "subdag", ["targets"], subdag_file="stages/discover.yaml",
                       condition="${go}", timeout="30s", retry={"max_attempts": 2})
             .add_node("scan", "step", ["discover", "targets"])
             .build())
    assert built.to_dict() == pentora.load_dag(discover_dag).to_dict()


def test_builder_reports_every_malformed_field() -> None:
    builder = (DagBuilder().add_node("a", "step", timeout="soon").add_node("b", "step", retry="often")
               .add_node("c", "step", colour="red").engine(max_parallel_nodes=0))
    with pytest.raises(DagParseError) as info:
        builder.build()
    assert [p.node for p in info.value.problems] == [None, "a", "b", "c"]
    assert "engine.max_parallel_nodes: must be at least 1, got 0" in str(info.value)
    assert "Node 'c': colour: unknown field 'colour'" in str(info.value)


def test_builder_reports_a_config_that_is_not_a_mapping() -> None:
    builder = DagBuilder().add_node("b", "step", config=[1])  # type: ignore[arg-type]
    with pytest.raises(DagParseError, match="config: expected a mapping of settings") as info:
        builder.build()  # checked here, like every other field, not by add_node()
    assert [p.node for p in info.value.problems] == ["b"]


# -- to_dict round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("dump", [json.dumps, yaml.safe_dump, lambda data: data],
                         ids=["json", "yaml", "mapping"])
def test_to_dict_round_trips_through_load_dag(dump: Any, discover_dag: Path) -> None:
    for dag in (pentora.load_dag(FULL_YAML), pentora.load_dag(discover_dag), full_builder().build(),
                pentora.load_dag("nodes:\n  - {instance_id: a, module_type: step}\n")):
        data = dag.to_dict()
        again = pentora.load_dag(dump(data))
        assert without_origin(again) == without_origin(dag)
        assert again.to_dict() == dag.to_dict()
        assert data == dag.to_dict()  # a mapping given to load_dag is read, not changed


def test_a_parsed_mapping_gets_the_same_problems_as_text() -> None:
    doc = {"engine": {"fail_fst": True},
           "nodes": [{"instance_id": "a", "module_type": "step", "timeout": "soon"}]}
    with pytest.raises(DagParseError) as from_mapping:
        pentora.load_dag(doc)
    with pytest.raises(DagParseError) as from_text:
        pentora.load_dag(json.dumps(doc))
    assert from_mapping.value.problems == from_text.value.problems
    assert len(from_mapping.value.problems) == 2


def test_to_dict_is_plain_json() -> None:
    data = pentora.load_dag(FULL_YAML).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["engine"]["retry"]["retry_on"] == ["timeout", "network_error", "transient"]
    assert data["nodes"][0] == {"instance_id": "targets", "module_type": "host_lister", "depends_on": [],
                                "description": "parse the targets"}
