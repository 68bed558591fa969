"""Rule catalogs of ``webapp_fingerprinter``: reading, checking and compiling YAML.

A catalog holds ``technologies:``, a list of mappings (``data/webapps.yaml`` documents
the fields at its top). Each technology has matchers; it is found when any matcher
matches. Patterns are compiled once by ``kit.linear_re`` (RE2: matching time linear in
the page, whatever the pattern), case-insensitive, and searched (not anchored). Loading
raises ``CatalogError`` naming the file, the technology, the matcher and the field at
fault.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import voluptuous as vol
from pentora_plugins.kit import linear_re
from pentora_plugins.kit.catalog import (
    BUILTIN,
    CONVERTERS,
    CPE23,
    CatalogError,
    Template,
    check,
    nonempty,
    read_yaml,
    stamp_sources,
    validated,
)

from pentora.schema import Fraction, Nullable

KINDS = ("header", "cookie", "html", "meta", "title", "script")
NAMED_KINDS = ("header", "meta")  # these name a header / meta tag; ``pattern`` tests its value
_ID = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")
_CPE_FIELD = re.compile(r"\{version\}")


@dataclass(frozen=True)
class Matcher:
    """One way to recognise a technology: a pattern over one part of a response (of the
    scanned page, or of ``path`` fetched for it)."""

    kind: str
    name: str | None               # header or meta name (lower case) for those kinds
    regex: linear_re.Pattern[str] | None  # None: a header/meta that is merely present
    path: str | None
    status: int | None
    confidence: float
    version: Template | None

    def describe(self) -> str:
        where = f"{self.kind} {self.name}" if self.name else self.kind
        return f"{where} on {self.path}" if self.path else where


@dataclass(frozen=True)
class Technology:
    id: str
    name: str
    categories: tuple[str, ...]
    cpe: str | None
    implies: tuple[str, ...]
    matchers: tuple[Matcher, ...]


@dataclass(frozen=True)
class WebCatalog:
    technologies: tuple[Technology, ...]
    sources: tuple[str, ...]

    def paths(self) -> list[str]:
        """The well-known paths some matcher looks at, each once, sorted."""
        return sorted({m.path for t in self.technologies for m in t.matchers if m.path})

    def get(self, tech_id: str) -> Technology | None:
        return next((t for t in self.technologies if t.id == tech_id), None)


# -- schema ---------------------------------------------------------------------------------


def _path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
        raise vol.Invalid(f"expected a path starting with '/' and without spaces, got {value!r}")
    return value


MATCHER_SCHEMA = vol.Schema({
    **{vol.Optional(k): nonempty for k in KINDS},
    vol.Optional("pattern"): nonempty,
    vol.Optional("path"): _path,
    vol.Optional("status"): vol.All(int, vol.Range(min=100, max=599)),
    vol.Optional("confidence"): Fraction(),
    vol.Optional("version"): nonempty,
})
TECH_SCHEMA = vol.Schema({
    vol.Required("id"): vol.All(nonempty, vol.Match(_ID, msg="expected lowercase letters, digits, "
                                                          "'.', '_', '+' or '-'")),
    vol.Required("name"): nonempty,
    vol.Required("categories"): vol.All([nonempty], vol.Length(min=1)),
    vol.Optional("cpe", default=None): Nullable(nonempty),
    vol.Optional("implies", default=[]): [nonempty],
    vol.Optional("confidence", default=0.9): Fraction(),
    vol.Required("match"): vol.All(list, vol.Length(min=1, msg="expected at least one matcher")),
    vol.Optional("enabled", default=True): bool,
    vol.Optional("description", default=None): Nullable(nonempty),
})


# -- loading --------------------------------------------------------------------------------


def builtin_path() -> Path:
    return Path(str(resources.files("pentora_plugins").joinpath("data", "webapps.yaml")))


def load_web_catalog(sources: str | Iterable[str] = (BUILTIN,)) -> WebCatalog:
    """The technologies of ``sources`` in order; a later file's technology with an
    ``id`` already defined replaces it (``enabled: false`` removes it)."""
    return _load(stamp_sources(sources, builtin_path(), "web technology catalog"))


@functools.lru_cache(maxsize=8)
def _load(stamped: tuple[tuple[str, int, int], ...]) -> WebCatalog:
    merged: dict[str, Technology] = {}
    for source, _, _ in stamped:
        for tech, enabled in _load_file(source):
            merged.pop(tech.id, None)
            if enabled:
                merged[tech.id] = tech
    return WebCatalog(tuple(merged.values()), tuple(s for s, _, _ in stamped))


def _load_file(source: str) -> list[tuple[Technology, bool]]:
    path = builtin_path() if source == BUILTIN else Path(source)
    name = f"builtin web catalog {path}" if source == BUILTIN else str(path)
    doc = read_yaml(path, name)
    if not isinstance(doc, dict) or set(doc) != {"technologies"} or not isinstance(
            doc["technologies"], list):
        raise CatalogError(f"{name}: expected one top-level field 'technologies:' holding a list")
    out = [(_technology(fields, where), fields["enabled"])
           for where, fields in validated(doc["technologies"], "technology", TECH_SCHEMA, name)]
    _check_implies([t for t, _ in out], name)
    return out


def _check_implies(techs: list[Technology], name: str) -> None:
    known = {t.id for t in techs}
    for t in techs:
        for other in t.implies:
            if other not in known:
                raise CatalogError(f"{name}: technology '{t.id}': field 'implies': no technology "
                                   f"'{other}' in this file")


# -- compiling ------------------------------------------------------------------------------


def _technology(f: dict[str, Any], where: str) -> Technology:
    cpe = f["cpe"]
    if cpe is not None and not CPE23.match(_CPE_FIELD.sub("x", cpe)):
        raise CatalogError(f"{where}: field 'cpe': {cpe!r} is not a CPE 2.3 formatted string "
                           f"(cpe:2.3:part:vendor:product:{{version}} and 7 more fields, '*' for any)")
    matchers = tuple(_matcher(m, f"{where}: matcher #{k}", f["confidence"])
                     for k, m in enumerate(f["match"], 1))
    return Technology(id=f["id"], name=f["name"], categories=tuple(f["categories"]), cpe=cpe,
                      implies=tuple(f["implies"]), matchers=matchers)


def _matcher(raw: object, where: str, confidence: float) -> Matcher:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected a mapping such as {{header: server, pattern: '...'}}, "
                           f"got {raw!r}")
    m = check(MATCHER_SCHEMA, raw, where)
    kinds = [k for k in KINDS if k in m]
    if len(kinds) != 1:
        raise CatalogError(f"{where}: needs exactly one of {', '.join(KINDS)}, got "
                           f"{', '.join(kinds) or 'none'}")
    kind = kinds[0]
    if "pattern" in m and kind not in NAMED_KINDS:
        raise CatalogError(f"{where}: field 'pattern' goes with header or meta; for {kind} the "
                           f"pattern is the value of '{kind}' itself")
    if "status" in m and "path" not in m:
        raise CatalogError(f"{where}: field 'status' needs 'path' (the status of that path's reply)")
    text = m.get("pattern") if kind in NAMED_KINDS else m[kind]
    field = "pattern" if kind in NAMED_KINDS else kind
    regex = _regex(text, f"{where}: field '{field}'") if text is not None else None
    version_text = m.get("version")
    if version_text is None and regex is not None and "version" in regex.groupindex:
        version_text = "${version}"
    return Matcher(kind=kind, name=m[kind].lower() if kind in NAMED_KINDS else None, regex=regex,
                   path=m.get("path"), status=m.get("status"),
                   confidence=m.get("confidence", confidence),
                   version=_version(version_text, regex, where))


def _regex(text: str, where: str) -> linear_re.Pattern[str]:
    try:
        return linear_re.compile(text, "i")
    except linear_re.PatternError as e:
        raise CatalogError(f"{where}: {text!r}: {e}") from e


def _version(text: str | None, regex: linear_re.Pattern[str] | None, where: str) -> Template | None:
    if text is None:
        return None
    if regex is None:
        raise CatalogError(f"{where}: field 'version' needs a pattern to take groups from")
    t = Template(text)
    for ref, conv in t.refs():
        if (ref.isdigit() and int(ref) > regex.groups) or (
                not ref.isdigit() and ref not in regex.groupindex):
            raise CatalogError(f"{where}: field 'version': {ref!r} names no group of the pattern")
        if conv is not None and conv not in CONVERTERS:
            raise CatalogError(f"{where}: field 'version': unknown converter ':{conv}' "
                               f"(known: {', '.join(CONVERTERS)})")
    return t
