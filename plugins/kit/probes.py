"""Probe catalog of ``banner_grabber``: reading and checking ``data/probes.yaml``.

A catalog is YAML holding ``probes:``, a list of entries whose fields are described at
the top of ``data/probes.yaml``. Payloads become ``bytes`` through one checked path per
encoding, so that what is sent is exactly the bytes the author meant:

- ``payload_hex``: hex digits (whitespace ignored);
- ``payload_text``: ASCII only. YAML turns ``"\\xff"`` into the character U+00FF, and a
  naive ``.encode()`` sends it as UTF-8 (``c3 bf``): a known scanner ships probes
  mangled that way. Text with any character above 0x7F is refused here;
- ``payload``: ``!!binary`` (base64), which YAML already returns as bytes;
- ``reply``: the name of a payload built from the answer that selected the probe.

Regexes apply to raw bytes, compiled by ``kit.linear_re`` (RE2: matching time linear in
the answer, whatever the pattern). A pattern string is turned into a bytes pattern
through latin-1, so ``\\xNN`` (a regex escape) and a literal U+00NN both mean byte NN;
anything beyond U+00FF is refused. ``match`` and ``expect`` must be anchored; ``read_until``
finds a terminator anywhere. Loading raises ``CatalogError`` naming file, entry and field.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import voluptuous as vol
from pentora_plugins.kit import linear_re
from pentora_plugins.kit.catalog import ANCHOR_HINT, CATALOG_MAX_BYTES
from pentora_plugins.kit.portspec import PortSet, PortSpecError, parse_ports

from pentora import InputError, load_yaml, read_input
from pentora.schema import PositiveInt

BUILTIN = "builtin"
PAYLOAD_FIELDS = ("payload_hex", "payload_text", "payload", "reply")
TRANSPORTS = ("any", "plain", "tls")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_IAC, _DONT, _DO, _WONT, _WILL = 0xFF, 0xFE, 0xFD, 0xFC, 0xFB


class CatalogError(ValueError):
    """A probe catalog that cannot be used; the message names file, entry and field."""


def telnet_refuse(answer: bytes) -> bytes:
    """Refuse every option the server asked about (DO x → WONT x, WILL x → DONT x), so
    that it stops negotiating and shows its login prompt; a bare CR LF if it asked none."""
    out = bytearray()
    for i in range(len(answer) - 2):
        if answer[i] == _IAC and answer[i + 1] in (_DO, _WILL):
            out += bytes([_IAC, _WONT if answer[i + 1] == _DO else _DONT, answer[i + 2]])
    return bytes(out) or b"\r\n"


REPLIES: dict[str, Callable[[bytes], bytes]] = {"telnet_refuse": telnet_refuse}


@dataclass(frozen=True)
class Probe:
    """One catalog entry. ``payload`` is None (with ``reply`` None) for an entry that is
    never sent and only recognises answers."""

    name: str
    protocol: str
    ports: PortSet | None = None
    payload: bytes | None = None
    reply: str | None = None
    greets: bool = False
    match: tuple[linear_re.Pattern[bytes], ...] = ()
    expect: tuple[linear_re.Pattern[bytes], ...] = ()
    read_until: linear_re.Pattern[bytes] | None = None
    max_bytes: int | None = None
    generic: int | None = None
    transport: str = "any"
    connection: str = "new"
    transcript: bool = False

    @property
    def sendable(self) -> bool:
        return self.payload is not None or self.reply is not None

    def hints(self, port: int) -> bool:
        return self.ports is not None and port in self.ports

    def runs_over(self, tls: bool) -> bool:
        return self.transport == "any" or self.transport == ("tls" if tls else "plain")

    def selected_by(self, answer: bytes) -> bool:
        return any(p.match(answer) for p in self.match)

    def recognises(self, answer: bytes) -> bool:
        return any(p.match(answer) for p in self.expect)

    def build(self, selecting_answer: bytes) -> bytes:
        """The bytes to send, given the answer that selected the probe (b"" if none)."""
        if self.reply is not None:
            return REPLIES[self.reply](selecting_answer)
        return self.payload or b""


@dataclass(frozen=True)
class Catalog:
    """Probes in file order, with the lookups the grabber needs per port."""

    probes: tuple[Probe, ...]
    source: str = BUILTIN

    def names(self) -> list[str]:
        return [p.name for p in self.probes]

    def select(self, names: Iterable[str]) -> Catalog:
        """Only the named entries (all when ``names`` is empty); unknown names raise."""
        wanted = list(names)
        if not wanted:
            return self
        unknown = [n for n in wanted if n not in self.names()]
        if unknown:
            raise CatalogError(f"{self.source}: unknown probe(s) {', '.join(unknown)}; "
                               f"known: {', '.join(self.names())}")
        return Catalog(tuple(p for p in self.probes if p.name in wanted), self.source)

    def hinted(self, port: int) -> list[Probe]:
        return [p for p in self.probes if p.sendable and p.hints(port)]

    def generic(self) -> list[Probe]:
        found = [p for p in self.probes if p.sendable and p.generic is not None]
        return sorted(found, key=lambda p: p.generic or 0)

    def followups(self, answer: bytes) -> list[Probe]:
        return [p for p in self.probes if p.sendable and p.selected_by(answer)]

    def recognise(self, answer: bytes) -> str | None:
        """The protocol of the first entry whose ``expect`` matches ``answer``."""
        for p in self.probes:
            if p.recognises(answer):
                return p.protocol
        return None

    def greeting(self, answer: bytes) -> bool:
        """True when ``answer`` looks like what a service says first: it selects an
        entry that ``greets`` (FTP's 220, IMAP's ``* OK``...), or is recognised by one
        that has nothing to select it (SSH, MySQL). Not ``expect`` alone: POP3's
        ``-ERR`` is also Redis's answer to a probe."""
        return any(p.greets and (p.selected_by(answer) or (not p.match and p.recognises(answer)))
                   for p in self.probes)

    def client_first(self, port: int) -> bool:
        """True when only client-first protocols are hinted on ``port``: no need to
        wait long for a greeting. Unhinted ports may run anything: they wait."""
        hinting = [p for p in self.probes if p.hints(port)]
        return bool(hinting) and not any(p.greets for p in hinting)


