"""Terminal-safe text: the one helper every printer passes target strings through.

A banner, hostname, HTTP title or error message from a target may carry ANSI escape
sequences (recolour the terminal, move the cursor, rewrite the window title), raw
control bytes, or Unicode that reorders or hides text (bidi overrides, zero-width
characters, line separators). ``clean`` shows each such character as a visible
``\\xNN`` / ``\\uNNNN`` escape, so what reaches a terminal is inert text that still
tells what the target sent.
"""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls (ESC and the 8-bit CSI 0x9b included), DEL, the soft hyphen,
# zero-width and bidi controls, line/paragraph separators, invisible operators, BOM,
# interlinear annotations, the non-characters U+FFFE/U+FFFF (not valid even in XML), and
# lone surrogates (which cannot even be encoded).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                     "\u2060-\u206f\ufeff\ufff9-\ufffb\ufffe\uffff\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: Any, limit: int | None = 60, *, lines: bool = False) -> str:
    """``value`` as printable text: unsafe characters escaped (``ESC`` → ``\\x1b``),
    then cut to ``limit`` characters with ``…`` (None: no limit). None gives ``""``.

    ``lines=True`` keeps ``\\n`` as a line break (and nothing else), for a block of text
    the program laid out itself (a table, a report) that only needs a last safety pass.
    Cleaning is idempotent: cleaning cleaned text changes nothing."""
    text = "" if value is None else str(value)
    if lines:
        text = "\n".join(_UNSAFE.sub(_escape, line) for line in text.split("\n"))
    else:
        text = _UNSAFE.sub(_escape, text)
    if limit is not None and len(text) > limit:
        return text[: max(limit - 1, 0)] + "…"
    return text
