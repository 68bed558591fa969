"""``cve_matcher``: the vulnerability evaluator.

Reads ``service_fingerprints`` (and ``web_technologies`` when an upstream node wrote
them) and adds a ``Vulnerability`` to ``vulnerabilities`` for every catalog entry whose
affected versions include the product version found. The product is the CPE's
``vendor:product`` (or, without a CPE, the product name as the fingerprint catalog spells
it); the version is the fingerprint's (or the CPE's).

Confidence. A finding starts at the fingerprint's confidence. A *distribution build*
keeps the upstream version in its banner while its package may carry the fix
(``OpenSSH_9.2p1 Debian-2+deb12u3`` is patched against CVE-2024-6387): when the version,
the banner evidence or the fingerprint's OS hint shows such a build, or another service
of the same host shows the host runs such a distribution, the confidence is multiplied
by ``DISTRO_FACTOR`` and the evidence says why. ``min_confidence`` and ``min_cvss`` drop
findings below them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import gevent
import voluptuous as vol
from pentora_plugins.cve.catalog import Catalog, CatalogError, Hit, parse_cpe, product_key
from pentora_plugins.cve.sources import BUILTIN, load_catalog, normalise_sources
from pentora_plugins.cve.version import BACKPORTING, distro_build, is_version
from pentora_plugins.kit.catalog import CatalogError as RulesError
from pentora_plugins.kit.catalog import catalog_option as shared_catalog_option
from pentora_plugins.kit.catalog import load_catalog as load_rules
from pentora_plugins.kit.findings import add_vulnerabilities, severity_of
from pentora_plugins.kit.records import Vulnerability
from pentora_plugins.kit.records import field_of as _get
from voluptuous import Optional

from pentora import Module, ModuleError, NodeContext
from pentora.schema import Fraction

DISTRO_FACTOR = 0.5
YIELD_EVERY = 256


@dataclass(frozen=True)
class Subject:
    """A product version found on a port: from a fingerprint or a web technology."""

    host: str
    port: int | None
    product: str | None
    version: str | None
    cpe: str | None
    confidence: float
    evidence: str
    distro: str | None          # a distribution named by the fingerprint's OS hint


def as_subject(record: Any) -> Subject | None:
    """A fingerprint or web technology (record or dict) as a Subject; None without a host."""
    host = _get(record, "host")
    if not host:
        return None
    os_hint = _get(record, "os") or {}
    confidence = _get(record, "confidence")
    return Subject(host=str(host), port=_get(record, "port"),
                   product=_get(record, "product") or _get(record, "name"),
                   version=_get(record, "version"), cpe=_get(record, "cpe"),
                   confidence=float(confidence) if confidence else 1.0,
                   evidence=" ".join(str(x) for x in (_get(record, "evidence"), _get(record, "info"))
                                     if x),
                   distro=os_hint.get("distribution") if isinstance(os_hint, dict) else None)


@functools.lru_cache(maxsize=1)
def product_names() -> dict[str, tuple[str, str]]:
    """Product names of the built-in fingerprint rules → CPE (vendor, product)."""
    names: dict[str, tuple[str, str]] = {}
    try:
        rules = load_rules().rules
    except RulesError:
        return names
    for rule in rules:
        parsed = parse_cpe(rule.cpe) if rule.product and rule.cpe else None
        if parsed and rule.product:
            names.setdefault(rule.product.lower(), (parsed[0], parsed[1]))
    return names


def identify(subject: Subject) -> tuple[str, str, str] | None:
    """(vendor, product, version) to look up, or None when the version is unknown."""
    parsed = parse_cpe(subject.cpe) if subject.cpe else None
    version = subject.version or (parsed[2] if parsed else None)
    if not is_version(version):
        return None
    if parsed:
        return parsed[0], parsed[1], str(version)
    known = product_names().get((subject.product or "").lower())
    if known:
        return known[0], known[1], str(version)
    if subject.product:
        return "*", subject.product.lower().replace(" ", "_"), str(version)
    return None


def host_distros(subjects: Iterable[Subject], profiles: Iterable[Any] = ()) -> dict[str, str]:
    """Per host, why it looks like a backporting distribution ('Debian, from ...')."""
    found: dict[str, str] = {}
    for s in subjects:
        build = distro_build([s.version, s.evidence])
        name = build[0] if build else (s.distro if s.distro in BACKPORTING else None)
        if name and s.host not in found:
            what = f"{s.product} on port {s.port}" if s.product else f"port {s.port}"
            found[s.host] = f"{name}, from {what}"
    for p in profiles:
        os_hint = _get(p, "os") or {}
        dist = os_hint.get("distribution") if isinstance(os_hint, dict) else None
        if dist in BACKPORTING and _get(p, "host") not in found:
            found[str(_get(p, "host"))] = f"{dist}, from the asset profile"
    return found


def distro_reason(subject: Subject, hosts: dict[str, str]) -> str | None:
    build = distro_build([subject.version, subject.evidence])
    if build:
        return (f"{build[0]} build ({build[1]}): the distribution may have backported the fix "
                f"without changing the upstream version; check its security tracker")
    if subject.distro in BACKPORTING:
        return (f"{subject.distro} build (per the banner): the distribution may have backported "
                f"the fix; check its security tracker")
    if subject.host in hosts:
        return (f"the host runs {hosts[subject.host]}: this is likely its package, which may "
                f"carry a backported fix; check its security tracker")
    return None


def finding(subject: Subject, head: str, hit: Hit, tail: str) -> Vulnerability:
    """The record of one hit; ``head`` names the product version, ``tail`` the confidence."""
    entry = hit.entry
    return Vulnerability(host=subject.host, port=subject.port, id=entry.id,
                         title=entry.title or f"{subject.product or entry.product} {entry.id}",
                         severity=severity_of(entry.cvss) if entry.cvss is not None
                         else entry.severity or "info",
                         cvss=entry.cvss, evidence=f"{head}{hit.text}{tail}",
                         references=list(entry.references), source=entry.source)


def evaluate(catalog: Catalog, subjects: Iterable[Subject], *, min_confidence: float = 0.0,
             min_cvss: float = 0.0, hosts: dict[str, str] | None = None) -> Iterator[Vulnerability]:
    """The findings of every subject, in subject order (entries by id within one)."""
    memo: dict[tuple[str, str, str], list[Hit]] = {}
    for subject in subjects:
        what = identify(subject)
        if what is None:
            continue
        hits = memo.get(what)
        if hits is None:
            hits = memo[what] = catalog.find(*what)
        if not hits:
            continue
        reason = distro_reason(subject, hosts or {})
        confidence = round(subject.confidence * (DISTRO_FACTOR if reason else 1.0), 3)
        if confidence < min_confidence:
            continue
        head = f"{subject.product or what[1]} {what[2]} ({product_key(what[0], what[1])}) "
        tail = f"; confidence {confidence:.2f}" + (f" (lowered: {reason})" if reason else "")
        for hit in hits:
            cvss = hit.entry.cvss
            if min_cvss > 0 and (cvss is None or cvss < min_cvss):
                continue
            yield finding(subject, head, hit, tail)


# -- the module -----------------------------------------------------------------------------


catalog_option = shared_catalog_option(load_catalog, normalise_sources, CatalogError)


def score_option(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 10:
        raise vol.Invalid(f"expected a CVSS score from 0 to 10, got {value!r}")
    return float(value)


score_option.__name__ = "CVSS score 0-10"


class CveMatcher(Module):
    """Matches fingerprinted product versions against a vulnerability catalog."""

    module_type = "cve_matcher"
    description = "known vulnerabilities (CVEs) of the product versions found"
    requires = ("service_fingerprints",)
    produces = ("vulnerabilities",)
    config_schema = {
        Optional("catalog", default=BUILTIN,
                 description="vulnerability catalog: builtin, an NVD CVE JSON 2.0 / OSV / YAML "
                             "file or OSV directory, or a list of them"): catalog_option,
        Optional("min_confidence", default=0.0,
                 description="drop findings below this confidence (0-1); distribution builds "
                             "get half their fingerprint's"): Fraction(),
        Optional("min_cvss", default=0.0,
                 description="drop findings whose CVSS base score is below this (0-10)"):
            score_option,
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        try:
            catalog = load_catalog(config["catalog"])
        except CatalogError as e:
            raise ModuleError(str(e), ctx.node_id) from e
        records = [*(ctx.get("service_fingerprints") or ()), *(ctx.get("web_technologies", None) or ())]
        subjects = [s for s in map(as_subject, records) if s is not None]
        hosts = host_distros(subjects, ctx.get("asset_profiles", None) or ())
        found: list[Vulnerability] = []
        matches = evaluate(catalog, subjects, min_confidence=config["min_confidence"],
                           min_cvss=config["min_cvss"], hosts=hosts)
        for i, v in enumerate(matches, 1):
            found.append(v)
            if i % YIELD_EVERY == 0:
                gevent.sleep(0)
        ctx.progress(len(subjects), len(subjects))
        add_vulnerabilities(ctx, found)
