"""Rule catalogs of ``fingerprint_parser``: reading, checking and compiling YAML rules.

A catalog is a YAML file holding ``rules:``, a list of mappings (see
``data/fingerprints.yaml`` for the fields). Every regex is compiled once by
``kit.linear_re`` (RE2: matching time linear in the banner, whatever the pattern), and
must be anchored (``^`` or ``\\A`` first, in every alternative): a rule names what a
service says first, not a word anywhere in its answer. Loading a catalog raises
``CatalogError`` naming the file, the rule and the field at fault.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, overload

import voluptuous as vol
from pentora_plugins.kit import linear_re

from pentora import InputError, load_yaml, read_input
from pentora.schema import Fraction, Nullable

BUILTIN = "builtin"
MAX_CPE_TEXT = 256

ANCHOR_HINT = ("pattern must be anchored: start it (every alternative) with ^ or \\A, "
               "e.g. '\\ASSH-' or '(?m)^Server:'")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# $1, ${1}, ${name} or ${name:converter}; $$ is a literal dollar sign.
_TEMPLATE = re.compile(r"\$(?:(\d{1,2})|\{(\d{1,2}|[A-Za-z_]\w*)(?::([a-z0-9]+))?\}|(\$))")
_CPE_FIELD = re.compile(r"\{([A-Za-z_]\w*)\}")
# CPE 2.3 formatted string (NISTIR 7695 section 6.2, with the schema's regex).
_CPE_VALUE = (r"(?:(?:\?*|\*?)(?:[a-zA-Z0-9\-._]|\\[\\*?!\"#$%&'()+,/:;<=>@\[\]^`{|}~])+"
              r"(?:\?*|\*?)|[*\-])")
CPE23 = re.compile(r"^cpe:2\.3:[aho*\-](?::" + _CPE_VALUE + r"){5}"
                   r"(?::(?:[a-zA-Z]{2,3}(?:-(?:[a-zA-Z]{2}|[0-9]{3}))?|[*\-]))"
                   r"(?::" + _CPE_VALUE + r"){4}$")
OS_KEYS = ("family", "distribution", "release")


class CatalogError(ValueError):
    """A rule catalog that cannot be used; the message names file, rule and field."""


def _u16(data: str, order: Literal["big", "little"]) -> str:
    raw = data.encode("latin-1", "replace")
    return str(int.from_bytes(raw, order)) if raw else ""


CONVERTERS = {
    "u8": lambda s: str(ord(s[0])) if s else "",
    "u16be": lambda s: _u16(s[:2], "big"),
    "u16le": lambda s: _u16(s[:2], "little"),
    "nonul": lambda s: s.replace("\x00", ""),
    "lower": str.lower,
}


@dataclass(frozen=True)
class Template:
    """A value built from a match: literal text with ``$1`` / ``${name[:conv]}`` slots."""

    text: str

    def render(self, m: linear_re.Match[str]) -> str | None:
        """The filled-in text; None when it is empty or every group it names is empty."""
        refs = self.refs()
        if refs and not any(m.group(int(r) if r.isdigit() else r) for r, _ in refs):
            return None

        def sub(t: re.Match[str]) -> str:
            if t.group(4):
                return "$"
            ref = t.group(1) or t.group(2)
            value = m.group(int(ref) if ref.isdigit() else ref) or ""
            return CONVERTERS[t.group(3)](value) if t.group(3) and value else value

        out = _TEMPLATE.sub(sub, self.text).replace("\x00", "").strip(" \t\r\n.,;:_-")
        return out or None

    def refs(self) -> list[tuple[str, str | None]]:
        return [(t.group(1) or t.group(2), t.group(3)) for t in _TEMPLATE.finditer(self.text)
                if not t.group(4)]


@dataclass(frozen=True)
class Rule:
    """One compiled rule. ``rank`` orders rules of equal confidence: later catalogs win."""

    id: str
    service: str
    product: str | None
    vendor: str | None
    regex: linear_re.Pattern[str]
    probes: frozenset[str] | None
    version: Template | None
    cpe: str | None
    confidence: float
    os: tuple[tuple[str, Template], ...]
    info: Template | None
    source: str
    rank: int

    def applies_to(self, probe: str) -> bool:
        return self.probes is None or probe in self.probes


@dataclass
class Catalog:
    """The rules in force, in catalog order, and the sources they came from."""

    rules: tuple[Rule, ...]
    sources: tuple[str, ...]
    _by_probe: dict[str, tuple[Rule, ...]] = field(default_factory=dict, init=False,
                                                   repr=False, compare=False)

    def rules_for(self, probe: str) -> tuple[Rule, ...]:
        cached = self._by_probe.get(probe)
        if cached is None:
            cached = self._by_probe[probe] = tuple(r for r in self.rules if r.applies_to(probe))
        return cached

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


# -- the rule schema ----------------------------------------------------------------------


def nonempty(value: object) -> str:
    """Schema validator: a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise vol.Invalid(f"expected a non-empty string, got {value!r}")
    return value


