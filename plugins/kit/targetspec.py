"""Target specs: text to integer address intervals, without materialising addresses.

Addresses live on one integer line so that IPv4 sorts before IPv6: an IPv4 address
``a`` is the key ``a``; an IPv6 address ``a`` is ``V6_BASE + a``. A spec is one of

- an address: ``10.0.0.1``, ``::1`` (``[::1]`` too);
- a CIDR block: ``10.0.0.0/8``, ``2001:db8::/64`` (host bits are ignored, as nmap does);
- a range: ``10.0.0.1-50`` (last octet), ``10.0.0.1-10.0.1.5`` (full), ``2001:db8::1-ff``
  (last group) or ``2001:db8::1-2001:db8::1:0`` (full);
- a hostname, resolved later;
- ``@path``: a file of specs, one or more a line (comma/whitespace separated), ``#``
  comments and blank lines ignored. Files do not nest. A regular file of at most
  ``FILE_MAX_BYTES``, a line of at most ``LINE_MAX_BYTES`` (``pentora.open_input``).

A list of specs may be separated by commas or whitespace. Errors name the offending text
of a spec given directly. In a file, they name the file and line, and quote the token at
fault only when it has the shape of a target (``quotable``): a file named by mistake
(``@/etc/shadow``) must not have its content copied into messages and logs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pentora import InputError, input_lines, open_input

V6_BASE = 1 << 32
V4_MAX = V6_BASE - 1
_SPLIT = re.compile(r"[,\s]+")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_NUMERIC = re.compile(r"[0-9.]+")
FILE_MAX_BYTES = 256 * 1024 * 1024  # a million targets a line fit many times over
LINE_MAX_BYTES = 1024 * 1024
QUOTE_MAX = 40  # characters of a token quoted from a file
# The shapes of a target: an IPv4 address, CIDR block or range; an IPv6 one (brackets
# allowed); a dotted host name of short labels. Only a token of one of these shapes is
# quoted from a file: a word without a dot may be a password, a long label a key's base64.
_QUOTABLE = re.compile(r"[0-9.]+(?:/[0-9]{1,3})?(?:-[0-9.]*)?"
                       r"|\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]?(?:/[0-9]{1,3})?(?:-[0-9A-Fa-f:.]*)?"
                       r"|[A-Za-z0-9_-]{0,63}(?:\.[A-Za-z0-9_-]{0,63})+")
NOT_A_TARGET = "not a target (an address, network, range or host name)"


class TargetSpecError(ValueError):
    """A target spec that cannot be parsed; the message quotes the offending text."""


@dataclass(frozen=True)
class Spec:
    """One parsed spec: an interval of keys, or a hostname (``start``/``end`` unused)."""

    text: str
    source: str  # the top-level spec it came from (``@file`` for lines of a file)
    start: int = 0
    end: int = -1
    hostname: str | None = None

    @property
    def version(self) -> int:
        return 4 if self.end <= V4_MAX else 6


def key_of(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    return int(ip) if ip.version == 4 else V6_BASE + int(ip)


def address_of(key: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(key) if key <= V4_MAX else ipaddress.IPv6Address(key - V6_BASE)


def split_specs(text: str) -> list[str]:
    """Comma- or whitespace-separated specs of one string."""
    return [part for part in _SPLIT.split(text) if part]


def _bad(text: str, why: str) -> TargetSpecError:
    return TargetSpecError(f"invalid target '{text}': {why}")


def _ip(text: str, spec: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # the version-specific class says what is wrong ("Octet 300 (> 255) not permitted")
    cls = ipaddress.IPv6Address if ":" in text else ipaddress.IPv4Address
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = cls(text)
    except ValueError as e:
        raise _bad(spec, str(e)) from None
    if ip.version == 6 and ip.scope_id:
        raise _bad(spec, "scoped IPv6 addresses (with %zone) are not supported")
    return ip


def _range(spec: str, first: str, last: str) -> tuple[int, int]:
    start = _ip(first, spec)
    if not last:
        raise _bad(spec, "the range has no end (e.g. 10.0.0.1-50 or 10.0.0.1-10.0.1.5)")
    if start.version == 4 and re.fullmatch(r"[0-9]{1,3}", last):
        octet = int(last)
        if octet > 255:
            raise _bad(spec, f"last octet {octet} is out of range (0-255)")
        end_int = (int(start) & ~0xFF) | octet
    elif start.version == 6 and re.fullmatch(r"[0-9A-Fa-f]{1,4}", last):
        end_int = (int(start) & ~0xFFFF) | int(last, 16)
    else:
        end = _ip(last, spec)
        if end.version != start.version:
            raise _bad(spec, "a range cannot mix IPv4 and IPv6")
        end_int = int(end)
    if end_int < int(start):
        raise _bad(spec, "range runs backwards")
    base = 0 if start.version == 4 else V6_BASE
    return base + int(start), base + end_int


def parse_spec(text: str, source: str | None = None) -> Spec:
    """Parse one spec (not ``@file``) into an interval or a hostname."""
    source = text if source is None else source
    s = text.strip()
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    if not s:
        raise _bad(text, "empty target")
    if "/" in s:
        cls = ipaddress.IPv6Network if ":" in s else ipaddress.IPv4Network
        try:
            net: ipaddress.IPv4Network | ipaddress.IPv6Network = cls(s, strict=False)
        except ValueError as e:
            raise _bad(text, str(e)) from None
        base = 0 if net.version == 4 else V6_BASE
        return Spec(text, source, base + int(net.network_address), base + int(net.broadcast_address))
    if "-" in s:
        first, _, last = s.partition("-")
        # a range starts with an address; "10-0-0-1.example.com" is a hostname
        if ("." in first and _NUMERIC.fullmatch(first)) or ":" in first:
            start, end = _range(text, first, last)
            return Spec(text, source, start, end)
    if _NUMERIC.fullmatch(s) or ":" in s:
        ip = _ip(s, text)
        return Spec(text, source, key_of(ip), key_of(ip))
    if len(s) > 253 or not _HOSTNAME.fullmatch(s) or s.rstrip(".").rsplit(".", 1)[-1].isdigit():
        raise _bad(text, "not an IP address, CIDR block, range (a-b) or hostname")
    return Spec(text, source, hostname=s.rstrip(".").lower())


def quotable(token: str) -> bool:
    """Whether a token of a file may be quoted in a message: it has the shape of a target,
    so it is a mistyped one, not a line of some other file (a password hash, a key)."""
    return _QUOTABLE.fullmatch(token) is not None


def _file_error(path: str, number: int, part: str, error: TargetSpecError) -> TargetSpecError:
    if not quotable(part):
        return TargetSpecError(f"{path}:{number}: {NOT_A_TARGET}")
    if len(part) > QUOTE_MAX:
        return TargetSpecError(f"{path}:{number}: {NOT_A_TARGET}: '{part[:QUOTE_MAX]}…'")
    return TargetSpecError(f"{path}:{number}: {error}")


def file_specs(path: str, source: str | None = None, what: str = "target file",
               stdin: bool = False) -> Iterator[Spec]:
    """Specs of a target file, read lazily; ``source`` defaults to ``@path``. Errors name
    ``path`` and the line and quote at most the token at fault (see ``quotable``). With
    ``stdin``, ``-`` is standard input (nmap's ``-iL -``): read it once."""
    token = source or f"@{path}"
    try:
        with open_input(path, what=what, max_bytes=FILE_MAX_BYTES, stdin=stdin) as stream:
            for number, raw in input_lines(stream, what=what, source=path, max_line=LINE_MAX_BYTES):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise TargetSpecError(f"{path}:{number}: not UTF-8 text: a {what} is UTF-8 "
                                          "text, one or more targets a line") from None
                for part in split_specs(line.split("#", 1)[0]):
                    if part.startswith("@"):
                        raise TargetSpecError(f"{path}:{number}: target files do not nest "
                                              "(an @file inside a target file)")
                    try:
                        yield parse_spec(part, token)
                    except TargetSpecError as e:
                        raise _file_error(path, number, part, e) from None
    except InputError as e:
        raise TargetSpecError(str(e)) from None


def iter_specs(specs: str | Iterable[str]) -> Iterator[Spec]:
    """Every spec of a string or list of strings, ``@file`` contents read lazily."""
    items = [specs] if isinstance(specs, str) else specs
    for item in items:
        if not isinstance(item, str):
            raise TargetSpecError(f"invalid target {item!r}: expected a string")
        for token in split_specs(item):
            if token == "@":
                raise TargetSpecError("invalid target '@': '@' needs a file path, e.g. @targets.txt")
            if token.startswith("@"):
                yield from file_specs(token[1:], token)
            else:
                yield parse_spec(token)


def exclusions(specs: Iterable[Spec]) -> Iterator[tuple[int, int]]:
    """Intervals of blocklist entries: addresses, CIDR blocks or ranges, never names."""
    for spec in specs:
        if spec.hostname is not None:
            where = f" (in {spec.source})" if spec.source != spec.text else ""
            raise TargetSpecError(f"invalid exclusion '{spec.text}'{where}: only addresses, CIDR "
                                  "blocks and ranges can be excluded, not hostnames")
        yield spec.start, spec.end
