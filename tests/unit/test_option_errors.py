"""Which option, as typed, set a var: what an option's error quotes."""

from __future__ import annotations

import pytest

from pentora import Problem, ValidationError, load_dag
from pentora.cli import EXIT_INVALID, EXIT_USAGE, CliError
from pentora.cli._option_errors import option_errors, option_given


@pytest.mark.parametrize(("argv", "var", "value", "given"), [
    (["scan", "-t", "300.1.1.1"], "targets", "300.1.1.1", "-t 300.1.1.1"),
    (["scan", "-t300.1.1.1"], "targets", "300.1.1.1", "-t 300.1.1.1"),
    (["scan", "--targets=300.1.1.1"], "targets", "300.1.1.1", "--targets 300.1.1.1"),
    (["scan", "-p", "1", "-p", "0"], "ports", "0", "-p 0"),  # the last one given set it
    (["scan", "--set", "rate=fast"], "rate", "fast", "--set rate=fast"),
    (["scan", "--set", "rate=fast", "--set", "rate=slow"], "rate", "slow", "--set rate=slow"),
    (["scan", "--resume", "abc"], "targets", "300.1.1.1", None),
    (["scan", "-t", "x" * 200], "targets", "x" * 200, "-t " + "x" * 80 + "…"),
])
def test_option_given(argv: list[str], var: str, value: str, given: str | None) -> None:
    assert option_given(argv, var, value) == given


DAG = """\
vars: {targets: 127.0.0.1, ports: 80}
nodes:
  - {instance_id: parse, module_type: target_parser, config: {targets: ["${targets}"]}}
  - {instance_id: scan, module_type: connect_scanner, config: {ports: "${ports}"}}
"""


def _error(*problems: tuple[str, str, str]) -> ValidationError:
    return ValidationError([Problem(f"Node '{n}' ({t}): {k}: bad value (got 'x')", node=n, key=k)
                            for n, t, k in problems])


def test_problems_of_option_vars_become_option_errors() -> None:
    dag = load_dag(DAG)
    err = option_errors(_error(("parse", "target_parser", "config.targets[0]"),
                               ("scan", "connect_scanner", "config.ports")),
                        dag, {"targets": "x", "ports": "0"}, ["scan", "-t", "x", "-p", "0"])
    assert isinstance(err, CliError) and err.code == EXIT_USAGE
    assert str(err) == "-t x: bad value\nerror: -p 0: bad value"


def test_other_problems_stay_and_make_it_invalid_input() -> None:
    dag = load_dag(DAG)
    err = option_errors(_error(("parse", "target_parser", "config.targets[0]"),
                               ("scan", "connect_scanner", "config.timeout")),
                        dag, {"targets": "x"}, ["scan", "-t", "x"])
    assert isinstance(err, CliError) and err.code == EXIT_INVALID
    assert str(err).startswith("-t x: bad value\nerror: 1 problem in DAG:\n")
    assert "config.timeout" in str(err)


def test_no_option_var_leaves_the_error_as_it_is() -> None:
    dag = load_dag(DAG)
    original = _error(("scan", "connect_scanner", "config.ports"))
    assert option_errors(original, dag, {"ports": "0"}, ["scan", "--resume", "x"]) is original
