"""Fuzz target: the DAG reader, the validator and the condition language.

One input is a DAG file's bytes. ``pentora.load_dag`` must return a ``Dag`` or raise
``DagParseError``; a parsed DAG is validated against the test module types
(``tests/dag_modules.py``), which must pass or raise ``ValidationError``; the input read as
text is also compiled and evaluated as a node condition, which must give a bool or raise
``ConditionError``. Anything else is a crash, and so is any attempt of a condition to
import, open, evaluate or spawn.

    .venv/bin/python tests/fuzz/fuzz_dag.py -max_total_time=60 /tmp/dag-corpus tests/fuzz/corpus/dag

(see tests/fuzz/README.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests` importable when run as a script

import pentora  # noqa: E402
from pentora import Condition, ConditionError, Dag, DagParseError, ValidationError  # noqa: E402
from tests.conftest import make_orch  # noqa: E402
from tests.dag_modules import MODULES, POLICIES  # noqa: E402

NAMES: dict[str, Any] = {"a": 3, "b": "web", "hosts": ["10.0.0.1"], "ports": [22, 80], "x": True}
BASE = Path(__file__).resolve().parent / "corpus" / "dag"  # where a sub-DAG path is resolved


def test_one_input(data: bytes) -> None:
    """The fuzz target: raises only on a bug."""
    try:
        dag = pentora.load_dag(data, base_dir=BASE)
    except DagParseError as e:
        assert e.problems and all(p.message for p in e.problems)
    else:
        assert isinstance(dag, Dag)
        orch = make_orch(*MODULES, policies=POLICIES)
        orch.load_dag(dag)
        try:
            orch.validate()
        except ValidationError as e:
            assert e.problems
    text = data.decode("utf-8", "replace")
    try:
        outcome = Condition(text).evaluate(NAMES.__getitem__)
    except ConditionError:
        return
    assert isinstance(outcome, bool)


def main() -> None:
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
