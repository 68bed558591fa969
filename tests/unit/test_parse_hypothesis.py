"""Property tests of the DAG reader: whatever it is given, it answers with a ``Dag`` or a
``DagParseError`` (and the validator with a ``ValidationError``), never another exception.

Examples are derandomised so that CI runs are repeatable; set
``PENTORA_HYPOTHESIS_RANDOM=1`` to explore with fresh random examples.
"""

from __future__ import annotations

import builtins
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import pentora
from pentora import Condition, ConditionError, Dag, DagParseError, ValidationError
from pentora._units import format_duration, parse_duration, parse_size
from tests.conftest import make_orch
from tests.dag_modules import MODULES, POLICIES

SETTINGS = settings(max_examples=200, deadline=None, database=None,
                    derandomize=not os.environ.get("PENTORA_HYPOTHESIS_RANDOM"),
                    suppress_health_check=[HealthCheck.too_slow])

# Fragments of DAG files, so that generated text reaches past the first YAML error.
YAML_TOKENS = st.sampled_from([
    "nodes:", "engine:", "vars:", "name:", "\n", "\n  ", "\n    ", "- ", "  - ", ": ", ", ", "[", "]", "{",
    "}", "instance_id: a", "instance_id: b", "module_type: step", "module_type: subdag",
    "depends_on: [a]", "config:", "condition: ", "timeout: ", "retry:", "max_attempts: ", "backoff: ",
    "subdag_file: ", "for_each: ", "fail_fast: ", "data_context:", "max_size: ", "global_timeout: ",
    "&x ", "*x", "<<: ", "!!python/object/apply:os.system ", "!!binary ", "!include ", "? ", "'", '"',
    "~", "null", "true", "yes", "0", "-1", "2s", "500ms", "1GB", ".nan", ".inf", "1e3", "#", "%YAML 1.2\n",
    "---\n", "...\n", "|\n", ">\n", "\t", "${x}", "\\", "é", "\ufeff",
])
yaml_soup = st.lists(YAML_TOKENS, max_size=40).map("".join)


def load_or_parse_error(source: str | bytes) -> Dag | None:
    try:
        dag = pentora.load_dag(source)
    except DagParseError as e:
        assert e.problems, "a DagParseError lists at least one problem"
        assert all(p.message for p in e.problems)
        assert "Traceback" not in str(e)
        return None
    assert isinstance(dag, Dag)
    return dag


def validate_or_validation_error(dag: Dag) -> None:
    orch = make_orch(*MODULES, policies=POLICIES)
    orch.load_dag(dag)
    try:
        orch.validate()
    except ValidationError as e:
        assert e.problems
        assert all(p.message for p in e.problems)


@SETTINGS
@given(st.text(max_size=300) | yaml_soup)
@example("nodes: &x [*x]")
@example("nodes:\n  - {instance_id: a, module_type: subdag, subdag_file: /}")
@example("nodes:\n  - {<<: {instance_id: a}, module_type: step}")
@example("does-not-exist.yaml")
def test_any_text_gives_a_dag_or_a_parse_error(text: str) -> None:
    load_or_parse_error(text)


@SETTINGS
@given(st.binary(max_size=300) | yaml_soup.map(lambda s: s.encode("utf-8")))
@example(b"\xff\xfe\x00n")
@example(b"\xef\xbb\xbf")
def test_any_bytes_give_a_dag_or_a_parse_error(data: bytes) -> None:
    load_or_parse_error(data)


# Short texts keep examples small; numbers too long for a float are in the corpus
# (engine_max_size_overflow.yaml) and in test_huge_size_is_a_value_error below.
short_text = st.text(max_size=30)
plausible = st.sampled_from(["2s", "500ms", "1GB", "a", "b", "step", "subdag", "producer", "consumer",
                             "configured", "${x}", "x > 1", "timeout", "exponential", "lru", "none",
                             "hosts", "banners"])
scalars = st.none() | st.booleans() | st.integers() | st.floats() | short_text | plausible
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(short_text | st.sampled_from(["retries", "timeout", "ports"]),
                                           inner, max_size=4), max_leaves=12)

NODE_FIELDS = ["instance_id", "module_type", "depends_on", "config", "condition", "subdag_file", "retry",
               "timeout", "for_each", "description", "dependson"]
ENGINE_FIELDS = ["fail_fast", "retry", "max_parallel_nodes", "max_parallel_targets", "data_context",
                 "global_timeout", "node_timeout", "reporter_timeout", "fail_fst"]
RETRY_FIELDS = ["enabled", "max_attempts", "backoff", "initial", "max", "jitter", "retry_on"]


def field_dict(names: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(names), values, max_size=len(names))


nodes_like = st.dictionaries(st.sampled_from(NODE_FIELDS) | short_text,
                             json_like | field_dict(RETRY_FIELDS, json_like), max_size=8)
