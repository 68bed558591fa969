r"""Regular expressions that match in time linear in the text, for patterns run on what a
target sent.

Catalog patterns (fingerprint rules, probes, web technologies) come from users and run on
text a hostile target chooses. Python's ``re`` backtracks: ``\A(?:\w|\w\w)+Z`` on 50,000
letters runs for ever, in C code that SIGINT cannot stop. RE2 (``google-re2``) matches in
linear time whatever the pattern, without the features that need backtracking:
look-around, back-references, possessive repeats and atomic groups. ``compile`` refuses
those with the reason in plain words and a hint.

The syntax is RE2's, read as Python's ``re.ASCII`` reads it where the two differ:

- ``\w \d \s \b`` are ASCII; ``\s`` includes ``\v``, as Python's does (RE2's does not);
- ``{,n}`` means ``{0,n}`` (RE2 would take it as text); ``\uXXXX`` and ``\UXXXXXXXX``
  name a character in a text pattern;
- ``\Z`` is refused: write ``\z``, RE2's end of text;
- ``$`` without flag ``m`` matches at the very end of the text only (Python's also
  matched before a final newline);
- flag ``i`` folds case as Unicode does (Python's ``re.ASCII`` folds ASCII letters only).

A ``str`` pattern matches ``str`` text, with offsets and groups in characters (RE2 reads
UTF-8: the text is encoded once per text, not once per pattern, and the offsets of a
match mapped back). A ``bytes`` pattern matches bytes, as Latin-1: ``\xNN`` is byte NN.
Flags are letters among ``i`` (ignore case), ``m`` (``^``/``$`` at lines) and ``s``
(``.`` matches a newline); RE2 has no ``x`` (verbose).
"""

from __future__ import annotations

import os
import re
from typing import Any, AnyStr, Generic

import re2

FLAGS = "ims"
MAX_REPEAT = 1000  # RE2's largest {m,n} count
_SPACE = r"\t\n\x0b\f\r "  # Python's ASCII \s
_SURROGATE = re.compile("[\ud800-\udfff]")  # a one-character class: no backtracking
_OPEN_MIN = re.compile(r"\{,(\d+)\}")
_GROUP_OPEN = re.compile(r"\((?:\?(?:P?<\w+>|[a-zA-Z-]*:))?")
_FLAGS_ONLY = re.compile(r"\(\?[a-zA-Z-]+\)")
_QUANTIFIER = re.compile(r"[*+?]|\{\d+(?:,\d*)?\}")
_INLINE_M = re.compile(r"\(\?[a-zA-Z]*m")
_UNANCHORED, _ANCHOR_START, _ANCHOR_BOTH = (re2._Anchor.UNANCHORED,  # noqa: SLF001
                                            re2._Anchor.ANCHOR_START,  # noqa: SLF001
                                            re2._Anchor.ANCHOR_BOTH)  # noqa: SLF001
PREFIX_BYTES = 64  # of the literal start a pattern anchored at \A is checked against first

# RE2's words for what it refuses → what to write instead.
_HINTS = (
    ("invalid perl operator: (?=", "RE2 has no look-ahead: rewrite without (?=...), matching "
                                   "what must follow instead, e.g. (?:\\s|$) for (?=\\s|$)"),
    ("invalid perl operator: (?!", "RE2 has no negative look-ahead: rewrite without (?!...), "
                                   "listing what may follow instead, e.g. (?:[^\\w-]|$) for "
                                   "(?![\\w-])"),
    ("invalid perl operator: (?<=", "RE2 has no look-behind: rewrite without (?<=...), matching "
                                    "the text before as part of the pattern"),
    ("invalid perl operator: (?<!", "RE2 has no negative look-behind: rewrite without (?<!...)"),
    ("invalid perl operator: (?>", "RE2 has no atomic groups: write (?:...) instead (RE2 never "
                                   "backtracks, so they are not needed)"),
    ("invalid perl operator: (?P=", "RE2 has no back-references: a pattern cannot match again "
                                    "what a group matched"),
    ("invalid perl operator: (?P", "RE2 has no back-references: (?P=name) cannot match again "
                                   "what a group matched; (?P<name>...) names a group"),
    ("invalid perl operator: (?#", "RE2 has no (?#...) comments: remove them"),
    ("invalid escape sequence: \\Z", "RE2 has no \\Z: write \\z for the end of the text"),
    ("invalid escape sequence: \\z", "RE2 has no \\Z: write \\z for the end of the text"),
    ("bad repetition operator: *+", "RE2 has no possessive repeats: write * instead of *+"),
    ("bad repetition operator: ++", "RE2 has no possessive repeats: write + instead of ++"),
    ("bad repetition operator: ?+", "RE2 has no possessive repeats: write ? instead of ?+"),
    ("invalid repetition size", f"RE2 takes repeat counts up to {MAX_REPEAT}: use * or + "
                                "instead (RE2 never backtracks, so an unbounded repeat is safe)"),
    ("pattern too large", "the pattern is too large for RE2's memory limit: use * or + instead "
                          "of large {m,n} counts"),
)
_BACKREF = re.compile(r"invalid escape sequence: \\[1-9]")


