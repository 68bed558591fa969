"""kit.linear_re: Python's reading of the syntax RE2 reads differently, offsets in
characters for non-ASCII text, bytes patterns, refusals in plain words, nothing on stderr."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from pentora_plugins.kit import linear_re


@pytest.mark.parametrize(("pattern", "text"), [
    (r"\A(\w+)\s(\S+)", "abc\x0bdef"),        # \s includes \v, as Python's ASCII \s
    (r"[\s,]+", "a \x0b\t,b"),
    (r"[^\S]x", "\x0bx"),
    (r"a{,3}b", "aaab"),                        # {,n} is {0,n}
    (r"\u00e9(\w)", "\u00e9a"),
    (r"(\w+)\b", "na\u00efve"),                  # \w and \b are ASCII
    (r"(?P<v>\d+)\.(\d+)", "x 12.34"),
    (r"[]a]+", "]a]"),
])
def test_same_match_as_python_re_ascii(pattern: str, text: str) -> None:
    want = re.compile(pattern, re.ASCII).search(text)
    got = linear_re.compile(pattern).search(text)
    assert want is not None and got is not None
    assert (got.span(), got.groups(), got.groupdict()) == (want.span(), want.groups(), want.groupdict())


def test_offsets_and_groups_are_characters_in_non_ascii_text() -> None:
    text = "\u2603 caf\u00e9 \U0001f600 v1.2\udc80"  # a lone surrogate, as JSON can give
    pattern = r"caf(.) (.) v(?P<v>[\d.]+)"
    want = re.compile(pattern).search(text)
    got = linear_re.compile(pattern).search(text)
    assert want is not None and got is not None
    assert [got.span(g) for g in range(4)] == [want.span(g) for g in range(4)] == [
        (2, 13), (5, 6), (7, 8), (10, 13)]
    assert got.group(0, 1, 2, "v") == want.group(0, 1, 2, "v")
    assert linear_re.compile("w").search(text + "w").start() == len(text)


def test_bytes_patterns_read_latin1_bytes() -> None:
    p = linear_re.compile(b"\\A\\x16\\x03[\\x00-\\x04](..)", "s")
    m = p.match(b"\x16\x03\x01\xff\n")
    assert m is not None and m.group(1) == b"\xff\n"
    assert p.match(bytearray(b"\x16\x03\x01ab")) is not None
    with pytest.raises(TypeError, match="needs bytes"):
        p.match("text")  # type: ignore[arg-type]


def test_flags_match_fullmatch() -> None:
    assert linear_re.compile("^b$", "m").search("a\nb\nc") is not None
    assert linear_re.compile("a.b", "s").search("a\nb") is not None
    assert linear_re.compile("ab", "i").fullmatch("AB") is not None
    assert linear_re.compile("ab").match("xab") is None
    assert linear_re.compile("a$").search("a\n") is None  # RE2's $: the very end only


@pytest.mark.parametrize(("pattern", "flags", "message"), [
    (r"a(?=b)", "", "RE2 has no look-ahead"),
    (r"a(?!b)", "", "RE2 has no negative look-ahead"),
    (r"(?<=a)b", "", "RE2 has no look-behind"),
    (r"(a)\1", "", "RE2 has no back-references"),
    (r"(?P<n>a)(?P=n)", "", "RE2 has no back-references"),
    (r"a\Z", "", r"write \z"),
    (r"a*+", "", "possessive"),
    (r"(?>a)", "", "atomic groups"),
    (r"a{2000}", "", "repeat counts up to 1000"),
    (r"a(", "", "invalid regular expression: missing )"),
    (r"a b", "x", "verbose"),
    (r"\C", "", "any byte"),
])
def test_refusals_say_why_and_what_to_write(pattern: str, flags: str, message: str) -> None:
    with pytest.raises(linear_re.PatternError, match=re.escape(message)):
        linear_re.compile(pattern, flags)


def test_a_refused_pattern_prints_nothing() -> None:
    code = ("from pentora_plugins.kit import linear_re\n"
            "for p in ['a(', 'a(?=b)', 'a{5000}']:\n"
            "    try: linear_re.compile(p)\n"
            "    except linear_re.PatternError: pass\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "" and done.stdout == ""
