"""``webapp_fingerprinter``: the web technologies behind each web port.

Input: ``http_responses`` (``HttpResponse`` records of ``http_scanner``). Each technology
of the catalog (``data/webapps.yaml``, or the files named by ``catalog``; the format is
described at the top of the built-in one) is tried on the response's headers, cookies,
meta tags, title, script sources and body; with ``probe_paths`` the well-known paths its
matchers name (``/wp-login.php``, ``/api/health``…) are fetched too, with GET only, once
per port. A technology is found when any matcher matches; its version comes from the
first matching matcher that shows one; technologies it ``implies`` follow.

Output: ``web_technologies``, one ``WebTechnology`` (host, port, name, version,
categories, CPE 2.3, confidence, evidence) per technology and port, each emitted when
found.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import voluptuous as vol
from pentora_plugins.kit.catalog import BUILTIN, CatalogError, cpe_escape
from pentora_plugins.kit.catalog import catalog_option as shared_catalog_option
from pentora_plugins.kit.inputs import per_item, publish
from pentora_plugins.kit.net.http import Endpoint, follow
from pentora_plugins.kit.records import HttpResponse, WebTechnology, as_response
from pentora_plugins.web._rules import Matcher, Technology, WebCatalog, load_web_catalog
from pentora_plugins.web.http_scanner import fill_from, header_option
from voluptuous import Optional

from pentora import Module, ModuleError, NodeContext
from pentora.schema import Bool, Duration, Fraction, Nullable, PositiveInt, Size

MAX_SCAN = 65536          # characters of a body the patterns read
EVIDENCE_CHARS = 80
IMPLIED_FACTOR = 0.9      # an implied technology is a little less certain than its source
PATH_REDIRECTS = 2

_META = re.compile(r"<meta\s([^>]{1,1000})>", re.I)
_ATTR = re.compile(r"""([\w:-]{1,40})\s{0,4}=\s{0,4}"""
                   r"""(?:"([^"]{0,1000})"|'([^']{0,1000})'|([^\s"'>]{1,1000}))""")
_SCRIPT = re.compile(r"""<script\b[^>]{0,500}?\ssrc\s{0,4}=\s{0,4}["']?([^"'\s>]{1,1000})""", re.I)


@dataclass(frozen=True)
class Page:
    """The parts of a response the matchers read, extracted once."""

    status: int | None
    headers: dict[str, str]
    cookies: tuple[str, ...]
    meta: dict[str, str]
    title: str
    scripts: tuple[str, ...]
    body: str

    @classmethod
    def of(cls, r: HttpResponse) -> Page:
        body = r.body[:MAX_SCAN]
        return cls(status=r.status, headers=r.headers,
                   cookies=tuple(str(c.get("name", "")) for c in r.cookies), meta=meta_tags(body),
                   title=r.title or "", scripts=tuple(m.group(1) for m in _SCRIPT.finditer(body)),
                   body=body)


def meta_tags(body: str) -> dict[str, str]:
    """``<meta name|property|http-equiv=X content=Y>`` as {x: y} (the first of each name)."""
    out: dict[str, str] = {}
    for tag in _META.finditer(body):
        attrs = {m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or ""
                 for m in _ATTR.finditer(tag.group(1))}
        name = attrs.get("name") or attrs.get("property") or attrs.get("http-equiv")
        if name and "content" in attrs:
            out.setdefault(name.lower(), attrs["content"])
    return out


# -- matching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    matcher: Matcher
    version: str | None
    evidence: str


def match_one(m: Matcher, page: Page) -> Hit | None:
    """What ``m`` finds in ``page``, or None."""
    if m.status is not None and page.status != m.status:
        return None
    if m.kind in ("header", "meta"):
        source = page.headers if m.kind == "header" else page.meta
        value = source.get(m.name or "")
        candidates = [] if value is None else [value]
    elif m.kind == "cookie":
        candidates = [c for c in page.cookies if m.regex is not None and m.regex.fullmatch(c)]
        return Hit(m, None, f"cookie {candidates[0]}") if candidates else None
    else:
        candidates = {"html": [page.body], "title": [page.title] if page.title else [],
                      "script": list(page.scripts)}[m.kind]
    for text in candidates:
        if m.regex is None:
            return Hit(m, None, f"{m.describe()}: {_shown(text)}")
        found = m.regex.search(text)
        if found:
            version = m.version.render(found) if m.version else None
            return Hit(m, version, f"{m.describe()}: {_shown(found.group(0))}")
    return None


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EVIDENCE_CHARS else text[:EVIDENCE_CHARS - 3] + "..."