# -- loading -------------------------------------------------------------------------


def _str_or_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise vol.Invalid(f"expected a regex or a list of regexes, got {value!r}")


ENTRY = vol.Schema({
    vol.Required("name"): vol.All(str, vol.Match(_NAME, msg="lowercase letters, digits and _")),
    vol.Required("protocol"): vol.All(str, vol.Match(_NAME, msg="lowercase letters, digits and _")),
    vol.Optional("description"): str,
    vol.Optional("ports"): vol.Any(int, str, list),
    vol.Optional("greets", default=False): bool,
    vol.Optional("payload_hex"): str,
    vol.Optional("payload_text"): str,
    vol.Optional("payload"): object,
    vol.Optional("reply"): vol.In(sorted(REPLIES)),
    vol.Optional("match"): _str_or_list,
    vol.Optional("expect"): _str_or_list,
    vol.Optional("read_until"): str,
    vol.Optional("flags", default=""): vol.Match(r"^[ims]*$", msg="any of i, m, s"),
    vol.Optional("max_bytes"): PositiveInt(),
    vol.Optional("generic"): PositiveInt(),
    vol.Optional("transport", default="any"): vol.In(TRANSPORTS),
    vol.Optional("connection", default="new"): vol.In(("new", "same")),
    vol.Optional("transcript", default=False): bool,
})


def payload_bytes(entry: dict[str, Any], where: str) -> bytes | None:
    """The payload of a raw catalog entry as the exact bytes meant (see module doc)."""
    given = [f for f in PAYLOAD_FIELDS if f in entry]
    if len(given) > 1:
        raise CatalogError(f"{where}: give one payload, not {' and '.join(given)}")
    if "payload_hex" in entry:
        digits = "".join(entry["payload_hex"].split())
        if len(digits) % 2 or not re.fullmatch(r"[0-9A-Fa-f]*", digits):
            raise CatalogError(f"{where}: field 'payload_hex': expected pairs of hex digits, "
                               f"got {entry['payload_hex']!r}")
        return bytes.fromhex(digits)
    if "payload_text" in entry:
        text = entry["payload_text"]
        bad = next((i for i, ch in enumerate(text) if ord(ch) > 0x7F), None)
        if bad is not None:
            raise CatalogError(
                f"{where}: field 'payload_text': character U+{ord(text[bad]):04X} at offset {bad} "
                f"is not ASCII; YAML reads \"\\x{ord(text[bad]) & 0xFF:02x}\" as a character, which "
                f"would be sent as UTF-8 ({text[bad].encode().hex(' ')}), not as one byte: write "
                f"the payload with payload_hex or payload: !!binary")
        return text.encode("ascii")
    if "payload" in entry:
        if not isinstance(entry["payload"], bytes):
            raise CatalogError(f"{where}: field 'payload': expected !!binary (base64), got "
                               f"{type(entry['payload']).__name__}; use payload_text for ASCII "
                               f"text or payload_hex")
        return entry["payload"]
    return None


