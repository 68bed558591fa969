"""``pentora scan``'s port options: ``-p``/``--ports``, and nmap's ``-sS``, ``-sT``, ``-sU``,
``--top-ports`` and ``-F``, turned into the port-scan vars of the profiles (``ports``,
``udp_ports``, ``tcp_scan``, ``udp_scan``)."""

from __future__ import annotations

import argparse
from typing import Any

from pentora_plugins.kit.portspec import PortSpecError, by_protocol

from pentora.cli import EXIT_USAGE, CliError

# The profiles that scan ports, most specific first: what -sS/-sT/-sU run without --profile.
PORT_PROFILES = ["port-scan", "service-scan", "standard", "vuln-scan", "web-scan"]
_SCAN_TYPES = (("-sS", "syn", "TCP SYN scan (half-open; needs root, else a connect scan)"),
               ("-sT", "connect", "TCP connect scan"),
               ("-sU", "udp", "UDP scan (with -sS or -sT: both; -p U:53,T:80 picks ports per protocol)"))


def add_options(scan: argparse.ArgumentParser) -> None:
    scan.add_argument("--ports", dest="ports", metavar="PORTS",
                      help="ports to scan: 1-1000, 22,80, -, top-100, U:53,T:80 "
                           "(-p PORTS is the same; repeated, they add up)")
    g = scan.add_argument_group("port scan (nmap-compatible)")
    for flag, kind, text in _SCAN_TYPES:
        g.add_argument(flag, dest="scan_types", action="append_const", const=kind, help=text)
    g.add_argument("--top-ports", dest="top_ports", type=_count, metavar="N",
                   help="the N most common ports of pentora's ranking (top-N)")
    g.add_argument("-F", dest="fast", action="store_true", help="fast: the top 100 ports")


def _count(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a number of ports, 1-65535, got '{text}'")
    return int(text)


def scan_profile(args: argparse.Namespace) -> tuple[str, list[str]] | None:
    types = getattr(args, "scan_types", None)
    if not types:
        return None
    return " ".join(dict.fromkeys(f for f, kind, _ in _SCAN_TYPES if kind in types)), PORT_PROFILES


def scan_vars(args: argparse.Namespace, dag: Any, resuming: bool) -> dict[str, Any] | None:
    specs, option = _port_specs(args)
    types = set(getattr(args, "scan_types", None) or ())
    if not specs and not types:
        return None
    if {"syn", "connect"} <= types:
        raise CliError("-sS and -sT: one TCP scan at a time; pick one", EXIT_USAGE)
    tcp, udp, named_udp, named_tcp = split_protocols(specs)
    out: dict[str, Any] = {}
    if types:
        tcp_kind = "syn" if "syn" in types else "connect" if "connect" in types else "none"
        out.update(tcp_scan=tcp_kind, udp_scan="udp" in types)
    tcp_on = out.get("tcp_scan", "syn") != "none"
    if named_udp and "udp" not in types:
        # nmap only warns and scans TCP; a UDP port silently left out looks like a closed one.
        raise CliError(f"{option} names UDP ports (U:) but no UDP scan was asked for: add -sU "
                       "(with -sS or -sT to scan TCP as well), or drop the U: part", EXIT_USAGE)
    if named_tcp and not tcp_on:
        raise CliError(f"{option} names TCP ports (T:) but only -sU was given: add -sS or -sT, "
                       "or drop the T: part", EXIT_USAGE)
    if specs and tcp_on and not tcp:
        raise CliError(f"{option} has no TCP port for the TCP scan: add T:PORTS, or scan UDP "
                       "only (-sU alone)", EXIT_USAGE)
    if specs and "udp" in types and not udp:
        raise CliError(f"{option} has no UDP port for -sU: add U:PORTS", EXIT_USAGE)
    if tcp:
        out["ports"] = ",".join(tcp)
    if udp and "udp" in types:
        out["udp_ports"] = ",".join(udp)
    if not resuming:
        for var in out:
            if var not in dag.vars:
                raise CliError(f"DAG '{dag.name}' declares no '{var}' var, so "
                               f"{_option_of(var, option)} cannot reach it; run a profile that "
                               f"scans ports ({', '.join(PORT_PROFILES)})", EXIT_USAGE)
    return out


def _option_of(var: str, ports_option: str) -> str:
    return {"tcp_scan": "-sS/-sT/-sU", "udp_scan": "-sU"}.get(var, ports_option)


def _port_specs(args: argparse.Namespace) -> tuple[list[str], str]:
    """Every port spec given (``--ports``, each ``-p``, ``--top-ports``, ``-F``), and how to
    name them in a message."""
    specs = [s for s in [getattr(args, "ports", None), *(args.p_values or [])] if s is not None]
    args.p_values = []  # taken: -p PORTS is ours
    given = [f"-p {s}" for s in specs]
    top = getattr(args, "top_ports", None)
    fast = getattr(args, "fast", False)
    if (top or fast) and specs:
        # nmap refuses -F with -p too: a ranking cut and an explicit list do not mix.
        raise CliError(f"{'-F' if fast else '--top-ports'} and {', '.join(given)}: give the "
                       "ports one way", EXIT_USAGE)
    if top and fast:
        raise CliError("-F is --top-ports 100: give one of them", EXIT_USAGE)
    if top:
        return [f"top-{top}"], f"--top-ports {top}"
    if fast:
        return ["top-100"], "-F"
    return specs, " ".join(given)


def split_protocols(specs: list[str]) -> tuple[list[str], list[str], bool, bool]:
    """nmap's port syntax per protocol (``kit.portspec.by_protocol``) over each spec given,
    a ``T:``/``U:`` prefix holding within its own spec. Returns (TCP items, UDP items,
    whether U: was named, whether T: was named). The items themselves are checked by the
    scanners' schemas."""
    tcp: list[str] = []
    udp: list[str] = []
    named_udp = named_tcp = False
    for spec in specs:
        try:
            items, named = by_protocol(spec)
            if "" in items["tcp"] + items["udp"]:  # a prefix with nothing after it: T:
                raise PortSpecError(spec)
        except PortSpecError:
            raise CliError(f"-p {spec}: an empty item; expected e.g. 22,80 or U:53,T:80",
                           EXIT_USAGE) from None
        tcp += items["tcp"]
        udp += items["udp"]
        named_udp |= "udp" in named
        named_tcp |= "tcp" in named
    return tcp, udp, named_udp, named_tcp