class PatternError(ValueError):
    """A pattern the linear-time engine cannot take; the message says why and what to write."""


def compile(pattern: AnyStr, flags: str = "") -> Pattern[AnyStr]:  # noqa: A001 - as re.compile
    """``pattern`` compiled for linear-time matching; PatternError when RE2 cannot take it."""
    return Pattern(pattern, flags)


class Pattern(Generic[AnyStr]):
    """A compiled pattern: ``search``, ``match`` and ``fullmatch`` as ``re.Pattern`` has them."""

    __slots__ = ("pattern", "flags", "groups", "groupindex", "source", "_re", "_bytes", "_prefix")

    def __init__(self, pattern: AnyStr, flags: str = "") -> None:
        if "x" in flags:
            raise PatternError("flag 'x' (verbose) is not supported: RE2 has no verbose mode; "
                               "write the pattern without the spaces and # comments it ignored")
        if any(c not in FLAGS for c in flags):
            raise PatternError(f"unknown flags {flags!r}: expected letters among i, m, s")
        self.pattern: AnyStr = pattern
        self.flags = "".join(sorted(set(flags)))
        self._bytes = isinstance(pattern, bytes)
        text = pattern.decode("latin-1") if isinstance(pattern, bytes) else pattern
        # The flags go inline, not in re2.Options, so that a PatternSet can take the source.
        self.source = (f"(?{self.flags})" if self.flags else "") + _translate(text, self._bytes)
        try:
            self._re = re2.compile(self.source.encode("latin-1") if self._bytes else self.source,
                                   options(self._bytes))
        except re2.error as e:
            raise PatternError(explain(e)) from None
        self.groups: int = self._re.groups
        self.groupindex: dict[str, int] = {
            k.decode("latin-1") if isinstance(k, bytes) else k: v
            for k, v in self._re.groupindex.items()}
        self._prefix = self._literal_start(text)

    def _literal_start(self, text: str) -> bytes:
        """The bytes every match starts with, when every match starts at the start of the
        text: a text without them is refused before RE2 is called. Most fingerprint rules
        start with a literal (\\ASSH-, \\A220), and calling RE2 costs more than its search."""
        caret = "m" not in self.flags and not _INLINE_M.search(text)
        if not _branches(text, 0, caret)[0]:
            return b""
        try:
            low, high = self._re.possiblematchrange(PREFIX_BYTES)
        except re2.error:  # no useful range (e.g. the pattern can match the empty string)
            return b""
        # Every string between two that share a prefix has that prefix.
        return bytes(os.path.commonprefix([low, high]))

    def __repr__(self) -> str:
        return f"linear_re.compile({self.pattern!r}, {self.flags!r})"

    def search(self, text: AnyStr) -> Match[AnyStr] | None:
        return self._run(text, _UNANCHORED)

    def match(self, text: AnyStr) -> Match[AnyStr] | None:
        return self._run(text, _ANCHOR_START)

    def fullmatch(self, text: AnyStr) -> Match[AnyStr] | None:
        return self._run(text, _ANCHOR_BOTH)

    def anchored(self) -> bool:
        """True when every alternative starts with ``^`` or ``\\A``: the pattern matches
        only at the start of the text (or, with flag ``m``, of a line)."""
        text = self.pattern.decode("latin-1") if isinstance(self.pattern, bytes) else self.pattern
        return _branches(text, 0, caret=True)[0]

    def _run(self, text: Any, anchor: Any) -> Match[AnyStr] | None:
        if self._bytes:
            if not isinstance(text, bytes | bytearray):
                raise TypeError(f"a bytes pattern needs bytes, got {type(text).__name__}")
            data, ascii_only = bytes(text), True
        elif isinstance(text, str):
            data, ascii_only = encoded(text)
        else:
            raise TypeError(f"a str pattern needs str, got {type(text).__name__}")
        if not data.startswith(self._prefix):
            return None
        # re2's search encodes a str at every call and builds its match in Python: the
        # binding is called on the bytes ``encoded`` keeps, as re2's own methods call it.
        spans = self._re._regexp.Match(anchor, data, 0, len(data))  # noqa: SLF001
        if spans[0][0] < 0:
            return None
        if not ascii_only:
            spans = _char_spans(data, spans)
        return Match(self, text, spans)