def identify(catalog: WebCatalog, response: HttpResponse,
             extra: dict[str, HttpResponse] | None = None) -> list[WebTechnology]:
    """The technologies found in ``response`` and in ``extra`` (path → response of the
    well-known paths fetched for it), implied ones included, sorted by name."""
    page = Page.of(response)
    pages = {path: Page.of(r) for path, r in (extra or {}).items()}
    found: dict[str, WebTechnology] = {}
    for tech in catalog.technologies:
        hits = [h for h in (_try(m, pages.get(m.path) if m.path else page) for m in tech.matchers)
                if h is not None]
        if hits:
            found[tech.id] = _record(tech, response, hits)
    _add_implied(catalog, response, found)
    return sorted(found.values(), key=WebTechnology.sort_key)


def _try(m: Matcher, page: Page | None) -> Hit | None:
    return None if page is None else match_one(m, page)


def _record(tech: Technology, r: HttpResponse, hits: list[Hit]) -> WebTechnology:
    version = next((h.version for h in hits if h.version), None)
    best = max(h.matcher.confidence for h in hits)
    # each further matcher that agrees adds a little certainty
    confidence = min(0.99, best + 0.03 * (len(hits) - 1))
    return WebTechnology(host=r.host, port=r.port, name=tech.name, version=version,
                         categories=list(tech.categories), cpe=_cpe(tech, version),
                         confidence=round(confidence, 3),
                         evidence="; ".join(h.evidence for h in hits[:3]))


def _cpe(tech: Technology, version: str | None) -> str | None:
    if tech.cpe is None:
        return None
    return tech.cpe.replace("{version}", cpe_escape(version))


def _add_implied(catalog: WebCatalog, r: HttpResponse, found: dict[str, WebTechnology]) -> None:
    pending = list(found)
    while pending:
        source_id = pending.pop()
        source, record = catalog.get(source_id), found[source_id]
        for other_id in source.implies if source else ():
            other = catalog.get(other_id)
            if other is None or other_id in found:
                continue
            found[other_id] = WebTechnology(
                host=r.host, port=r.port, name=other.name, categories=list(other.categories),
                cpe=_cpe(other, None), confidence=round(record.confidence * IMPLIED_FACTOR, 3),
                evidence=f"implied by {record.name}")
            pending.append(other_id)


# -- the module -----------------------------------------------------------------------------


catalog_option = shared_catalog_option(load_web_catalog)
@dataclass(frozen=True)
class PathFetch:
    headers: dict[str, str]
    timeout: float
    max_body: int

    def fetch(self, r: HttpResponse, paths: Iterable[str]) -> dict[str, HttpResponse]:
        """Each path's response on the port of ``r`` (GET, same host and port)."""
        name = urllib.parse.urlsplit(r.url).hostname if r.url else None
        ep = Endpoint(r.host, r.port, r.tls, name if name and name != r.host.lower() else None)
        out = {}
        for path in paths:
            got = follow(ep, "GET", path, self.headers, self.timeout, self.max_body, PATH_REDIRECTS)
            record = HttpResponse(host=r.host, port=r.port, tls=r.tls)
            fill_from(record, got)
            out[path] = record
        return out


class WebappFingerprinter(Module):
    """Web technologies (servers, frameworks, CMSs, admin panels, JS libraries) per port."""

    module_type = "webapp_fingerprinter"
    description = "web technologies, versions and CPEs of each web port, from a YAML catalog"
    requires = ("http_responses",)
    produces = ("web_technologies",)
    config_schema = {
        Optional("catalog", default=BUILTIN,
                 description="technology catalog: builtin, a YAML file, or a list (later files "
                             "override technologies of the same id)"): catalog_option,
        Optional("probe_paths", default=True,
                 description="also GET the well-known paths the catalog names (/wp-login.php...)"):
            Bool(),
        Optional("headers", default={"User-Agent": "Pentora/1.0"},
                 description="request headers of those GETs"): header_option,
        Optional("timeout", default="5s", description="time for one request and its reply"):
            Duration(min=0.001),
        Optional("max_body", default="64KB", description="bytes of a body read"):
            vol.All(Size(), vol.Range(min=1, max=16 * 1024 * 1024)),
        Optional("min_confidence", default=0.0,
                 description="leave out technologies found with less confidence (0-1)"): Fraction(),
        Optional("concurrency", default=None,
                 description="ports examined at once (default: the DAG's max_parallel_targets)"):
            Nullable(PositiveInt()),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        try:
            catalog = load_web_catalog(config["catalog"])
        except CatalogError as e:
            raise ModuleError(str(e), ctx.node_id) from e
        responses = [r for r in map(as_response, ctx.get("http_responses") or ()) if r.status is not None]
        fetcher = PathFetch(config["headers"], config["timeout"], config["max_body"])
        paths = catalog.paths() if config["probe_paths"] else []

        def one(r: HttpResponse) -> list[WebTechnology]:
            techs = [t for t in identify(catalog, r, fetcher.fetch(r, paths))
                     if t.confidence >= config["min_confidence"]]
            for t in techs:
                ctx.emit(t)
            return techs

        found: list[WebTechnology] = []
        for techs in per_item(ctx, one, responses, config["concurrency"]):
            found += techs
        publish(ctx, "web_technologies", found)