engine_like = field_dict(ENGINE_FIELDS, json_like | field_dict(RETRY_FIELDS, json_like)
                         | field_dict(["max_size", "evict_policy"], json_like))
documents = st.fixed_dictionaries(
    {"nodes": st.lists(nodes_like | json_like, max_size=6) | json_like},
    optional={"engine": engine_like | json_like, "vars": json_like, "name": json_like,
              "description": json_like})


@SETTINGS
@given(documents, st.sampled_from(["json", "yaml"]))
def test_any_structure_under_nodes_gives_a_dag_or_a_parse_error(doc: dict[str, Any], form: str) -> None:
    text = json.dumps(doc) if form == "json" else yaml.safe_dump(doc)
    dag = load_or_parse_error(text)
    if dag is not None:
        validate_or_validation_error(dag)


@SETTINGS
@given(st.lists(st.fixed_dictionaries(
    {"instance_id": st.sampled_from("abcdef"), "module_type": st.sampled_from(
        ["step", "producer", "consumer", "host_lister", "configured", "schema_configured", "stpe"])},
    optional={"depends_on": st.lists(st.sampled_from("abcdefg"), max_size=3),
              "config": st.dictionaries(st.sampled_from(["retries", "timeout", "ports", "count", "x"]),
                                        json_like, max_size=3),
              "condition": st.sampled_from(["${a}", "banners", "len(hosts) > 1", "a and", "a.b", "x"]),
              "for_each": st.sampled_from(["hosts", "banners", "ports"])}), min_size=1, max_size=8))
def test_any_graph_of_known_fields_parses_then_validates(nodes: list[dict[str, Any]]) -> None:
    dag = load_or_parse_error(json.dumps({"vars": {"a": True}, "nodes": nodes}))
    assert dag is not None, "well-typed fields always parse"
    validate_or_validation_error(dag)


# -- durations and sizes -------------------------------------------------------------------------------

DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}
SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KiB": 2**10, "MiB": 2**20,
              "GiB": 2**30, "TiB": 2**40, "": 1}


@SETTINGS
@given(st.decimals(min_value=0, max_value=10**7, places=3), st.sampled_from(sorted(DURATION_UNITS)),
       st.sampled_from(["", " "]))
def test_duration_text_reads_as_number_times_unit(number: Decimal, unit: str, space: str) -> None:
    text = f"{number}{space}{unit}"
    assert parse_duration(text) == pytest.approx(float(number) * DURATION_UNITS[unit], rel=1e-12)
    assert parse_duration(f" {text} ") == parse_duration(text)


@SETTINGS
@given(st.floats(min_value=0.001, max_value=100_000))
def test_formatted_durations_read_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-5)


@SETTINGS
@given(st.integers(min_value=0, max_value=1000) | st.sampled_from([1, 30, 60, 90, 3600, 5400, 86400]))
def test_whole_durations_read_back_exactly(seconds: int) -> None:
    assert parse_duration(format_duration(float(seconds))) == seconds


@pytest.mark.parametrize("seconds", [1_000_001.0, 1e-8])
def test_formatted_extreme_durations_read_back(seconds: float) -> None:
    assert "e" not in format_duration(seconds)  # no exponent notation
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-5)


@SETTINGS
@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(SIZE_UNITS)), st.booleans())
def test_size_text_reads_as_number_times_unit(number: int, unit: str, lower: bool) -> None:
    text = f"{number}{unit.lower() if lower else unit}"
    expected = number * SIZE_UNITS[unit]
    if expected < 2**53:  # exact while the float product is
        assert parse_size(text) == expected
    else:
        assert parse_size(text) == pytest.approx(expected, rel=1e-15)


@SETTINGS
@given(st.integers(min_value=0, max_value=2**64))
def test_bare_integer_sizes_are_exact(number: int) -> None:
    assert parse_size(number) == number


@SETTINGS
@given(st.text(max_size=40) | st.none() | st.booleans() | st.integers() | st.floats()
       | st.lists(st.integers(), max_size=2))
def test_durations_and_sizes_read_or_raise_value_error(value: Any) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError:
        pass
    else:
        assert isinstance(seconds, float) and seconds >= 0
    try:
        size = parse_size(value)
    except ValueError:
        pass
    else:
        assert isinstance(size, int) and size >= 0


def test_nan_is_not_a_duration() -> None:
    with pytest.raises(ValueError, match="a duration must be a finite number, got nan"):
        parse_duration(float("nan"))


def test_huge_size_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="is absurdly large"):
        parse_size("9" * 400 + "GB")


# -- conditions ------------------------------------------------------------------------------------------