class Match(Generic[AnyStr]):
    """What a search found: groups by number or name, their spans, in the text's units."""

    __slots__ = ("re", "string", "_spans")

    def __init__(self, pattern: Pattern[AnyStr], string: AnyStr, spans: list[tuple[int, int]]):
        self.re: Pattern[AnyStr] = pattern
        self.string: AnyStr = string
        self._spans = spans

    def __repr__(self) -> str:
        return f"<linear_re.Match span={self.span()} match={self.group()!r}>"

    def _index(self, group: int | str) -> int:
        index = self.re.groupindex.get(group) if isinstance(group, str) else group
        if index is None or not 0 <= index <= self.re.groups:
            raise IndexError(f"no such group: {group!r}")
        return index

    def span(self, group: int | str = 0) -> tuple[int, int]:
        return self._spans[self._index(group)]

    def start(self, group: int | str = 0) -> int:
        return self.span(group)[0]

    def end(self, group: int | str = 0) -> int:
        return self.span(group)[1]

    def __getitem__(self, group: int | str) -> AnyStr | None:
        start, end = self.span(group)
        return None if start < 0 else self.string[start:end]

    def group(self, *groups: int | str) -> Any:
        if len(groups) <= 1:
            return self[groups[0] if groups else 0]
        return tuple(self[g] for g in groups)

    def groups(self, default: Any = None) -> tuple[Any, ...]:
        return tuple(default if (v := self[g]) is None else v for g in range(1, self.re.groups + 1))

    def groupdict(self, default: Any = None) -> dict[str, Any]:
        return {name: default if (v := self[i]) is None else v
                for name, i in self.re.groupindex.items()}


def options(latin1: bool = False) -> re2.Options:
    """RE2's options for catalog patterns: errors raised, not logged to stderr."""
    opts = re2.Options()
    opts.log_errors = False
    if latin1:
        opts.encoding = re2.Options.Encoding.LATIN1
    return opts


def explain(error: re2.error) -> str:
    """RE2's complaint about a pattern in plain words, with what to write instead."""
    raw = error.args[0] if error.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if _BACKREF.match(text):
        return ("RE2 has no back-references (\\1...): a pattern cannot match again what a "
                "group matched")
    if text.startswith("invalid perl operator: (?x"):
        return "RE2 has no verbose mode (?x): write the pattern without spaces and comments"
    for prefix, hint in _HINTS:
        if text.startswith(prefix):
            return f"{hint} (RE2: {text})"
    return f"invalid regular expression: {text}"


_recent: list[tuple[str, bytes, bool]] = []
RECENT = 8  # long texts remembered: a page's body and a banner are read by every rule
SHORT = 512  # characters: texts this short (a header, a script's URL) are encoded each time


def encoded(text: str) -> tuple[bytes, bool]:
    """``text`` as UTF-8, and whether it is ASCII (offsets then need no mapping). The last
    few texts are remembered: every rule of a catalog runs on the same banner in turn."""
    for seen, data, ascii_only in _recent:
        if seen is text:
            return data, ascii_only
    ascii_only = text.isascii()
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): U+FFFD keeps the offsets
        data = _SURROGATE.sub("\ufffd", text).encode("utf-8")
    if len(text) > SHORT:
        _recent.insert(0, (text, data, ascii_only))
        del _recent[RECENT:]
    return data, ascii_only