def flags(value: object) -> str:
    """Schema validator: regex flags, letters among i, m, s (or a list of them)."""
    letters = "".join(value) if isinstance(value, list) else value
    if isinstance(letters, str) and "x" in letters:
        raise vol.Invalid("'x' (verbose) is not supported: the regex engine (RE2) has no "
                          "verbose mode; write the pattern without the spaces and # comments "
                          "it ignored")
    if not isinstance(letters, str) or any(c not in linear_re.FLAGS for c in letters):
        raise vol.Invalid(f"expected letters among {', '.join(linear_re.FLAGS)} (e.g. 'im'), "
                          f"got {value!r}")
    return letters


def _probes(value: object) -> frozenset[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(p, str) for p in items):
        raise vol.Invalid(f"expected a probe name or a list of them, got {value!r}")
    return frozenset(items)


def _os(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise vol.Invalid(f"expected a mapping of {', '.join(OS_KEYS)}, got {value!r}")
    for key, item in value.items():
        if key not in OS_KEYS:
            raise vol.Invalid(f"unknown key '{key}' (known: {', '.join(OS_KEYS)})")
        nonempty(item)
    return value


RULE_SCHEMA = vol.Schema({
    vol.Required("id"): vol.All(nonempty, vol.Match(_ID, msg="expected lowercase letters, digits, "
                                                          "'.', '_' or '-'")),
    vol.Required("service"): nonempty,
    vol.Optional("product", default=None): Nullable(nonempty),
    vol.Optional("vendor", default=None): Nullable(nonempty),
    vol.Required("match"): nonempty,
    vol.Optional("flags", default=""): flags,
    vol.Optional("probe", default=None): Nullable(_probes),
    vol.Optional("version", default=None): Nullable(nonempty),
    vol.Optional("cpe", default=None): Nullable(nonempty),
    vol.Optional("confidence", default=0.8): Fraction(),
    vol.Optional("os", default=None): Nullable(_os),
    vol.Optional("info", default=None): Nullable(nonempty),
    vol.Optional("enabled", default=True): bool,
    vol.Optional("description", default=None): Nullable(nonempty),
})


# -- loading --------------------------------------------------------------------------------


def builtin_path() -> Path:
    return Path(str(resources.files("pentora_plugins").joinpath("data", "fingerprints.yaml")))


def normalise_sources(value: object) -> list[str]:
    """``builtin``, a path, or a list of them → a list of ``builtin`` and absolute paths."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip()
                                                          for s in items):
        raise CatalogError(f"expected 'builtin', a path to a YAML rule file, or a list of "
                           f"them, got {value!r}")
    return [s if s == BUILTIN else str(Path(s).expanduser().resolve()) for s in items]


def load_catalog(sources: str | Iterable[str] = (BUILTIN,)) -> Catalog:
    """The rules of ``sources`` in order; a rule whose ``id`` was already defined by an
    earlier source replaces it (``enabled: false`` removes it). Cached per file version."""
    return _load(stamp_sources(sources, builtin_path(), "rule catalog"))


def stamp_sources(sources: str | Iterable[str], builtin: Path, what: str
                  ) -> tuple[tuple[str, int, int], ...]:
    """(source, mtime, size) of each catalog source: the cache key of a loaded catalog, so
    an edited file is read again. ``what`` names the catalog in the error."""
    stamped = []
    for source in normalise_sources(sources if isinstance(sources, str) else list(sources)):
        path = builtin if source == BUILTIN else Path(source)
        try:
            st = path.stat()
        except OSError as e:
            raise CatalogError(f"{what} {source}: cannot read it ({e.strerror or e}); "
                               f"catalog takes 'builtin' or the path of a YAML file") from e
        stamped.append((source, st.st_mtime_ns, st.st_size))
    return tuple(stamped)


@functools.lru_cache(maxsize=16)
def _load(stamped: tuple[tuple[str, int, int], ...]) -> Catalog:
    merged: dict[str, Rule] = {}
    for rank, (source, _, _) in enumerate(stamped):
        for rule, enabled in _load_file(source, rank):
            merged.pop(rule.id, None)
            if enabled:
                merged[rule.id] = rule
    return Catalog(tuple(merged.values()), tuple(s for s, _, _ in stamped))


def _load_file(source: str, rank: int) -> list[tuple[Rule, bool]]:
    path = builtin_path() if source == BUILTIN else Path(source)
    name = f"builtin catalog {path}" if source == BUILTIN else str(path)
    doc = read_yaml(path, name)
    rules = doc.get("rules") if isinstance(doc, dict) else doc
    if isinstance(doc, dict) and set(doc) - {"rules"}:
        extra = ", ".join(sorted(map(str, set(doc) - {"rules"})))
        raise CatalogError(f"{name}: unknown top-level field(s) {extra}; a catalog holds 'rules:'")
    if not isinstance(rules, list):
        raise CatalogError(f"{name}: expected 'rules:' with a list of rules, got "
                           f"{type(rules).__name__}")
    return [(_compile(fields, where, source, rank), fields["enabled"])
            for where, fields in validated(rules, "rule", RULE_SCHEMA, name)]


CATALOG_MAX_BYTES = 64 * 1024 * 1024  # the built-in catalogs are a few hundred KB


def read_yaml(path: Path, name: str) -> Any:
    """A catalog file's YAML document (a regular file of at most ``CATALOG_MAX_BYTES``, read
    with the bounds of a DAG file); unreadable or invalid, a CatalogError naming it and the line."""
    try:
        data = read_input(path, what="catalog", max_bytes=CATALOG_MAX_BYTES)
        return load_yaml(data, name, what="catalog", max_bytes=CATALOG_MAX_BYTES)
    except InputError as e:
        raise CatalogError(str(e)) from None


def validated(items: list[Any], noun: str, schema: vol.Schema, name: str
              ) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, fields) of each entry of a catalog file, checked against ``schema``, its
    ``id`` unique in the file; ``where`` names the file and the entry for later errors."""
    seen: set[str] = set()
    for i, raw in enumerate(items, 1):
        label = f"{noun} #{i}"
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            label = f"{noun} '{raw['id']}' (#{i})"
        where = f"{name}: {label}"
        if not isinstance(raw, dict):
            raise CatalogError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
        fields = check(schema, raw, where)
        if fields["id"] in seen:
            raise CatalogError(f"{where}: field 'id': duplicate id '{fields['id']}' in this file")
        seen.add(fields["id"])
        yield where, fields


