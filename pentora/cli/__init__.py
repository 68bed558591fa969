"""The ``pentora`` command line, and what plugins use to extend it.

Plugins add commands and options with the ``pentora_cli_commands`` hook and act on
``pentora scan``'s options with the ``pentora_cli_scan_*`` hooks. A command function gets
the parsed namespace and returns an exit code; it raises ``CliError`` for a user error.

Exit codes: ``EXIT_OK`` 0, ``EXIT_INVALID`` 1 (invalid input), ``EXIT_USAGE`` 2 (usage
error), ``EXIT_FAILED`` 3 (the run finished with failed nodes), ``EXIT_STORE`` 4 (a
store the command needs, such as the scan store, is damaged), ``EXIT_FINDINGS`` 5 (the run
found what ``--fail-on`` says to fail on).

What a command prints for a person goes through ``echo``, which escapes anything a
terminal would act on; each field of it through ``pentora.clean_text`` first.
"""

# ruff: noqa: F405

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

from .._lazy import lazy_api

__all__ = ["EXIT_FAILED", "EXIT_FINDINGS", "EXIT_INVALID", "EXIT_OK", "EXIT_STORE", "EXIT_USAGE",
           "CliError", "OutputSink", "add_output_options", "check_outputs", "disabled_plugins", "echo",
           "list_profiles", "main", "make_orchestrator", "modules_data", "new_scan", "run",
           "open_outputs", "output_problems", "output_targets", "parse_sets", "plugins_data",
           "profile_path", "profiles_data", "refuse_scan_options", "resolve_outputs", "scan_exit",
           "scan_options", "scan_parser", "unused_vars"]

if TYPE_CHECKING:
    from ._api import *  # noqa: F403


# Imported on first use, as ``pentora``'s own API (``pentora._lazy``): see ``main``.
# Each name comes from its own module alone: a plugin's command-line code imports the exit
# codes, ``CliError`` and ``add_output_options`` at the top, and ``pentora --help`` imports
# that code; the modules import the engine when a command runs.
__getattr__, __dir__ = lazy_api(__name__, __all__, own={"main", "run"}, light={
    **dict.fromkeys(["EXIT_FAILED", "EXIT_FINDINGS", "EXIT_INVALID", "EXIT_OK", "EXIT_STORE",
                     "EXIT_USAGE", "CliError", "disabled_plugins", "echo", "list_profiles",
                     "make_orchestrator", "parse_sets", "profile_path", "unused_vars"], "_common"),
    **dict.fromkeys(["OutputSink", "add_output_options", "check_outputs", "open_outputs",
                     "output_problems", "output_targets", "resolve_outputs"], "_outputs"),
    **dict.fromkeys(["modules_data", "plugins_data", "profiles_data"], "_info_cmds"),
    "scan_parser": "_main",
    **dict.fromkeys(["new_scan", "refuse_scan_options", "scan_exit", "scan_options"], "_scan_cmd"),
})


def main(argv: list[str] | None = None) -> int:
    """Run the ``pentora`` command with ``argv`` (default ``sys.argv[1:]``); the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    # Answered before gevent, the engine and the plugins are imported: what argparse's
    # version action would print, in a tenth of the time. Anything else after it is
    # ignored by argparse as well.
    if args[:1] == ["--version"]:
        from .. import __version__

        sys.stdout.write(f"pentora {__version__}\n")
        return 0
    # Run from a shell's start-up file: answered without the plugins, which add nothing
    # to the script (the completions themselves come from the full parser, on TAB).
    if len(args) == 2 and args[0] == "completion" and args[1] in ("bash", "zsh"):
        from ._complete import shellcode

        sys.stdout.write(shellcode(args[1]))
        return 0
    from ._main import main as run

    return run(args)


def run() -> NoReturn:
    """The ``pentora`` console script: ``main()``, then the process ends.

    Once the command has returned, everything it found is written: what is left is the
    interpreter's teardown, freeing each of the thousands of objects and hundreds of
    modules a scan loaded, a tenth of a second of a small scan's life for nothing. So
    the exit handlers run, every file still open is flushed, and the process ends there
    (``os._exit``), unless a thread other than the main one must still finish: then the
    ordinary exit waits for it."""
    from ._quit import quit_now

    quit_now(main())
