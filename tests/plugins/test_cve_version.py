"""cve_matcher's version order: real-world versions, order properties (hypothesis), and
the recognition of distribution builds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pentora_plugins.cve.version import compare, is_version, upstream, version_key

# -- real-world versions ------------------------------------------------------------------------

OLDER_NEWER = [
    ("9.2p1", "9.8p1"), ("9.7p1", "9.8p1"), ("9.8", "9.8p1"), ("9.8p1", "9.8p2"), ("9.9p1", "9.9p2"),
    ("4.3p2", "4.4p1"), ("7.7p1", "7.8"), ("1.22.1", "1.23.0"), ("1.9.5", "1.16.1"),
    ("1.20.0", "1.20.1"), ("2.4.9", "2.4.49"), ("2.4.49", "2.4.50"), ("2.4.59", "2.4.71"),
    ("2.4.71", "2.5.0"), ("1.3.2rc3", "1.3.2"), ("1.3.2", "1.3.2a"), ("1.3.5a", "1.3.5b"),
    ("1.3.3b", "1.3.3c"), ("1.3.2rc2", "1.3.2rc3"), ("3.0.0b1", "3.0.0"), ("2.0alpha1", "2.0beta1"),
    ("2.0beta2", "2.0rc1"), ("2.4.0-beta2", "2.4.0"), ("7.0.15", "7.2.6"), ("6.2.9", "6.2.16"),
    ("10.11.19-MariaDB", "10.11.20"), ("8.0.36-0ubuntu0.22.04.1", "8.0.37"), ("9.6", "10"),
    ("15.8", "15.9"), ("2.2.36.3", "2.2.36.4"), ("1.2", "1.2.0"), ("1.2.0", "1.2.1"),
    ("1:9.2p1-2+deb12u3", "9.3p1"), ("4.87", "4.91"), ("4.91", "4.92.2"),
]
SAME = [
    ("10.11.19-MariaDB", "10.11.19"), ("8.0.36-0ubuntu0.22.04.1", "8.0.36"),
    ("1.22.1-9+deb12u1", "1.22.1"), ("1:9.2p1-2+deb12u3", "9.2p1"), ("9.2p1 Debian-2+deb12u3", "9.2p1"),
    ("5:7.0.15-1~deb12u10", "7.0.15"), ("v1.2.3", "1.2.3"), ("2.4.62 (Debian)", "2.4.62"),
    ("1.02", "1.2"),
]


@pytest.mark.parametrize("older,newer", OLDER_NEWER)
def test_real_world_versions_are_ordered_like_releases(older: str, newer: str) -> None:
    assert compare(older, newer) == -1
    assert compare(newer, older) == 1
    assert version_key(older) < version_key(newer)


@pytest.mark.parametrize("a,b", SAME)
def test_package_revisions_and_product_tags_are_not_part_of_the_release(a: str, b: str) -> None:
    assert compare(a, b) == 0


def test_upstream_part() -> None:
    assert upstream("1:9.2p1-2+deb12u3") == "9.2p1"
    assert upstream("10.11.19-MariaDB") == "10.11.19"
    assert upstream("2.4.0-beta2") == "2.4.0-beta2"
    assert upstream("8.0.36-0ubuntu0.22.04.1") == "8.0.36"
    assert is_version("9.2p1") and is_version("v2") and not is_version("") and not is_version("abc")
    assert not is_version(None)


# -- properties ---------------------------------------------------------------------------------

_num = st.integers(min_value=0, max_value=120)
plain = st.lists(_num, min_size=1, max_size=5)
_suffix = st.sampled_from(["", "p1", "p2", "rc1", "rc2", "a", "b", "beta1", "alpha2", "-beta", "c"])
_tail = st.sampled_from(["", "-MariaDB", "-9+deb12u1", " Debian-2+deb12u3", "-0ubuntu0.22.04.1",
                         "~deb12u10", ".el8"])
versions = st.builds(lambda nums, suffix, tail: ".".join(map(str, nums)) + suffix + tail,
                     plain, _suffix, _tail)
any_text = st.one_of(versions, st.text(max_size=20))


@settings(max_examples=300, deadline=None)
@given(plain, plain)
def test_agrees_with_tuple_comparison_on_plain_dotted_versions(a: list[int], b: list[int]) -> None:
    va, vb = ".".join(map(str, a)), ".".join(map(str, b))
    assert compare(va, vb) == (tuple(a) > tuple(b)) - (tuple(a) < tuple(b))


@settings(max_examples=300, deadline=None)
@given(any_text, any_text)
def test_total_order_and_antisymmetry(a: str, b: str) -> None:
    c = compare(a, b)
    assert c in (-1, 0, 1)
    assert compare(b, a) == -c  # antisymmetric
    assert (c == 0) == (version_key(a) == version_key(b))  # equal only as the same release
    assert compare(a, a) == 0  # reflexive


@settings(max_examples=300, deadline=None)
@given(any_text, any_text, any_text)
def test_transitive(a: str, b: str, c: str) -> None:
    x, y, z = sorted([a, b, c], key=version_key)
    assert compare(x, y) <= 0 and compare(y, z) <= 0
    assert compare(x, z) <= 0
    if compare(x, y) == 0 and compare(y, z) == 0:
        assert compare(x, z) == 0


@settings(max_examples=200, deadline=None)
@given(plain, _suffix)
def test_pre_releases_sort_below_and_patch_levels_above_their_release(nums: list[int],
                                                                      suffix: str) -> None:
    release = ".".join(map(str, nums))
    expected = {"": 0, "p1": 1, "p2": 1, "a": 1, "b": 1, "c": 1}.get(suffix, -1)
    assert compare(release + suffix, release) == expected


def test_portable_releases_are_the_release_for_nvd_style_bounds() -> None:
    from pentora_plugins.cve.catalog import Range

    through = Range(start="9.0", end="9.2", end_inclusive=True)
    assert through.contains(version_key("9.2p1")) and through.contains(version_key("9.2"))
    assert not through.contains(version_key("9.3p1"))
    after = Range(start="9.2", start_inclusive=False)
    assert not after.contains(version_key("9.2p2")) and after.contains(version_key("9.3"))
    # a letter release is a later release (ProFTPD 1.3.3b fixed what 1.3.3 had)
    assert not Range(end="1.3.3", end_inclusive=True).contains(version_key("1.3.3b"))
