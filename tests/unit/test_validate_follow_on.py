"""A problem is reported once: not again as a follow-on of itself downstream, and a bad
value is shown once in its message."""

from __future__ import annotations

from typing import Any

import pytest
import voluptuous as vol

import pentora
from pentora import Module, ValidationError
from pentora.schema import PositiveInt
from tests.conftest import make_orch
from tests.dag_modules import MODULES


class CheckedProducer(Module):
    """Writes banners, with a config that can be wrong."""

    module_type = "checked_producer"
    produces = ("banners",)
    config_schema = {vol.Required("count"): PositiveInt()}


def _ports(value: Any) -> Any:
    """Quotes the value its own way, as the port-spec parser does."""
    if isinstance(value, str):
        raise vol.Invalid(f"'{value}' is not a port number")
    bad = [p for p in value if p > 65535]
    if bad:
        raise vol.Invalid(f"port {bad[0]} in '{','.join(map(str, value))}' is out of range")
    return value


class PortList(Module):
    """Its validator names the items of a list it refuses."""

    module_type = "port_list"
    config_schema = {vol.Optional("ports", default=[]): _ports}


def problems_of(text: str, **kw: Any) -> list[pentora.Problem]:
    orch = make_orch(*MODULES, CheckedProducer, PortList)
    orch.load_dag(text)
    with pytest.raises(ValidationError) as info:
        orch.validate(**kw)
    return info.value.problems


def test_invalid_producer_has_no_follow_on_problems() -> None:
    """The consumer's 'requires banners' would only repeat that the producer is broken."""
    problems = problems_of("""\
nodes:
  - {instance_id: grab, module_type: checked_producer, config: {count: zero}}
  - {instance_id: fp, module_type: consumer, depends_on: [grab]}
  - {instance_id: fp2, module_type: consumer, depends_on: [fp], for_each: banners}
""")
    assert [(p.node, p.key) for p in problems] == [("grab", "config.count")]


def test_unknown_type_upstream_has_no_follow_on_problems() -> None:
    problems = problems_of("""\
nodes:
  - {instance_id: grab, module_type: producr}
  - {instance_id: fp, module_type: consumer, depends_on: [grab]}
""")
    assert [p.node for p in problems] == ["grab"]
    assert "did you mean 'producer'" in problems[0].message


def test_missing_key_without_an_invalid_producer_is_still_reported() -> None:
    """A valid DAG part next to an invalid one keeps its own problems."""
    problems = problems_of("""\
nodes:
  - {instance_id: grab, module_type: checked_producer, config: {count: zero}}
  - {instance_id: lonely, module_type: consumer}
  - {instance_id: hosts, module_type: host_lister}
  - {instance_id: fp, module_type: consumer, depends_on: [hosts]}
""")
    assert [p.node for p in problems] == ["grab", "lonely", "fp"]
    assert "requires 'banners' but no upstream node produces it" in problems[1].message
    assert "requires 'banners' but no upstream node produces it" in problems[2].message


def test_follow_on_dropped_when_the_producer_is_far_upstream() -> None:
    problems = problems_of("""\
nodes:
  - {instance_id: grab, module_type: checked_producer, config: {count: -1}}
  - {instance_id: mid, module_type: step, depends_on: [grab]}
  - {instance_id: fp, module_type: consumer, depends_on: [mid]}
""")
    assert [p.node for p in problems] == ["grab"]


def test_value_quoted_its_own_way_is_shown_once() -> None:
    """repr() would quote it's with double quotes; the message quotes it with single ones."""
    problems = problems_of('nodes:\n  - {instance_id: p, module_type: port_list, '
                           'config: {ports: "it\'s"}}\n')
    assert problems[0].message.endswith("config.ports: 'it's' is not a port number"), problems


def test_list_named_by_its_items_is_shown_once() -> None:
    problems = problems_of("nodes:\n  - {instance_id: p, module_type: port_list, "
                           "config: {ports: [80, 70000]}}\n")
    assert problems[0].message.endswith("port 70000 in '80,70000' is out of range"), problems


def test_value_not_in_the_message_is_added() -> None:
    """'1' inside '10' is not the value 1 shown: the message gets its '(got 1)'."""
    orch = make_orch(*MODULES)
    orch.load_dag("nodes:\n  - {instance_id: s, module_type: configured, "
                  "config: {retries: 1, ports: [x10]}}\n")
    with pytest.raises(ValidationError) as info:
        orch.validate()
    assert "(got 'x10')" in str(info.value)
