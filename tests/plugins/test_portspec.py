"""Port specs (``plugins/portspec.py``) and the shipped ranking ``data/top_ports.txt``."""

from __future__ import annotations

import importlib.resources
import re

import pytest
import voluptuous as vol
from hypothesis import given, settings
from hypothesis import strategies as st
from pentora_plugins.kit.portspec import (
    MAX_PORT,
    PortSet,
    PortSpecError,
    parse_ports,
    port_spec_validator,
    top_ports,
)

RANKING = importlib.resources.files("pentora_plugins").joinpath("data", "top_ports.txt").read_text()


# -- the ranking data ----------------------------------------------------------------------

def test_ranking_lines_are_well_formed_and_unique() -> None:
    seen: dict[str, set[int]] = {"tcp": set(), "udp": set()}
    for number, line in enumerate(RANKING.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"(tcp|udp)/(\d+)(\s+# \S.*)?", line)
        assert m, f"line {number}: {line!r}"
        port = int(m.group(2))
        assert 1 <= port <= MAX_PORT, f"line {number}: {line!r}"
        assert port not in seen[m.group(1)], f"line {number}: {line!r} listed twice"
        seen[m.group(1)].add(port)
    assert len(seen["tcp"]) >= 1000 and len(seen["udp"]) >= 100


def test_ranking_header_documents_its_origin_and_tail_rule() -> None:
    header = RANKING.split("\n\n", 1)[0]
    assert "NOT derived from nmap" in header
    assert "8000-8100" in header and "1-1023" in header


def test_ranking_leads_with_the_usual_services() -> None:
    assert top_ports("tcp")[:3] == (80, 443, 22)
    assert top_ports("udp")[:3] == (53, 123, 161)
    head = set(top_ports("tcp")[:100])
    assert {21, 23, 25, 53, 110, 143, 445, 3306, 3389, 5432, 8080, 8443} <= head


@pytest.mark.parametrize(("spec", "protocol", "count"), [
    ("top-100", "tcp", 100), ("top-1000", "tcp", 1000), ("top-100", "udp", 100),
    ("top-10", "udp", 10), ("TOP-20", "tcp", 20),
])
def test_top_n(spec: str, protocol: str, count: int) -> None:
    ports = parse_ports(spec, protocol)
    assert len(ports) == count
    assert list(ports) == list(top_ports(protocol)[:count])  # ranking order kept for scanning


def test_top_n_larger_than_ranking_takes_all() -> None:
    assert len(parse_ports("top-65535")) == len(top_ports("tcp"))


# -- spec forms ----------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "ranges"), [
    ("22", [(22, 22)]),
    ("22,80,443", [(22, 22), (80, 80), (443, 443)]),
    ("1-1000", [(1, 1000)]),
    ("80-82,81,83", [(80, 83)]),
    ("-", [(1, MAX_PORT)]),
    ("-1024", [(1, 1024)]),
    ("60000-", [(60000, MAX_PORT)]),
    (" 22 , 80 ", [(22, 22), (80, 80)]),
    (443, [(443, 443)]),
    ([22, "80-81"], [(22, 22), (80, 81)]),
    ("T:22,U:53", [(22, 22)]),
    ("U:53,161,T:80-81", [(80, 81)]),
])
def test_forms(spec: object, ranges: list[tuple[int, int]]) -> None:
    assert parse_ports(spec).ranges == ranges


def test_protocol_prefixes_pick_per_protocol() -> None:
    assert list(parse_ports("T:22,80,U:53,161", "udp")) == [53, 161]
    assert list(parse_ports("T:22,80,U:53,161", "tcp")) == [22, 80]


def test_portset_protocol() -> None:
    ports = parse_ports("1-3,10")
    assert len(ports) == 4 and list(ports) == [1, 2, 3, 10]
    assert 2 in ports and 10 in ports and 4 not in ports and "2" not in ports
    assert ports == PortSet([(10, 10), (1, 3)]) and repr(ports) == "PortSet('1-3,10')"


@pytest.mark.parametrize(("spec", "message"), [
    ("0", "port 0 in '0' is out of range (1-65535)"),
    ("65536", "port 65536 in '65536' is out of range"),
    ("22,http", "'http' in port spec '22,http' is not a port number"),
    ("100-10", "range '100-10' in port spec '100-10' runs backwards"),
    ("22,,80", "empty item in port spec '22,,80'"),
    ("top-x", "'top-x' in port spec 'top-x': expected top-N"),
    ("", "expected a port spec such as '1-1000' or 'top-100', got ''"),
    (True, "expected a port spec"),
])
def test_errors_name_the_text(spec: object, message: str) -> None:
    with pytest.raises(PortSpecError) as e:
        parse_ports(spec)
    assert message in str(e.value)


def test_validator_for_config_schemas() -> None:
    schema = vol.Schema({"ports": port_spec_validator()})
    assert schema({"ports": "top-100"})["ports"] == parse_ports("top-100")
    with pytest.raises(vol.MultipleInvalid, match="'x' in port spec 'x'"):
        schema({"ports": "x"})


# -- properties ----------------------------------------------------------------------------

ports = st.integers(min_value=1, max_value=MAX_PORT)
spans = st.lists(st.tuples(ports, ports).map(sorted), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(spans, st.randoms(use_true_random=False))
def test_random_specs_round_trip(items, rnd) -> None:
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in items]
    rnd.shuffle(parts)
    ports_ = parse_ports(",".join(parts))
    assert parse_ports(ports_.spec()) == ports_
    assert parse_ports(ports_.spec()).spec() == ports_.spec()
    assert len(ports_) == len(set().union(*(range(a, b + 1) for a, b in items)))


@settings(max_examples=200, deadline=None)
@given(spans, st.lists(ports, max_size=20))
def test_membership_matches_ranges(items, probes) -> None:
    ps = parse_ports(",".join(f"{a}-{b}" for a, b in items))
    for p in probes:
        assert (p in ps) == any(a <= p <= b for a, b in items)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=30) | st.from_regex(r"[TU:0-9,\-top]{0,20}", fullmatch=True))
def test_arbitrary_text_parses_or_names_it(text: str) -> None:
    try:
        result = parse_ports(text)
    except PortSpecError as e:
        assert text in str(e) or repr(text) in str(e), str(e)
    else:
        assert all(1 <= a <= b <= MAX_PORT for a, b in result.ranges)