def check(schema: vol.Schema, raw: dict[str, Any], where: str) -> dict[str, Any]:
    """``raw`` through ``schema``; every problem in one CatalogError, field by field."""
    try:
        return schema(raw)
    except vol.MultipleInvalid as e:
        raise CatalogError(f"{where}: " + "; ".join(describe(err, schema.schema)
                                                    for err in e.errors)) from e


def describe(err: vol.Invalid, fields: Iterable[Any]) -> str:
    key = str(err.path[0]) if err.path else "?"
    if err.error_message == "extra keys not allowed":
        return f"unknown field '{key}' (known fields: {', '.join(sorted(map(str, fields)))})"
    if err.error_message == "required key not provided":
        return f"missing required field '{key}'"
    return f"field '{key}': {err.error_message}"


# -- compiling ------------------------------------------------------------------------------


def _compile(f: dict[str, Any], where: str, source: str, rank: int) -> Rule:
    try:
        regex = linear_re.compile(f["match"], f["flags"])
    except linear_re.PatternError as e:
        raise CatalogError(f"{where}: field 'match': {e}") from e
    if not regex.anchored():
        raise CatalogError(f"{where}: field 'match': {ANCHOR_HINT}")
    version_text = f["version"]
    if version_text is None and "version" in regex.groupindex:
        version_text = "${version}"
    version = _template(version_text, regex, where, "version")
    os_fields: dict[str, str] = f["os"] or {}
    os_hints = tuple((k, _template(v, regex, where, f"os.{k}")) for k, v in os_fields.items())
    cpe = f["cpe"]
    if cpe is not None:
        _check_cpe(cpe, regex, where)
    return Rule(id=f["id"], service=f["service"], product=f["product"], vendor=f["vendor"],
                regex=regex, probes=f["probe"], version=version, cpe=cpe,
                confidence=f["confidence"], os=os_hints,
                info=_template(f["info"], regex, where, "info"), source=source, rank=rank)


