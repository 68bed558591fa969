"""Entry point of the ``pentora`` command.

Exit codes: 0 success, 1 invalid input, 2 usage error, 3 the run finished with failed
(or cancelled, or timed-out) nodes, 4 a store the command needs is damaged, 5 the run
found what ``--fail-on`` says to fail on. Bad input never shows a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import __version__
from .._console import set_no_color
from .._cooperative import patch_all
from .._errors import PentoraError, PluginClashError, UnknownPluginError, ValidationError
from .._log import configure_on_import, logger
from .._plugins import PentoraPluginManager, get_plugin_manager
from . import _complete as complete
from . import _dag_cmds as dag_cmds
from . import _info_cmds as info_cmds
from . import _scan_cmd as scan_cmd
from ._common import EXIT_INVALID, EXIT_USAGE, CliError, echo, log_level, plugin_options

_USAGE_PARSER = "_usage_parser"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        echo(f"{self.prog}: error: {message}", err=True)  # it quotes the argument given
        raise SystemExit(EXIT_USAGE)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        # argparse hands a subcommand's unknown arguments up to the top parser, which would
        # print its own usage: the deepest parser that ran (it returns first) marks itself,
        # so that the error shows the usage of the command the user typed.
        ns, extras = super().parse_known_args(args, namespace)
        if not hasattr(ns, _USAGE_PARSER):
            setattr(ns, _USAGE_PARSER, self)
        return ns, extras

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        parser = getattr(ns, _USAGE_PARSER, self)
        delattr(ns, _USAGE_PARSER)
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns


def build_parser(pm: PentoraPluginManager | None = None) -> argparse.ArgumentParser:
    """The CLI; plugins add commands and options through ``pentora_cli_commands``. Commands
    find ``pm``, the run's one plugin manager, as ``args.plugin_manager``."""
    common = plugin_options()
    parser = _Parser(prog="pentora", description="pentora: a network scanner built on a DAG engine")
    parser.add_argument("--version", action="version", version=f"pentora {__version__}")
    parser.add_argument("--no-color", action="store_true",
                        help="no colour in logs, progress and tables (also: NO_COLOR set to anything)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)
    scan_cmd.add_parsers(sub, common)
    dag_cmds.add_parsers(sub, common)
    info_cmds.add_parsers(sub, common)
    complete.add_parsers(sub, common)
    if pm is not None:
        # Contained per implementation: a plugin's broken command must not take the CLI down.
        pm.hook.pentora_cli_commands(subparsers=sub, common=common)
        for subparser in sub.choices.values():
            subparser.set_defaults(plugin_manager=pm)
        complete.add_completers(parser, pm)
    return parser


def scan_parser(pm: PentoraPluginManager) -> argparse.ArgumentParser:
    """``pentora scan``'s parser with every plugin's options: its ``parse_args([])`` is a
    namespace of the command's defaults, for code that runs scans as the command does."""
    args = build_parser(pm).parse_args(["scan"])
    return args.scan_parser  # type: ignore[no-any-return]


def _early_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """``-p no:NAME`` and ``--hooks FILE`` from the command line, before it is parsed: they
    decide which plugins load, and plugins add commands and options."""
    disabled, hooks = [], []
    for i, a in enumerate(argv):
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if a == "-p" and nxt.startswith("no:") and len(nxt) > 3:
            disabled.append(nxt[3:])
        elif a.startswith("-pno:") and len(a) > 5:
            disabled.append(a[5:])
        elif a == "--hooks" and nxt:
            hooks.append(nxt)
        elif a.startswith("--hooks="):
            hooks.append(a[8:])
    return disabled, hooks


def _configure_logging(args: argparse.Namespace) -> None:
    """Logging as the options say: loguru (a tenth of a scan's start-up, with the asyncio
    it brings) is configured when something first logs at the chosen level or above, not
    before the first probe. A log file is opened now: a bad path is a usage error."""
    level, fmt, file = log_level(args), args.log_format, args.log_file

    def configure() -> None:
        from .._logging import configure

        configure(level, fmt, file)

    if file:
        configure()
    else:
        configure_on_import(level, configure)


def main(argv: list[str] | None = None) -> int:
    completing = complete.completing()
    argv = sys.argv[1:] if argv is None else list(argv)
    disabled, hooks = _early_options(complete.completion_argv() if completing else argv)
    try:
        pm = get_plugin_manager(disabled=disabled, hook_files=hooks)
    except PentoraError as e:
        if completing or "--version" in argv or "-h" in argv or "--help" in argv:
            pm = None  # help and version still answer; the message comes with a command
        else:
            echo(f"error: {e}", err=True)
            # -p no:NAME of no plugin is a bad option value; a plugin that fails is not.
            return EXIT_USAGE if isinstance(e, UnknownPluginError) else EXIT_INVALID
    parser = build_parser(pm)
    if completing:
        complete.autocomplete(parser)  # answers the shell and exits
    args = parser.parse_args(argv)
    # Modules block on sockets, DNS, sleeps and threads: a command that runs a scan gets a
    # cooperative standard library, before the modules its DAG uses are imported. Only
    # then: `--help`, `X --help`, `--version` and every TAB have answered by now, and a
    # command that runs no scan (`modules list`, `scans list`) does not pay a tenth of a
    # second for it. A command that says nothing (a plugin's) is patched, as it always was.
    # Never when this module is merely imported: a process that only builds the parser (a
    # test, a tool) must not have its threading patched under it.
    if getattr(args, "cooperative", True):
        # loguru before the patch: its handlers' locks must be the OS's, since native
        # threads log too (the event-loop watchdog, the store's writer); created after
        # it they would be gevent's, and a warning from such a thread could hang the scan
        import loguru  # noqa: F401

        patch_all()
    args.argv = argv  # as typed: errors quote an option as typed; outputs record the command line
    set_no_color(getattr(args, "no_color", False))
    try:
        _configure_logging(args)
    except OSError as e:
        echo(f"error: cannot open log file '{args.log_file}': {e.strerror}", err=True)
        return EXIT_USAGE
    for warning in pm.load_report.warnings if pm is not None else ():
        logger.warning("{}", warning)  # said while loading, before logging was configured
    try:
        return int(args.func(args))
    except ValidationError as e:
        echo(f"error: {e}", err=True)
        return EXIT_INVALID
    except CliError as e:
        echo(f"error: {e}", err=True)
        return e.code
    except PluginClashError as e:
        old, new = e.providers
        echo(f"error: {e.clash}; leave one out with -p no:{old} or -p no:{new}", err=True)
        return EXIT_INVALID
    except PentoraError as e:
        echo(f"error: {e}", err=True)
        return EXIT_INVALID
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug, not bad input: say so plainly, trace only in debug logs
        logger.opt(exception=e).debug("internal error")
        echo(f"internal error: {type(e).__name__}: {e} "
             "(rerun with --log-level DEBUG for the trace, and please report it)", err=True)
        return EXIT_INVALID


if __name__ == "__main__":
    raise SystemExit(main())
