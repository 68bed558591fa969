"""The validator: every problem at once, each naming its node; data contracts; conditions."""

from __future__ import annotations

from typing import Any

import pytest

import pentora
from pentora import DagBuilder, DagParseError, Module, ValidationError
from tests.conftest import make_orch
from tests.dag_modules import MODULES, POLICIES


class Emit(Module):
    """Produces the keys its config names: a contract that depends on config."""

    module_type = "emit"
    config_schema = {"keys": [str]}

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (), tuple(config.get("keys", ()))


class BrokenContract(Module):
    module_type = "broken_contract"

    @classmethod
    def contract(cls, config: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        raise KeyError("ports")


def validate(source: Any, **kw: Any) -> pentora._orchestrator.Validated:
    orch = make_orch(*MODULES, Emit, BrokenContract, policies=POLICIES)
    orch.load_dag(source)
    return orch.validate(**kw)


def problems_of(source: Any, **kw: Any) -> list[pentora.Problem]:
    with pytest.raises(ValidationError) as info:
        validate(source, **kw)
    assert not isinstance(info.value, DagParseError)
    return info.value.problems


FIVE_PROBLEMS = """\
vars: {vuln_enabled: true}
nodes:
  - {instance_id: targets, module_type: step}
  - {instance_id: port_scan, module_type: configured, depends_on: [targets], config: {retries: zero}}
  - {instance_id: banner_grab, module_type: step, depends_on: [port_sacn]}
  - {instance_id: fingerprint, module_type: consumer, depends_on: [banner_grab]}
  - {instance_id: vuln, module_type: step, depends_on: [fingerprint],
     condition: "${vuln_enabled} and os.system"}
  - {instance_id: report, module_type: reporter, depends_on: [vuln]}
"""


def test_five_problems_in_one_error() -> None:
    problems = problems_of(FIVE_PROBLEMS)
    by_node = {p.node: p.message for p in problems}
    assert len(problems) == 5
    assert by_node == {
        "banner_grab": "Node 'banner_grab' depends on 'port_sacn' which does not exist "
                       "(did you mean 'port_scan'?)",
        "report": "Node 'report': unknown module_type 'reporter' (did you mean 'producer'?)",
        "port_scan": "Node 'port_scan' (configured): config.retries: expected a positive integer, got 'zero'",
        "fingerprint": "Node 'fingerprint' requires 'banners' but no upstream node produces it",
        "vuln": "Node 'vuln': condition '${vuln_enabled} and os.system': attribute access is not allowed "
                "in conditions (use names, literals, and/or/not, comparisons, len())",
    }
    # Graph problems first, then module and config, then condition syntax (parsed for every
    # node, whatever the graph), then the contract.
    assert [p.line for p in problems] == [5, 4, 9, 7, 6]
    assert all(p.key in (None, "module_type", "config.retries", "condition") for p in problems)


def test_error_text_lists_each_problem_with_its_place(tmp_path: Any) -> None:
    path = tmp_path / "five.yaml"
    path.write_text(FIVE_PROBLEMS, encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        validate(path)
    text = str(info.value)
    assert text.startswith("5 problems in DAG:\n")
    assert f"  - {path}:5: Node 'banner_grab' depends on 'port_sacn'" in text
    assert text.count(f"  - {path}:") == 5
    assert "Traceback" not in text


def test_parse_problems_are_all_reported_at_once() -> None:
    text = """\
nam: typo
engine: {fail_fast: maybe, max_parallel_nodes: 0}
nodes:
  - {instance_id: a, module_type: step, timeout: 2s, depends: [b]}
  - {instance_id: b, module_type: 3}
  - just a string
  - {module_type: step}
  - {instance_id: c, module_type: subdag}
"""
    with pytest.raises(DagParseError) as info:
        pentora.load_dag(text)
    problems = info.value.problems
    # The top-level schema fails first, then every node is still read.
    assert [(p.node, p.key) for p in problems] == [
        (None, "nam"), (None, "engine.fail_fast"), (None, "engine.max_parallel_nodes"),
        ("a", "depends"), ("b", "module_type"), (None, None), (None, "instance_id"), ("c", None)]
    assert [p.line for p in problems[3:]] == [4, 5, 6, 7, 8]


@pytest.mark.parametrize("graph_problem", [
    "  - {instance_id: a, module_type: step, depends_on: [b]}\n"
    "  - {instance_id: b, module_type: step, depends_on: [a]}\n",
    "  - {instance_id: a, module_type: step}\n  - {instance_id: a, module_type: step}\n",
], ids=["cycle", "duplicate-id"])
def test_condition_problems_are_reported_alongside_graph_problems(graph_problem: str) -> None:
    problems = problems_of("nodes:\n" + graph_problem +
                           "  - {instance_id: c, module_type: step, condition: \"__import__('os')\"}\n")
    assert len(problems) == 2
    assert problems[0].node == "a"  # the graph problem
    assert (problems[1].node, problems[1].key) == ("c", "condition")
    assert "only calls to" in problems[1].message


def test_a_valid_dag_returns_what_validation_learnt() -> None:
    dag = (DagBuilder().vars(deep=False)
           .add_node("grab", "producer")
           .add_node("scan", "configured", ["grab"], {"retries": 3, "timeout": "500ms"})
           .add_node("fingerprint", "consumer", ["scan"], condition="${deep} or len(banners) > 0")
           .build())
    validated = validate(dag)
    assert validated.problems == []
    assert validated.configs["scan"] == {"retries": 3, "timeout": 0.5, "ports": [80], "probe": {"size": 64}}
    assert validated.configs["grab"] == {}
    assert validated.requires == {"grab": (), "scan": (), "fingerprint": ("banners",)}
    assert validated.produces == {"grab": ("banners",), "scan": (), "fingerprint": ()}
    assert validated.conditions["fingerprint"].names == {"deep", "banners"}


def test_validate_sets_the_plan_and_a_failure_leaves_none() -> None:
    orch = make_orch(*MODULES)
    orch.load_dag(DagBuilder().add_node("a", "step").add_node("b", "step", ["a"]).build())
    orch.validate()
    assert orch.plan is not None and orch.plan.order_ids() == ["a", "b"]
    orch.load_dag(DagBuilder().add_node("a", "step", ["a"]).build())
    assert orch.plan is None and orch.validated is None
    with pytest.raises(ValidationError):
        orch.validate()
    assert orch.plan is None and orch.validated is None


# -- graph problems ------------------------------------------------------------------------------------


def test_self_dependency_is_reported_once_not_also_as_a_cycle() -> None:
    problems = problems_of(DagBuilder().add_node("a", "step", ["a"]).build())
    assert [(p.node, p.message) for p in problems] == [("a", "Node 'a' depends on itself")]


def test_every_missing_dependency_is_reported() -> None:
    dag = (DagBuilder().add_node("a", "step", ["ghost", "phantom"])
           .add_node("b", "step", ["ghost"]).build())
    assert [p.message for p in problems_of(dag)] == [
        "Node 'a' depends on 'ghost' which does not exist",
        "Node 'a' depends on 'phantom' which does not exist",
        "Node 'b' depends on 'ghost' which does not exist",
    ]


def test_each_duplicate_is_reported_with_the_first_line() -> None:
    text = "nodes:\n" + "  - {instance_id: a, module_type: step}\n" * 3
    problems = problems_of(text)
    assert [(p.node, p.line) for p in problems] == [("a", 3), ("a", 4)]
    assert all("(first defined at line 2)" in p.message for p in problems)


def test_each_cycle_is_reported_with_its_path() -> None:
    dag = (DagBuilder()
           .add_node("a", "step", ["b"]).add_node("b", "step", ["a"])
           .add_node("ok", "step")
           .add_node("x", "step", ["z"]).add_node("y", "step", ["x"]).add_node("z", "step", ["y", "ok"])
           .build())
    assert [(p.node, p.message) for p in problems_of(dag)] == [
        ("a", "Cycle detected in DAG: a → b → a"),
        ("x", "Cycle detected in DAG: x → y → z → x"),
    ]


@pytest.mark.parametrize("registered,hint", [
    (MODULES, " (did you mean 'producer'?)"),
    ((), " (no module types are registered: are the plugins installed?)"),
])
def test_unknown_module_type_hint(registered: tuple[type[Module], ...], hint: str) -> None:
    orch = make_orch(*registered)
    orch.load_dag(DagBuilder().add_node("grab", "produce").build())
    with pytest.raises(ValidationError) as info:
        orch.validate()
    assert info.value.problems[0].message == f"Node 'grab': unknown module_type 'produce'{hint}"


# -- data contract -------------------------------------------------------------------------------------


def test_a_key_produced_anywhere_upstream_satisfies_the_contract() -> None:
    dag = (DagBuilder()
           .add_node("grab", "producer")
           .add_node("left", "step", ["grab"]).add_node("right", "step", ["grab"])
           .add_node("join", "step", ["left", "right"])
           .add_node("fingerprint", "consumer", ["join"])
           .build())
    assert validate(dag).problems == []


def test_a_sibling_producer_does_not_satisfy_the_contract() -> None:
    dag = (DagBuilder().add_node("root", "step")
           .add_node("grab", "producer", ["root"]).add_node("fingerprint", "consumer", ["root"])
           .build())
    [problem] = problems_of(dag)
    assert problem.node == "fingerprint"
    assert problem.message == ("Node 'fingerprint' requires 'banners' but no upstream node produces it "
                               "('grab' produces it: add it to depends_on)")


def test_a_downstream_producer_does_not_satisfy_the_contract() -> None:
    dag = (DagBuilder().add_node("fingerprint", "consumer").add_node("grab", "producer", ["fingerprint"])
           .build())
    assert [p.node for p in problems_of(dag)] == ["fingerprint"]


def test_initial_keys_satisfy_the_contract() -> None:
    dag = DagBuilder().add_node("fingerprint", "consumer").build()
    assert validate(dag, initial_keys=["banners"]).problems == []


def test_contract_may_depend_on_config() -> None:
    dag = (DagBuilder().add_node("seed", "emit", config={"keys": ["banners", "hosts"]})
           .add_node("fingerprint", "consumer", ["seed"])
           .add_node("per_host", "step", ["seed"], for_each="hosts")
           .build())
    assert validate(dag).produces["seed"] == ("banners", "hosts")
    dag = (DagBuilder().add_node("seed", "emit", config={"keys": ["hosts"]})
           .add_node("fingerprint", "consumer", ["seed"]).build())
    assert [p.node for p in problems_of(dag)] == ["fingerprint"]


def test_a_failing_contract_is_a_problem_not_a_crash() -> None:
    [problem] = problems_of(DagBuilder().add_node("odd", "broken_contract").build())
    assert problem.node == "odd"
    assert problem.message == "Node 'odd' (broken_contract): contract() failed: KeyError: 'ports'"


# -- conditions ----------------------------------------------------------------------------------------


def test_condition_names_may_be_vars_set_values_or_upstream_keys() -> None:
    dag = (DagBuilder().vars(deep=True)
           .add_node("grab", "producer")
           .add_node("a", "step", ["grab"], condition="${deep} and len(banners) > 2 and ${level} >= 1")
           .build())
    problems = problems_of(dag)
    assert [p.message for p in problems] == [
        "Node 'a': condition refers to 'level', which is neither a var nor a key produced upstream "
        "(define it under vars: or pass --set level=VALUE)"]
    assert validate(dag, vars={"level": 2}).conditions["a"].names == {"deep", "banners", "level"}


def test_condition_on_a_key_that_is_not_upstream() -> None:
    dag = (DagBuilder().add_node("grab", "producer")
           .add_node("a", "step", condition="len(banners) > 0").build())
    [problem] = problems_of(dag)
    assert (problem.node, problem.key) == ("a", "condition")
    assert "condition refers to 'banners'" in problem.message


@pytest.mark.parametrize("condition,message", [
    ("${a} and", "cannot be parsed"),
    ("a.b", "attribute access is not allowed"),
    ("a[0]", "subscripts is not allowed"),
    ("__import__('os')", "only calls to"),
    ("open('/etc/passwd')", "only calls to"),
    ("len(a, key=1)", "only calls to"),
    ("(lambda: 1)()", "only calls to"),
    ("lambda: 1", "Lambda is not allowed"),
    ("a ** 2", "Pow is not allowed"),
    ("[x for x in a]", "ListComp is not allowed"),
    ("${}", "'${...}' must hold one variable name"),
    ("a" * 1001, "the limit is 1000"),
])
def test_bad_conditions(condition: str, message: str) -> None:
    dag = DagBuilder().vars(a=1).add_node("n", "step", condition=condition).build()
    [problem] = problems_of(dag)
    assert (problem.node, problem.key) == ("n", "condition")
    assert message in problem.message
    assert problem.message.startswith("Node 'n': ")


# -- retry policies ------------------------------------------------------------------------------------


def test_engine_retry_policy_is_checked_when_enabled() -> None:
    dag = (DagBuilder().engine(retry={"enabled": True, "backoff": "fixd"}).add_node("a", "step").build())
    [problem] = problems_of(dag)
    assert problem.node is None
    assert problem.message == ("engine.retry.backoff: unknown retry policy 'fixd' (did you mean 'fixed'?); "
                               "known: exponential, fixed, none")


def test_node_retry_policy_is_checked_with_the_engine_defaults() -> None:
    dag = DagBuilder().add_node("a", "step", retry={"max_attempts": 2}).build()
    assert validate(dag).problems == []
    orch = make_orch(*MODULES)  # no retry policy registered at all
    orch.load_dag(dag)
    with pytest.raises(ValidationError) as info:
        orch.validate()
    assert info.value.problems[0].message == ("Node 'a': retry.backoff: unknown retry policy "
                                              "'exponential'; known: none registered")
