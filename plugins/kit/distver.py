"""Version orders of Linux distributions' packages: ``deb`` (dpkg), ``rpm`` and ``apk``.

``compare("deb", "1:2.36-9+deb12u3", "1:2.36-9+deb12u10")`` is ``-1``, as dpkg says;
``parse(ecosystem, text)`` returns a :class:`DistVersion` (ordered, hashable) or raises
:class:`VersionError` (a ``ValueError``) naming the ecosystem, the version and what is
wrong. A version longer than :data:`MAX_LENGTH` is refused, and parsing and comparing
take time linear in the text, so a target can choose the string.

- ``deb``: ``[EPOCH:]UPSTREAM[-REVISION]`` as dpkg reads it (Debian Policy 5.6.12):
  epochs numerically, then upstream, then revision, each compared in alternating
  non-digit runs (``~`` before everything, even the end; letters before other
  characters) and digit runs (numerically). A missing revision equals ``-0``.
- ``rpm``: ``[EPOCH:]VERSION[-RELEASE]`` compared with rpmvercmp of rpm >= 4.15:
  separators are ignored, digit runs are newer than letter runs, ``~`` sorts before
  everything and ``^`` after the end but before anything else. rpm ignores the release
  when one side has none, which is no order at all (``1.0`` would equal both ``1.0-1``
  and ``1.0-2``); here a missing release sorts before any release.
- ``apk``: Alpine's ``DIGITS{.DIGITS}[letter]{_suffix[N]}[~hash][-rN]`` as apk-tools 3
  reads it: ``_alpha < _beta < _pre < _rc <`` nothing ``< _cvs < _svn < _git < _hg < _p``;
  a number with a leading zero (after the first) compares as a string, as apk does;
  numbers wrap at 2**64 as apk's do.

The libraries weighed, and why this module writes the three orders itself:
``python-debian``'s ``debian_support.Version`` orders deb versions as dpkg does, but
costs 30 ms to import, validates more loosely than dpkg (an upstream version need not
start with a digit: it takes ``a1``) and covers deb alone; ``rpm-vercmp`` (2018) predates
the caret and calls ``1.0^`` equal to ``1.0``; ``univers`` (aboutcode) costs 70 ms and
four dependencies to import, and its Alpine order is Gentoo's: it refuses apk's
``_git``/``_cvs`` suffixes and ``~hash``; ``packaging`` knows PEP 440 only. The
three orders are each a few dozen lines of tokens; the tests hold them to dpkg, rpm's
own library and apk-tools' test vectors.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Ecosystem = Literal["deb", "rpm", "apk"]
ECOSYSTEMS: tuple[str, ...] = ("deb", "rpm", "apk")
MAX_LENGTH = 256
"""The longest version accepted; real ones are under 100 characters."""

_SHOWN = 80  # a refused version is shown cut to this many characters
_FORMS = {
    "deb": "[EPOCH:]UPSTREAM[-REVISION], e.g. 1:2.36-9+deb12u3",
    "rpm": "[EPOCH:]VERSION[-RELEASE], e.g. 2:8.7p1-38.el9_4.1",
    "apk": "DIGITS{.DIGITS}[letter]{_suffix[N]}[~hash][-rN], e.g. 1.2.3_rc1-r0",
}


class VersionError(ValueError):
    """A version its ecosystem refuses; the message names both and what would be right."""

    def __init__(self, ecosystem: str, version: object, reason: str) -> None:
        self.ecosystem, self.version, self.reason = ecosystem, version, reason
        shown = version if not isinstance(version, str) or len(version) <= _SHOWN else version[:_SHOWN] + "…"
        form = _FORMS.get(ecosystem)
        hint = f"; write {form}" if form else ""
        super().__init__(f"invalid {ecosystem} version {shown!r}: {reason}{hint}")


@dataclass(frozen=True, eq=False)
class DistVersion:
    """A parsed version; versions of one ecosystem order (and hash) as that ecosystem's tool
    compares them, so equal ones (deb ``1.0`` and ``1.0-0``) are equal here too."""

    ecosystem: str
    text: str
    key: tuple[Any, ...] = field(repr=False, compare=False)

    def _other(self, other: object) -> DistVersion | None:
        if not isinstance(other, DistVersion):
            return None
        if other.ecosystem != self.ecosystem:
            raise TypeError(f"cannot order a {self.ecosystem} version ({self.text!r}) "
                            f"against a {other.ecosystem} version ({other.text!r})")
        return other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DistVersion):
            return NotImplemented
        return self.ecosystem == other.ecosystem and self.key == other.key

    def __hash__(self) -> int:
        return hash((self.ecosystem, self.key))

    def __lt__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is None else self.key < o.key

    def __le__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is None else self.key <= o.key

    def __gt__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is None else self.key > o.key

    def __ge__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is None else self.key >= o.key

    def __str__(self) -> str:
        return self.text


def parse(ecosystem: str, version: str) -> DistVersion:
    """``version`` checked against ``ecosystem``'s rules; VersionError says what is wrong."""
    keyer = _KEYERS.get(ecosystem)
    if keyer is None:
        raise VersionError(ecosystem, version,
                           f"unknown ecosystem {ecosystem!r}: use one of {', '.join(ECOSYSTEMS)}")
    if not isinstance(version, str):
        raise VersionError(ecosystem, version, f"a version is text, not {type(version).__name__}")
    if len(version) > MAX_LENGTH:
        raise VersionError(ecosystem, version,
                           f"{len(version)} characters, more than the {MAX_LENGTH} accepted")
    if not version:
        raise VersionError(ecosystem, version, "it is empty")
    return DistVersion(ecosystem, version, keyer(version))


