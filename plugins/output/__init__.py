"""Outputs: JSONL, the terminal summary (and ``-q``), the report formats (json, csv, md, nmap
xml, html), the ``json_reporter`` module and ``pentora report``."""

from __future__ import annotations

import re
import shlex
import sys
from typing import Any

from pentora import hookimpl

# Names these had as plugins of their own (``-p no:NAME`` says what they are now).
pentora_former_names = {"output_jsonl": "output", "output_table": "output", "formats": "output",
                        "reporters": "output.json_reporter"}


@hookimpl
def pentora_plugin_added(pm: Any) -> None:
    from pentora_plugins.output._streams import Streams

    pm.register(Streams(), name="output.json_reporter")


@hookimpl
def pentora_register_output_formats(registry: Any) -> None:
    from pentora_plugins.output import jsonl, summary
    from pentora_plugins.output.formats import FORMATS

    for fmt in (jsonl.FORMAT, summary.FORMAT, *FORMATS):
        registry.register_output_format(fmt)


@hookimpl
def pentora_register_modules(registry: Any) -> None:
    # Named, not imported: a module type's code is imported when a scan first uses it.
    registry.register("pentora_plugins.output.json_reporter:JsonReporter", name="json_reporter")


@hookimpl(trylast=True)  # after the other areas: `pentora demo` (engine) exists by then
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    from pentora_plugins.output import _views

    from pentora.cli import add_output_options

    p = subparsers.add_parser(
        "report", parents=[common],
        help="render an earlier scan's JSONL again (summary, html, md, csv, xml, nmap, json…)",
        description="Render a pentora JSONL file (from -o FILE.jsonl or json_reporter) in another "
                    "format; without an output, print its summary.")
    p.add_argument("file", metavar="FILE.jsonl", help="the JSONL of an earlier scan ('-' for stdin)")
    add_output_options(p, "the report")
    p.add_argument("--skip-bad-lines", action="store_true",
                   help="skip lines that are not valid records (warning on stderr) instead of stopping")
    _views.add_options(p)
    p.set_defaults(func=_report, cooperative=False)
    scan = subparsers.choices.get("scan")
    if scan is not None:
        scan.add_argument("--quiet", "-q", action="store_true", help="no summary on stdout")
        g = scan.add_argument_group("output (nmap-compatible)")
        g.add_argument("--open", dest="open_only", action="store_true",
                       help="only open (or open|filtered) ports: no count of the silent ones")
        g.add_argument("--reason", action="store_true",
                       help="say why each port has its state (syn-ack, udp-response…)")
        _views.add_options(scan)
    demo = subparsers.choices.get("demo")
    if demo is not None:
        demo.add_argument("--quiet", "-q", action="store_true", help="no summary on stdout")
        _views.add_options(demo, fail_on=False)


def _report(args: Any) -> int:
    # The formats (and the records, the JSON Schema checks) when `pentora report` runs:
    # this module is imported whenever pentora starts.
    from pentora_plugins.output.formats.report_cmd import cmd_report

    return cmd_report(args)


@hookimpl
def pentora_cli_scan_options(args: Any) -> dict[str, Any] | None:
    """The quality threshold, --open, --reason and the command line, for the -o writers
    (``start(scan)`` reads ``scan.options``)."""
    from pentora_plugins.output import _views
    from pentora_plugins.output.jsonl import COMMAND_LINE
    from pentora_plugins.output.summary import OPEN_ONLY, REASON

    options: dict[str, Any] = {OPEN_ONLY: bool(getattr(args, "open_only", False)),
                               REASON: bool(getattr(args, "reason", False))}
    value = getattr(args, "min_quality", None)
    if value is not None:
        options[_views.OPTION] = value
    argv = getattr(args, "argv", None)
    if argv is not None:  # shell-quoted, as nmap's args: it can be pasted to run it again
        options[COMMAND_LINE] = command_line(argv)
    return options


# The password of a URL (--broker redis://:secret@host): reports are shared, the broker's
# password must not travel with them.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:)[^/@\s]+@")


def command_line(argv: list[str]) -> str:
    """``pentora ARGV`` shell-quoted, with the password of any URL in it replaced by ``***``."""
    return shlex.join(["pentora", *(_URL_PASSWORD.sub(r"\g<head>***@", a) for a in argv)])


# Open ports the terminal summary draws; the rest are counted (the -o files hold them all).
SUMMARY_ROWS = 100


@hookimpl
def pentora_cli_scan_done(args: Any, orch: Any, result: Any) -> None:
    """The summary table once the scan is over (not with ``-q``): on stdout, or on stderr
    when an output (``-o -``) has stdout, so that ``| jq`` reads machine output alone."""
    if getattr(args, "quiet", False):
        return
    from pentora_plugins.kit.quality import DEFAULT_MIN_QUALITY
    from pentora_plugins.output.summary import SummaryWriter

    stream = sys.stderr if "-" in (getattr(args, "outputs", None) or ()) else sys.stdout
    SummaryWriter(stream, getattr(args, "min_quality", DEFAULT_MIN_QUALITY),
                  open_only=getattr(args, "open_only", False),
                  reason=getattr(args, "reason", False), max_rows=SUMMARY_ROWS).close(result)


@hookimpl
def pentora_cli_scan_exit(args: Any, result: Any) -> int | None:
    """``--fail-on SEVERITY``: exit 5 when a verified finding that bad was made."""
    if result is None or not getattr(args, "fail_on", None):
        return None
    from pentora_plugins.output import _views

    return _views.gate(result.context.get("vulnerabilities", []), args.min_quality, args.fail_on)
