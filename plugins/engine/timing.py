"""nmap's timing options on ``pentora scan``: ``-T0``…``-T5``, ``--max-rate``, ``--min-rate``,
``--max-retries`` and ``--host-timeout``, turned into the profiles' timing vars (``rate``,
``udp_rate``, ``scan_timeout``, ``scan_retries``, ``discovery_timeout``, ``discovery_rate``,
``host_timeout``). ``--set`` goes on top."""

from __future__ import annotations

import argparse
from typing import Any

from pentora import hookimpl
from pentora.cli import EXIT_USAGE, CliError

NAMES = ("paranoid", "sneaky", "polite", "normal", "aggressive", "insane")
# Per template: TCP rate (probes or connects a second, 0 = unlimited), UDP rate, the wait
# for an answer, the extra tries, the discovery probes' wait and rate (each method's). Modelled
# on nmap's: T3 is the profiles' own values; T0-T2 slow down by rate (nmap by a delay between
# probes, which a rate of a probe a second, ten or a hundred gives on one host), T4-T5 wait
# less and retry less. docs/cli.md has this table; tests/cli/test_nmap_options.py holds it
# and the docs to the vars.
TEMPLATES: dict[int, dict[str, Any]] = {
    0: {"rate": 1, "udp_rate": 1, "scan_timeout": "5s", "scan_retries": 2, "discovery_timeout": "5s",
        "discovery_rate": 1},
    1: {"rate": 10, "udp_rate": 10, "scan_timeout": "3s", "scan_retries": 2, "discovery_timeout": "3s",
        "discovery_rate": 10},
    2: {"rate": 100, "udp_rate": 100, "scan_timeout": "2s", "scan_retries": 2,
        "discovery_timeout": "2s", "discovery_rate": 100},
    3: {"rate": 0, "udp_rate": 1000, "scan_timeout": "1s", "scan_retries": 1, "discovery_timeout": "1s",
        "discovery_rate": 50000},
    4: {"rate": 0, "udp_rate": 5000, "scan_timeout": "500ms", "scan_retries": 1,
        "discovery_timeout": "500ms", "discovery_rate": 100000},
    5: {"rate": 0, "udp_rate": 0, "scan_timeout": "250ms", "scan_retries": 0,
        "discovery_timeout": "250ms", "discovery_rate": 0},
}
# The vars --max-rate sets and --min-rate raises: a DAG needs one of them for either.
RATES = ("rate", "udp_rate", "discovery_rate")


def _template(text: str) -> int:
    if text.isdigit() and int(text) in TEMPLATES:
        return int(text)
    if text.lower() in NAMES:
        return NAMES.index(text.lower())
    raise argparse.ArgumentTypeError(f"expected 0-5 or {', '.join(NAMES)}, got '{text}'")


def _rate(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected packets a second, a whole number of at least "
                                         f"1, got '{text}'")
    return int(text)


def _retries(text: str) -> int:
    if not text.isdigit() or int(text) > 10:
        raise argparse.ArgumentTypeError(f"expected 0 to 10 extra tries, got '{text}'")
    return int(text)


@hookimpl
def pentora_cli_commands(subparsers: Any, common: Any) -> None:
    scan = subparsers.choices.get("scan")
    if scan is None:
        return
    g = scan.add_argument_group("timing (nmap-compatible; table in docs/cli.md)")
    g.add_argument("-T", dest="timing", type=_template, metavar="0-5",
                   help="timing template: -T0 paranoid … -T3 normal (the profile's) … -T5 insane")
    g.add_argument("--max-rate", dest="max_rate", type=_rate, metavar="N",
                   help="at most N probes a second (TCP, UDP and each host discovery method)")
    g.add_argument("--min-rate", dest="min_rate", type=_rate, metavar="N",
                   help="a rate limit of at least N a second (pentora's rates are limits only)")
    g.add_argument("--max-retries", dest="max_retries", type=_retries, metavar="N",
                   help="extra tries of a port that stayed silent (0-10)")
    g.add_argument("--host-timeout", dest="host_timeout", metavar="TIME",
                   help="stop probing a host TIME (30m, 90s, 500ms) after its first probe; what "
                        "was found is kept")


@hookimpl
def pentora_cli_scan_vars(args: Any, dag: Any, resuming: bool) -> dict[str, Any] | None:
    timing = getattr(args, "timing", None)
    given = {} if timing is None else dict(TEMPLATES[timing])
    if getattr(args, "max_rate", None) is not None:
        given.update(dict.fromkeys(RATES, args.max_rate))
    if getattr(args, "min_rate", None) is not None:
        given.update(_at_least(given, dag, args.min_rate, args))
    if getattr(args, "max_retries", None) is not None:
        given["scan_retries"] = args.max_retries
    if getattr(args, "host_timeout", None) is not None:
        # as typed: the scanners' schema reads it, and a bad one is this option's error
        given["host_timeout"] = args.host_timeout
    if not given or resuming:
        return given or None
    # -T sets what the DAG has (-sn has no port scan to time); an explicit option must land
    # on one var at least (-sn --max-rate: the discovery rate only).
    explicit = {RATES: ("--max-rate" if args.max_rate is not None else
                        "--min-rate" if args.min_rate is not None else None,
                        "declare one among its vars, or run a profile: every one has them"),
                ("scan_retries",): ("--max-retries" if args.max_retries is not None else None,
                                    "run a profile that scans ports"),
                ("host_timeout",): ("--host-timeout" if args.host_timeout is not None else None,
                                    "run a profile that scans ports")}
    for names, (option, fix) in explicit.items():
        if option is not None and not any(var in dag.vars for var in names):
            quoted = [f"'{var}'" for var in names]
            declares = " or ".join([", ".join(quoted[:-1]), quoted[-1]] if quoted[:-1] else quoted)
            raise CliError(f"DAG '{dag.name}' declares no {declares} var, so {option} cannot reach "
                           f"it; {fix}", EXIT_USAGE)
    return {k: v for k, v in given.items() if k in dag.vars}


def _at_least(given: dict[str, Any], dag: Any, floor: int, args: Any) -> dict[str, Any]:
    """``--min-rate N``: each rate limit raised to N; an unlimited one (0) stays unlimited."""
    if args.max_rate is not None and args.max_rate < floor:
        raise CliError(f"--min-rate {floor} is above --max-rate {args.max_rate}", EXIT_USAGE)
    out = {}
    for var in RATES:
        current = given.get(var, dag.vars.get(var, 0) if dag is not None else 0)
        out[var] = current if current == 0 else max(int(current), floor)
    return out