@overload
def _template(text: str, regex: linear_re.Pattern[str], where: str, field: str) -> Template: ...
@overload
def _template(text: str | None, regex: linear_re.Pattern[str], where: str, field: str) -> Template | None: ...
def _template(text: str | None, regex: linear_re.Pattern[str], where: str, field: str) -> Template | None:
    if text is None:
        return None
    t = Template(text)
    for ref, conv in t.refs():
        if ref.isdigit() and not 0 <= int(ref) <= regex.groups:
            raise CatalogError(f"{where}: field '{field}': ${ref} but the regex has only "
                               f"{regex.groups} group(s)")
        if not ref.isdigit() and ref not in regex.groupindex:
            raise CatalogError(f"{where}: field '{field}': ${{{ref}}} names no group of the regex "
                               f"(named groups: {', '.join(regex.groupindex) or 'none'})")
        if conv is not None and conv not in CONVERTERS:
            raise CatalogError(f"{where}: field '{field}': unknown converter ':{conv}' "
                               f"(known: {', '.join(CONVERTERS)})")
    return t


def _check_cpe(cpe: str, regex: linear_re.Pattern[str], where: str) -> None:
    for name in _CPE_FIELD.findall(cpe):
        if name != "version" and name not in regex.groupindex:
            raise CatalogError(f"{where}: field 'cpe': {{{name}}} is neither {{version}} nor a "
                               f"named group of the regex")
    sample = _CPE_FIELD.sub("x", cpe)
    if not CPE23.match(sample):
        raise CatalogError(f"{where}: field 'cpe': {cpe!r} is not a CPE 2.3 formatted string "
                           f"(cpe:2.3:part:vendor:product:version followed by 7 more fields, "
                           f"'*' for any; escape special characters with a backslash)")


def cpe_escape(value: str | None) -> str:
    """``value`` as one component of a CPE 2.3 formatted string: lowercase, spaces as
    ``_``, punctuation other than ``. - _`` quoted with a backslash, ``*`` when empty."""
    if not value:
        return "*"
    out = []
    for ch in value.lower():
        if ch.isascii() and (ch.isalnum() or ch in "._-"):
            out.append(ch)
        elif ch.isspace():
            out.append("_")
        elif ch.isascii() and ch.isprintable():
            out.append("\\" + ch)
    text = "".join(out)[:MAX_CPE_TEXT]
    return text if text.strip("_") else "*"


def render_cpe(template: str, version: str | None, m: linear_re.Match[str]) -> str:
    def sub(t: re.Match[str]) -> str:
        name = t.group(1)
        value = version if name == "version" else m.group(name)
        return cpe_escape(value)

    return _CPE_FIELD.sub(sub, template)


def catalog_option(load: Callable[[list[str]], Any],
                   normalise: Callable[[object], list[str]] = normalise_sources,
                   errors: type[Exception] | tuple[type[Exception], ...] = CatalogError,
                   type_name: str = "builtin | PATH | [builtin/PATH, ...]"
                   ) -> Callable[[object], list[str]]:
    """A config validator for a ``catalog`` option (``builtin | PATH | [list]``): the
    sources are loaded (and so checked) when the DAG is validated, not when it runs."""
    def validate(value: object) -> list[str]:
        try:
            sources = normalise(value)
            load(sources)
        except errors as e:
            raise vol.Invalid(str(e)) from e
        return sources

    validate.__name__ = type_name
    return validate
