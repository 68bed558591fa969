"""Shell completion (argcomplete): ``pentora completion bash|zsh`` and the completers.

The shell runs ``pentora`` on every TAB with ``_ARGCOMPLETE`` set; ``main`` then loads
the plugins (their commands and options complete too) but skips gevent's monkey-patching,
builds the parser and hands it to argcomplete, which answers and exits before anything
runs. Values that only the plugins know (profiles, module types, output formats) are
looked up only when the word being completed is one of them.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Callable, Iterable
from typing import Any

SHELLS = ("bash", "zsh")


def completing() -> bool:
    """Whether this run is the shell asking for completions, not a command."""
    return "_ARGCOMPLETE" in os.environ


def completion_argv() -> list[str]:
    """The words typed so far (without the program), for the options that decide which
    plugins load (``-p no:NAME``, ``--hooks FILE``); an unfinished quote cuts nothing."""
    line = os.environ.get("COMP_LINE", "")
    try:
        point = int(os.environ.get("COMP_POINT", len(line)))
    except ValueError:
        point = len(line)
    try:
        return shlex.split(line[:point])[1:]
    except ValueError:  # an open quote: the words before it still count
        return line[:point].split()[1:]


def shellcode(shell: str) -> str:
    """The script that registers ``pentora``'s completion in ``shell`` (bash or zsh)."""
    import argcomplete

    return str(argcomplete.shellcode(["pentora"], shell=shell))


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("completion", help="print the shell completion script (bash, zsh)",
                       description="Print the script that makes TAB complete pentora's "
                                   "commands, options and values. Add to ~/.bashrc: "
                                   'eval "$(pentora completion bash)"; to ~/.zshrc: '
                                   'eval "$(pentora completion zsh)".')
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(func=cmd_completion, cooperative=False)


def cmd_completion(args: argparse.Namespace) -> int:
    import sys

    sys.stdout.write(shellcode(args.shell))
    return 0


def add_completers(parser: argparse.ArgumentParser, pm: Any) -> None:
    """Attach the completers of values that plugins define to every option that takes
    one, in the core's commands and the plugins' alike (matched by ``dest``)."""
    if pm is None:
        return
    from ._common import profile_names  # the engine: not for ``pentora completion SHELL``

    by_dest: dict[str, Callable[..., Iterable[str]]] = {
        "profile": lambda **_: profile_names(pm),
        "output_format": lambda **_: sorted(pm.registry.output_formats),
    }
    for action, path in _actions(parser, ()):
        if action.dest in by_dest:
            action.completer = by_dest[action.dest]  # type: ignore[attr-defined]
        elif action.dest == "type" and path[-2:] == ("modules", "show"):
            action.completer = lambda **_: sorted(pm.registry.modules)  # type: ignore[attr-defined]


def _actions(parser: argparse.ArgumentParser,
             path: tuple[str, ...]) -> Iterable[tuple[argparse.Action, tuple[str, ...]]]:
    """Every action of ``parser`` and its subcommands', with the command words to it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _actions(subparser, (*path, name))
        else:
            yield action, path


def autocomplete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell and exit, when this run is a completion request."""
    import argcomplete

    argcomplete.autocomplete(parser)
