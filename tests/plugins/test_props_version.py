"""Property tests of version comparison (``pentora_plugins.cve.version``): a total order
on any text a banner can put in a fingerprint's version, agreeing with numeric order on
dotted numbers, blind to distribution revisions, epochs and product tags, and never an
exception (a hostile banner chooses the version string: ``SSH-2.0-OpenSSH_`` followed by
5,000 digits is a valid fingerprint version).
"""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

version = pytest.importorskip("pentora_plugins.cve.version",
                              reason="plugins/cve/version.py (the cve_matcher's version order) is not there")
compare, version_key = version.compare, version.version_key

SETTINGS = settings(max_examples=300, deadline=None, database=None,
                    derandomize=not os.environ.get("PENTORA_HYPOTHESIS_RANDOM"),
                    suppress_health_check=[HealthCheck.too_slow])

TOKENS = st.sampled_from(["1", "2", "9", "10", "0", "00", "22", "4", ".", ".", "-", "_", "+", "~", ":",
                          "p", "p1", "rc", "rc1", "a", "b", "alpha", "beta", "dev", "pre", "post", "z",
                          "deb12u3", "ubuntu", "MariaDB", "el9", " ", "v", "1" * 30])
version_text = (st.lists(TOKENS, max_size=12).map("".join) | st.text(max_size=30)
                | st.integers(min_value=4000, max_value=6000).map(lambda n: "1." + "9" * n))
dotted = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=5)


@SETTINGS
@given(version_text, version_text)
@example("1." + "9" * 5000, "1.2")  # more digits than int() converts by default
@example("9" * 5000, "9" * 4999)
def test_compare_is_an_antisymmetric_order_on_any_text(a: str, b: str) -> None:
    assert compare(a, a) == 0
    assert compare(a, b) == -compare(b, a)
    assert compare(a, b) in (-1, 0, 1)


@SETTINGS
@given(st.lists(version_text, min_size=3, max_size=8))
def test_compare_is_transitive(texts: list[str]) -> None:
    ordered = sorted(texts, key=functools.cmp_to_key(compare))
    for i, low in enumerate(ordered):
        for high in ordered[i:]:
            assert compare(low, high) <= 0


@SETTINGS
@given(dotted, dotted)
def test_dotted_numbers_compare_as_numbers(a: list[int], b: list[int]) -> None:
    if len(a) == len(b):
        expected = (a > b) - (a < b)
        assert compare(".".join(map(str, a)), ".".join(map(str, b))) == expected
    else:  # 1.2 < 1.2.0 < 1.2.1: a longer version with the same start ranks above
        longer, shorter = (a, b) if len(a) > len(b) else (b, a)
        if longer[:len(shorter)] == shorter:
            assert compare(".".join(map(str, longer)), ".".join(map(str, shorter))) == 1


@SETTINGS
@given(dotted, st.sampled_from(["-1+deb12u1", "-0ubuntu0.22.04.1", "~deb12u10", "-MariaDB", "-9.el9"]),
       st.sampled_from(["", "1:", "2:"]))
def test_distribution_revisions_epochs_and_tags_do_not_count(numbers: list[int], suffix: str,
                                                               epoch: str) -> None:
    upstream = ".".join(map(str, numbers))
    assert compare(epoch + upstream + suffix, upstream) == 0


@pytest.mark.parametrize(("older", "newer"), [
    ("9.2p1", "9.8p1"), ("9.2", "9.2p1"), ("1.22.1", "1.24.0"), ("2.4.9", "2.4.49"), ("2.4.49", "2.4.71"),
    ("1.3.2rc3", "1.3.2"), ("1.3.2", "1.3.2a"), ("2.4.0-beta2", "2.4.0"), ("10.11.6", "10.11.19-MariaDB"),
    ("7.0.15", "7.2.4"), ("1:9.2p1-2+deb12u3", "9.3p1"),
])
def test_real_world_versions(older: str, newer: str) -> None:
    assert compare(older, newer) == -1 and compare(newer, older) == 1