def _regex(pattern: str, flags: str, where: str, anchored: bool = True) -> linear_re.Pattern[bytes]:
    try:
        raw = pattern.encode("latin-1")
    except UnicodeEncodeError:
        raise CatalogError(f"{where}: {pattern!r} holds a character above U+00FF; regexes "
                           f"apply to bytes: write byte NN as \\xNN") from None
    try:
        compiled = linear_re.compile(raw, flags)
    except linear_re.PatternError as e:
        raise CatalogError(f"{where}: bad regex {pattern!r}: {e}") from e
    if anchored and not compiled.anchored():
        raise CatalogError(f"{where}: regex {pattern!r}: {ANCHOR_HINT}")
    return compiled


def _entry(raw: object, index: int, source: str) -> Probe:
    label = raw.get("name", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
    where = f"{source}: probe '{label}'"
    try:
        e = ENTRY(raw)
    except vol.Invalid as err:
        path = "/".join(str(p) for p in err.path)
        raise CatalogError(f"{where}: field '{path}': {err.msg}") from err
    try:
        ports = parse_ports(e["ports"]) if "ports" in e else None
    except PortSpecError as err:
        raise CatalogError(f"{where}: field 'ports': {err}") from err
    payload = payload_bytes(e, where)
    if (payload is not None or "reply" in e) and not (ports or "match" in e or "generic" in e):
        raise CatalogError(f"{where}: a probe needs ports, match or generic to ever be sent")

    def regexes(field: str) -> tuple[linear_re.Pattern[bytes], ...]:
        return tuple(_regex(p, e["flags"], f"{where}: field '{field}'") for p in e.get(field, ()))

    until = e.get("read_until")
    return Probe(
        name=e["name"], protocol=e["protocol"], ports=ports, payload=payload, reply=e.get("reply"),
        greets=e["greets"], match=regexes("match"), expect=regexes("expect"),
        read_until=_regex(until, e["flags"], f"{where}: field 'read_until'", anchored=False)
        if until is not None else None,
        max_bytes=e.get("max_bytes"), generic=e.get("generic"), transport=e["transport"],
        connection=e["connection"], transcript=e["transcript"])


def parse_catalog(text: str | bytes, source: str) -> Catalog:
    try:
        doc = load_yaml(text, source, what="probe catalog", max_bytes=CATALOG_MAX_BYTES)
    except InputError as e:
        raise CatalogError(str(e)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("probes"), list):
        raise CatalogError(f"{source}: expected a mapping with 'probes:', a list of entries")
    probes = tuple(_entry(raw, i, source) for i, raw in enumerate(doc["probes"]))
    seen: set[str] = set()
    for p in probes:
        if p.name in seen:
            raise CatalogError(f"{source}: probe name '{p.name}' is used twice")
        seen.add(p.name)
    return Catalog(probes, source)


@functools.lru_cache(maxsize=1)
def builtin_catalog() -> Catalog:
    text = resources.files("pentora_plugins").joinpath("data/probes.yaml").read_bytes()
    return parse_catalog(text, "builtin probes.yaml")


def load_catalog(source: str = BUILTIN) -> Catalog:
    """The built-in catalog (``builtin``) or the one in file ``source`` (read each time)."""
    if source == BUILTIN:
        return builtin_catalog()
    try:
        text = read_input(source, what="probe catalog", max_bytes=CATALOG_MAX_BYTES)
    except InputError as e:
        raise CatalogError(str(e)) from None
    return parse_catalog(text, source)