def compare(ecosystem: str, a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as, or newer than ``b`` in ``ecosystem``."""
    ka, kb = parse(ecosystem, a).key, parse(ecosystem, b).key
    return (ka > kb) - (ka < kb)


def is_valid(ecosystem: str, version: str) -> bool:
    """Whether ``parse`` accepts ``version`` (an unknown ecosystem raises VersionError)."""
    if ecosystem not in _KEYERS:
        parse(ecosystem, version)  # raises, naming the ecosystems there are
    try:
        parse(ecosystem, version)
    except VersionError:
        return False
    return True


def sort_key(ecosystem: str) -> Any:
    """A ``key=`` for ``sorted`` of version strings of ``ecosystem`` (raises on a bad one)."""
    return functools.partial(parse, ecosystem)


# --- deb ------------------------------------------------------------------------------
# The keys are tuples that Python's own comparison orders as the tools do, so a sort
# computes each key once; the tests check every rule against the tools themselves.

_DEB_UPSTREAM = re.compile(r"[0-9][A-Za-z0-9.+~:-]*", re.ASCII)
_DEB_REVISION = re.compile(r"[A-Za-z0-9.+~]+", re.ASCII)
_DEB_RUNS = re.compile(r"([^0-9]*)([0-9]*)", re.ASCII)
_INT_MAX = 2**31 - 1  # dpkg keeps the epoch in an int
_DEB_END = ((0,), 0)


def _deb_order(c: str) -> int:
    # dpkg's order(): '~' before the end of the run (0), letters, then everything else
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


# every character a checked upstream version or revision may hold → its order value
_DEB_ORDERS = {c: _deb_order(c) for c in
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.+~:-"}.__getitem__


def _deb_part(text: str) -> tuple[Any, ...]:
    pairs = []
    for m in _DEB_RUNS.finditer(text):
        if not m.group(0):
            continue
        # a run's order values end with 0, the value of the end: "a" vs "a~" compares
        # the end (0) with '~' (-1), as dpkg does
        nondigits = (*map(_DEB_ORDERS, m.group(1)), 0)
        pairs.append((nondigits, int(m.group(2) or "0")))
    # the end of a part compares as an endless series of empty runs and zeros: drop those
    # it ends with, then end it with two. Only a first pair ("0" of "0.5") can equal one,
    # so where one part ends against such a pair, the second decides.
    while pairs and pairs[-1] == _DEB_END:
        pairs.pop()
    return (*pairs, _DEB_END, _DEB_END)


def _deb_key(v: str) -> tuple[Any, ...]:
    epoch_text, colon, rest = v.partition(":")
    if not colon:
        epoch_text, rest = "", v
    elif not epoch_text:
        raise VersionError("deb", v, "the epoch before ':' is empty")
    elif not epoch_text.isascii() or not epoch_text.isdigit():
        raise VersionError("deb", v, f"the epoch {epoch_text!r} is not a number")
    elif int(epoch_text) > _INT_MAX:
        raise VersionError("deb", v, f"the epoch {epoch_text} is too big (at most {_INT_MAX})")
    if colon and not rest:
        raise VersionError("deb", v, "nothing after the epoch's ':'")
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    elif not revision:
        raise VersionError("deb", v, "the revision after the last '-' is empty")
    if not upstream:
        raise VersionError("deb", v, "the upstream version is empty")
    if not _DEB_UPSTREAM.fullmatch(upstream):
        bad = _first_bad(upstream, "0123456789.+~:-")
        why = "does not start with a digit" if bad is None else f"has {bad!r}"
        raise VersionError("deb", v, f"the upstream version {upstream!r} {why} "
                                     "(digits, letters and . + ~ - : only, a digit first)")
    if revision and not _DEB_REVISION.fullmatch(revision):
        bad = _first_bad(revision, "0123456789.+~")
        raise VersionError("deb", v, f"the revision {revision!r} has {bad!r} "
                                     "(digits, letters and . + ~ only)")
    return (int(epoch_text or "0"), _deb_part(upstream), _deb_part(revision))


def _first_bad(text: str, allowed: str) -> str | None:
    for c in text:
        if not (c in allowed or (c.isascii() and c.isalpha())):
            return c
    return None


# --- rpm ------------------------------------------------------------------------------

_RPM_PART = re.compile(r"[A-Za-z0-9._+~^]+", re.ASCII)
_RPM_TOKENS = re.compile(r"~|\^|[A-Za-z]+|[0-9]+", re.ASCII)
# rpmvercmp's ranks of what comes next: '~' < the end < '^' < letters < digits
_RPM_TILDE, _RPM_END, _RPM_CARET, _RPM_ALPHA, _RPM_DIGITS = range(5)


def _rpm_part(text: str) -> tuple[Any, ...]:
    tokens: list[tuple[Any, ...]] = []
    for m in _RPM_TOKENS.finditer(text):
        t = m.group(0)
        if t == "~":
            tokens.append((_RPM_TILDE,))
        elif t == "^":
            tokens.append((_RPM_CARET,))
        elif t[0].isdigit():
            digits = t.lstrip("0")
            # more digits is newer, then the digits themselves: no int() to build
            tokens.append((_RPM_DIGITS, len(digits), digits))
        else:
            tokens.append((_RPM_ALPHA, t))
    tokens.append((_RPM_END,))
    return tuple(tokens)


def _rpm_key(v: str) -> tuple[Any, ...]:
    epoch_text, colon, rest = v.partition(":")
    if not colon:
        epoch_text, rest = "", v
    elif not epoch_text or not epoch_text.isascii() or not epoch_text.isdigit():
        raise VersionError("rpm", v, f"the epoch {epoch_text!r} before ':' is not a number")
    version, hyphen, release = rest.partition("-")
    for name, part in (("version", version), ("release", release)):
        if (hyphen or name == "version") and not _RPM_PART.fullmatch(part):
            what = "is empty" if not part else f"has {_first_bad(part, '0123456789._+~^')!r}"
            raise VersionError("rpm", v, f"the {name} {part!r} {what} (digits, letters and . _ + ~ ^ only)")
    release_key = _rpm_part(release) if hyphen else ((_RPM_END,),)
    return (int(epoch_text or "0"), _rpm_part(version), release_key)


# --- apk ------------------------------------------------------------------------------

# apk-tools' token kinds, in its order: after equal tokens, the version whose next token
# comes later in this list is the older, except that a pre-release suffix is older still
_A_INITIAL, _A_DIGIT, _A_LETTER, _A_SUFFIX, _A_SUFFIX_NO, _A_HASH, _A_REVISION, _A_END = range(8)
_APK_SUFFIXES = {"alpha": -4, "beta": -3, "pre": -2, "rc": -1, "cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5}
_APK_TOKEN = re.compile(r"\.[0-9]*|[0-9]+|[a-z]|_[a-z]*|~[0-9a-f]*|-r[0-9]*|-", re.ASCII)
_U64 = 2**64  # apk reads numbers into a uint64_t, wrapping


def _apk_rank(kind: int, value: Any) -> int:
    if kind == _A_SUFFIX and value < 0:
        return -_A_END - 1
    return -kind


def _apk_tokens(v: str) -> list[tuple[int, Any]]:
    m = re.match(r"[0-9]+", v, re.ASCII)
    if m is None:
        raise VersionError("apk", v, "it does not start with a digit")
    tokens: list[tuple[int, Any]] = [(_A_INITIAL, int(m.group(0)) % _U64)]
    pos, kind = m.end(), _A_INITIAL
    while pos < len(v):
        m = _APK_TOKEN.match(v, pos)
        t = m.group(0) if m else ""
        if not t:
            raise VersionError("apk", v, f"unexpected {v[pos]!r} at {pos + 1}")
        kind, value = _apk_token(v, pos, t, kind)
        tokens.append((kind, value))
        pos += len(t)
    return tokens


def _apk_token(v: str, pos: int, t: str, prev: int) -> tuple[int, Any]:
    def refuse(why: str) -> VersionError:
        return VersionError("apk", v, f"{t!r} at {pos + 1} {why}")

    if t[0] in ".0123456789":
        digits = t.lstrip(".")
        if not digits:
            raise refuse("has no digits")
        if prev == _A_SUFFIX and t[0] != ".":
            return _A_SUFFIX_NO, int(digits) % _U64
        if prev > _A_DIGIT:
            raise refuse("cannot follow a letter, suffix, hash or revision")
        # a leading zero makes apk compare the digits as a string; strings sort before
        # numbers as '0' sorts before any other first digit
        return _A_DIGIT, (0, digits) if digits[0] == "0" else (1, int(digits) % _U64)
    if t[0] == "_":
        if prev > _A_SUFFIX_NO:
            raise refuse("cannot follow a hash or revision")
        if t[1:] not in _APK_SUFFIXES:
            raise refuse("is not a suffix (alpha, beta, pre, rc, cvs, svn, git, hg, p)")
        return _A_SUFFIX, _APK_SUFFIXES[t[1:]]
    if t[0] == "~":
        if prev >= _A_HASH or len(t) == 1:
            raise refuse("is not a commit hash (lowercase hex, once, before -rN)")
        return _A_HASH, t[1:]
    if t[0] == "-":
        if prev >= _A_REVISION or len(t) < 3:
            raise refuse("is not a revision -rN (digits, once, at the end)")
        return _A_REVISION, int(t[2:]) % _U64
    if prev > _A_DIGIT:
        raise refuse("a letter can only follow digits")
    return _A_LETTER, t


def _apk_key(v: str) -> tuple[Any, ...]:
    return (*((_apk_rank(k, value), value) for k, value in _apk_tokens(v)), (-_A_END,))


_KEYERS = {"deb": _deb_key, "rpm": _rpm_key, "apk": _apk_key}