CONDITION_TOKENS = st.sampled_from([
    "a", "b", "hosts", "ports", "${a}", "${b}", "${", "}", "1", "0", "2.5", "-", "+", "*", "/", "%", "**",
    "<<", "and", "or", "not", "in", "not in", "==", "!=", "<", ">=", "(", ")", "[", "]", ",", ".", ":",
    "'x'", '"y"', "True", "null", "none", "len", "min", "max", "any", "all", "int", "str", "bool", "float",
    "lambda", "if", "else", "for", "=", ":=", "__import__('os')", "__import__", "os", "system", "'id'",
    "open", "eval", "exec", "compile", "getattr", "globals", "__class__", "__subclasses__", "__builtins__",
    "breakpoint", "yield", "await", "b'z'", "1j", "...", "{", "}", "f'{a}'", "x=1", ";", "\n",
])
condition_text = st.text(max_size=200) | st.lists(CONDITION_TOKENS, max_size=25).map(" ".join)
NAMES = {"a": 3, "b": "web", "hosts": ["10.0.0.1", "10.0.0.2"], "ports": [22, 80], "x": True, "y": 0.5}


def lookup(name: str) -> Any:
    return NAMES[name]  # KeyError for anything else, as the executor's lookup does


@contextmanager
def nothing_may_run(calls: list[str]) -> Iterator[None]:
    """Record any attempt to import, evaluate, open or spawn while the block runs."""
    real_import = builtins.__import__

    def guard(name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise RuntimeError(f"condition code tried {name}")
        return refuse

    def guarded_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] in ("os", "subprocess", "socket", "shutil", "ctypes", "importlib"):
            calls.append(f"import {name}")
            raise RuntimeError(f"condition code tried to import {name}")
        return real_import(name, *args, **kwargs)

    patches = [(builtins, "eval"), (builtins, "exec"), (builtins, "open"), (builtins, "breakpoint"),
               (os, "system"), (os, "popen"), (subprocess, "Popen")]
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr in patches]
    try:
        for obj, attr in patches:
            setattr(obj, attr, guard(f"{getattr(obj, '__name__', obj)}.{attr}"))
        builtins.__import__ = guarded_import
        yield
    finally:
        builtins.__import__ = real_import
        for obj, attr, value in saved:
            setattr(obj, attr, value)


def test_the_guard_notices_code_that_runs() -> None:
    calls: list[str] = []
    with nothing_may_run(calls):
        for attempt in (lambda: os.system("true"), lambda: eval("1"), lambda: __import__("subprocess")):
            with pytest.raises(RuntimeError):
                attempt()
    assert calls == ["os.system", "builtins.eval", "import subprocess"]
    assert os.system.__module__ in ("posix", "nt", "os")  # restored


@SETTINGS
@given(condition_text)
@example("__import__('os').system('id')")
@example("().__class__.__bases__[0].__subclasses__()")
@example("len(hosts) > 1 and ${a} >= 3 and b == 'web' and not x")
@example("min() or int('z') or 1 / 0 or 'a' in 5 or hosts * 2")
def test_conditions_parse_or_refuse_and_never_run_code(text: str) -> None:
    calls: list[str] = []
    outcome: Any = None
    with nothing_may_run(calls):
        try:
            cond = Condition(text)
        except ConditionError as e:
            outcome = e
        else:
            try:
                outcome = cond.evaluate(lookup)
            except ConditionError as e:
                outcome = e
    assert calls == []
    if isinstance(outcome, ConditionError):
        assert str(outcome).startswith("condition ")
    else:
        assert isinstance(outcome, bool)


@SETTINGS
@given(st.sampled_from(sorted(NAMES)), st.sampled_from(sorted(NAMES)))
def test_condition_names_are_what_it_reads(first: str, second: str) -> None:
    cond = Condition(f"${{{first}}} == {second} or len([{first}]) > 0")
    assert cond.names == {first, second}
    read: list[str] = []
    assert cond.evaluate(lambda name: read.append(name) or NAMES[name]) is True
    assert set(read) <= {first, second}


def test_deeply_nested_condition_is_refused_not_a_crash() -> None:
    # 995 nested unary minuses: 996 characters, under MAX_LENGTH, but deeper than the stack.
    with pytest.raises(ConditionError, match="too deep"):
        Condition("-" * 995 + "1")


def test_conditions_evaluate_as_documented() -> None:
    assert Condition("${a} > 2 and b == 'web'").evaluate(lookup) is True
    assert Condition("not x or len(ports) == 3").evaluate(lookup) is False
    assert Condition("22 in ports and max(ports) == 80 and ${y} * 2 == 1").evaluate(lookup) is True
    assert Condition("true and not false and none == null").evaluate(lookup) is True
    with pytest.raises(ConditionError, match="unknown name 'missing'"):
        Condition("missing").evaluate(lookup)
    with pytest.raises(ConditionError, match="arithmetic needs numbers"):
        Condition("b * 1000000000").evaluate(lookup)
    assert Condition("1e308 * 10 > 1e308").evaluate(lookup) is True  # inf, not an error