def _char_spans(data: bytes, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte offsets in the UTF-8 ``data`` → character offsets (RE2 in UTF-8 mode stops on
    character boundaries), decoding each stretch between two offsets once."""
    chars = {-1: -1, 0: 0}
    last_byte = last_char = 0
    for offset in sorted({o for span in spans for o in span if o > 0}):
        last_char += len(data[last_byte:offset].decode("utf-8"))
        chars[offset], last_byte = last_char, offset
    return [(chars[a], chars[b]) for a, b in spans]


def _translate(text: str, is_bytes: bool) -> str:
    """``text`` with the Python meanings RE2 lacks spelled out (see the module doc)."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            i = _escape(text, i, in_class, is_bytes, out)
            continue
        if in_class:
            end = text.find(":]", i + 2) if text.startswith("[:", i) else -1
            if end != -1:  # a POSIX class such as [:alpha:]
                out.append(text[i:end + 2])
                i = end + 2
                continue
            in_class = c != "]"
        elif c == "[":
            in_class = True
            lead = 2 if text.startswith("[^", i) else 1
            lead += text.startswith("]", i + lead)  # a ']' first is a literal
            out.append(text[i:i + lead])
            i += lead
            continue
        elif c == "{" and (m := _OPEN_MIN.match(text, i)):
            out.append(f"{{0,{m.group(1)}}}")
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _escape(text: str, i: int, in_class: bool, is_bytes: bool, out: list[str]) -> int:
    """Append the escape at ``text[i]`` translated; the index after it."""
    e = text[i + 1]
    if e == "Q":  # \Q...\E quotes text: copied as is
        end = text.find("\\E", i + 2)
        end = len(text) if end == -1 else end + 2
        out.append(text[i:end])
        return end
    if e == "s":
        out.append(_SPACE if in_class else f"[{_SPACE}]")
    elif e == "S":
        out.append("[:^space:]" if in_class else f"[^{_SPACE}]")
    elif e in "uU" and not is_bytes:
        n = 4 if e == "u" else 8
        digits = text[i + 2:i + 2 + n]
        if len(digits) == n and all(d in "0123456789abcdefABCDEF" for d in digits):
            out.append(f"\\x{{{digits}}}")
            return i + 2 + n
        out.append(text[i:i + 2])
    elif e == "C" and not is_bytes:
        raise PatternError("\\C (any byte) would split a character of the text: use [\\s\\S] "
                           "or . with flag s")
    else:
        out.append(text[i:i + 2])
    return i + 2


def _branches(text: str, i: int, caret: bool) -> tuple[bool, int]:
    """(every alternative from ``i`` up to the ``)`` closing its group, or the end, starts
    with ``\\A`` or, when ``caret``, ``^``; the index of that ``)`` or the end). ``text``
    is a pattern RE2 compiled."""
    every, first, start = True, False, True
    while i < len(text) and text[i] != ")":
        c = text[i]
        if c == "|":
            every, first, start = every and first, False, True
            i += 1
            continue
        if start and (flags := _FLAGS_ONLY.match(text, i)):
            i = flags.end()
            continue
        anchor = False
        if c == "(":
            group = _GROUP_OPEN.match(text, i)
            anchor, i = _branches(text, group.end() if group else i + 1, caret)
            i += 1
        elif c == "\\":
            anchor = text.startswith("\\A", i)
            end = text.find("\\E", i + 2) if text.startswith("\\Q", i) else -1
            i = len(text) if end == -1 and text.startswith("\\Q", i) else (end + 2 if end != -1 else i + 2)
        elif c == "[":
            i = _class_end(text, i)
        else:
            anchor = caret and c == "^"
            i += 1
        if start:
            first, start = anchor and not _QUANTIFIER.match(text, i), False
    return every and first, i


def _class_end(text: str, i: int) -> int:
    i += 2 if text.startswith("[^", i) else 1
    i += text.startswith("]", i)
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith("[:", i) and (end := text.find(":]", i + 2)) != -1:
            i = end + 2
        elif text[i] == "]":
            return i + 1
        else:
            i += 1
    return i
