"""Colour rules and the terminal consoles every printer shares.

Colour is on only when the stream is a terminal, ``NO_COLOR`` is unset or empty
(https://no-color.org) and ``--no-color`` was not given. Everything that writes for a
person (the logs, ``--progress``, the summary) asks ``use_color`` and draws through the
one ``rich`` console of its stream, so that a log line written while the progress bar is
live lands above the bar instead of across it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

_no_color_flag = False
_consoles: dict[int, Console] = {}
_live: Console | None = None  # the console a live display (the progress bar) owns


def set_no_color(flag: bool = True) -> None:
    """``--no-color``: no colour on any stream from now on."""
    global _no_color_flag
    _no_color_flag = flag
    _consoles.clear()  # built under the old rule


def use_color(stream: Any) -> bool:
    """Whether to colour what is written to ``stream``."""
    if _no_color_flag or os.environ.get("NO_COLOR"):
        return False
    return _isatty(stream)


def console(stream: TextIO | None = None) -> Console:
    """The shared rich console of ``stream`` (stderr when None), colour by ``use_color``.

    On a terminal it draws to the terminal's width; elsewhere it is as wide as the text,
    so a table written to a pipe is never wrapped."""
    from rich.console import Console  # here: a command that draws nothing does not load rich

    stream = stream if stream is not None else sys.stderr
    found = _consoles.get(id(stream))
    if found is not None and found.file is stream:
        return found
    tty = _isatty(stream)
    color = use_color(stream)
    made = Console(file=stream, force_terminal=tty, no_color=not color,
                   color_system="auto" if color else None, highlight=False,
                   width=None if tty else 1 << 16, soft_wrap=False, emoji=False, markup=False,
                   legacy_windows=False)
    _consoles[id(stream)] = made
    return made


def _isatty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal; a closed stream, or no stream at all, is not."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def set_live(live: Console | None) -> None:
    """While ``live`` draws a live display (``--progress``), text written with
    ``write_text`` to its stream goes through it: printed above the display."""
    global _live
    _live = live


def write_text(stream: TextIO, text: str) -> None:
    """Write ``text`` (which may carry colour escapes made by the program, never a
    target's: callers clean those) to ``stream``, above the live display if one is up."""
    live = _live
    if live is not None and live.file is stream:
        from rich.text import Text

        live.print(Text.from_ansi(text.rstrip("\n")), soft_wrap=True)
        return
    stream.write(text)
    stream.flush()
