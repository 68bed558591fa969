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

from __future__ import annotations

from ._common import (
    EXIT_FAILED,
    EXIT_FINDINGS,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_STORE,
    EXIT_USAGE,
    CliError,
    disabled_plugins,
    echo,
    list_profiles,
    make_orchestrator,
    parse_sets,
    profile_path,
)
from ._outputs import (
    OutputSink,
    add_output_options,
    check_outputs,
    open_outputs,
    output_problems,
    output_targets,
    resolve_outputs,
)
from ._scan_cmd import refuse_scan_options, scan_exit, scan_options

__all__ = ["EXIT_FAILED", "EXIT_FINDINGS", "EXIT_INVALID", "EXIT_OK", "EXIT_STORE", "EXIT_USAGE",
           "CliError", "OutputSink", "add_output_options", "check_outputs", "disabled_plugins", "echo",
           "list_profiles", "main", "make_orchestrator", "open_outputs", "output_problems",
           "output_targets", "parse_sets", "profile_path", "refuse_scan_options", "resolve_outputs",
           "scan_exit", "scan_options"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``pentora`` command with ``argv`` (default ``sys.argv[1:]``); the exit code."""
    from ._main import main as run

    return run(argv)
