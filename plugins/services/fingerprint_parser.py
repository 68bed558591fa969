"""``fingerprint_parser``: names the service, product and version behind each port.

It reads the ``banners`` key (``Banner`` records: what a service sent, per probe) and
writes ``service_fingerprints``: one ``ServiceFingerprint`` per (host, protocol, port)
that has banners. Every rule of the catalog is tried on the first ``max_scan``
characters of every banner of the port; the fingerprint is the best match over them
all (highest confidence, then a named product, then a version; on a tie the rule of the
later catalog). When the winner has no version but another match for the same product
has one, the version (and CPE) come from that match. A port whose banners match no
rule is reported as service ``unknown`` unless ``report_unknown`` is off.

Rules live in YAML catalogs (``data/fingerprints.yaml`` is the built-in one; the format
is described at its top). ``catalog`` names ``builtin``, a file, or a list of both: a
rule in a later file replaces the earlier rule of the same ``id``. Catalogs are loaded
and checked when the DAG is validated, so a bad user file is reported before the scan,
naming the file, the rule and the field.

The record has no room for the rules' ``os`` and ``info`` hints; ``match_port`` returns
them on the ``Match`` for modules (an asset profiler) that want them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import gevent
from pentora_plugins.kit import linear_re
from pentora_plugins.kit.catalog import (
    BUILTIN,
    Catalog,
    CatalogError,
    Rule,
    load_catalog,
    render_cpe,
)
from pentora_plugins.kit.catalog import catalog_option as shared_catalog_option
from pentora_plugins.kit.inputs import publish
from pentora_plugins.kit.records import Banner, ServiceFingerprint, address_key
from voluptuous import Optional

from pentora import Module, ModuleError, NodeContext
from pentora.schema import Bool, Fraction, PositiveInt

MAX_SCAN = 8192       # characters of a banner the rules look at
EVIDENCE_CHARS = 80   # of the matched text kept as evidence
YIELD_EVERY = 64      # ports between two yields to the gevent hub

# Distribution names (lowercase, as banners spell them) → (OS family, distribution).
_DISTRIBUTIONS = {
    "debian": ("Linux", "Debian"), "deb": ("Linux", "Debian"), "debian/gnu": ("Linux", "Debian"),
    "ubuntu": ("Linux", "Ubuntu"), "raspbian": ("Linux", "Raspbian"),
    "centos": ("Linux", "CentOS"), "red hat": ("Linux", "Red Hat"), "redhat": ("Linux", "Red Hat"),
    "red hat enterprise linux": ("Linux", "Red Hat"), "rhel": ("Linux", "Red Hat"),
    "fedora": ("Linux", "Fedora"), "alpine": ("Linux", "Alpine"), "suse": ("Linux", "SUSE"),
    "opensuse": ("Linux", "openSUSE"), "amazon linux": ("Linux", "Amazon Linux"),
    "freebsd": ("FreeBSD", None), "openbsd": ("OpenBSD", None), "netbsd": ("NetBSD", None),
    "win32": ("Windows", None), "win64": ("Windows", None), "windows": ("Windows", None),
}


@dataclass(frozen=True)
class Match:
    """What one rule found in one banner, with the hints the record cannot carry."""

    rule: Rule
    banner: Banner
    version: str | None
    cpe: str | None
    evidence: str
    os: dict[str, str] | None
    info: str | None
    order: int = 0  # catalog position of the rule: the earlier rule wins a tie
    found: linear_re.Match[str] | None = field(default=None, repr=False, compare=False)

    @property
    def service(self) -> str:
        return self.rule.service

    @property
    def product(self) -> str | None:
        return self.rule.product

    @property
    def confidence(self) -> float:
        return self.rule.confidence

    def rank(self) -> tuple[float, bool, bool, int, int]:
        return (self.confidence, self.product is not None, self.version is not None,
                self.rule.rank, -self.order)

    def to_record(self) -> ServiceFingerprint:
        b = self.banner
        return ServiceFingerprint(host=b.host, port=b.port, protocol=b.protocol,
                                  service=self.service, product=self.product,
                                  version=self.version, cpe=self.cpe,
                                  confidence=round(self.confidence, 3), tls=b.tls,
                                  evidence=self.evidence, os=self.os, info=self.info)


def match_banner(catalog: Catalog, banner: Banner, max_scan: int = MAX_SCAN) -> Iterator[Match]:
    """Every rule of ``catalog`` that matches ``banner`` (its first ``max_scan`` chars)."""
    text = banner.data[:max_scan] if banner.data else ""
    if not text:
        return
    for i, rule in enumerate(catalog.rules_for(banner.probe)):
        m = rule.regex.search(text)
        if m is None:
            continue
        version = rule.version.render(m) if rule.version else None
        yield Match(rule=rule, banner=banner, version=version,
                    cpe=render_cpe(rule.cpe, version, m) if rule.cpe else None,
                    evidence=_evidence(rule, banner, m.group(0)), os=_os_hint(rule, m),
                    info=rule.info.render(m) if rule.info else None, order=i, found=m)


def match_port(catalog: Catalog, banners: Iterable[Banner], min_confidence: float = 0.0,
               max_scan: int = MAX_SCAN) -> Match | None:
    """The best match over all banners of one port, or None."""
    found = [m for b in banners for m in match_banner(catalog, b, max_scan)
             if m.confidence >= min_confidence]
    if not found:
        return None
    best = max(found, key=Match.rank)
    if best.version is None and best.product is not None:
        donor = max((m for m in found if m.version and _same_product(m, best)),
                    key=Match.rank, default=None)
        if donor is not None:
            best = _with_version(best, donor)
    return best


def fingerprint_port(catalog: Catalog, banners: list[Banner], min_confidence: float = 0.0,
                     max_scan: int = MAX_SCAN, report_unknown: bool = True
                     ) -> ServiceFingerprint | None:
    """The fingerprint of one port from its banners (service ``unknown`` when no rule
    matches and ``report_unknown`` is set, else None)."""
    best = match_port(catalog, banners, min_confidence, max_scan)
    if best is not None:
        record = best.to_record()
        # The port speaks TLS when any banner came through TLS, even if the best match is
        # a plain-text one (nginx's "plain HTTP request was sent to HTTPS port").
        record.tls = record.tls or any(b.tls for b in banners)
        return record
    if not report_unknown or not banners:
        return None
    b = banners[0]
    return ServiceFingerprint(host=b.host, port=b.port, protocol=b.protocol, service="unknown",
                              confidence=0.0, tls=any(x.tls for x in banners),
                              evidence=f"no rule matched {len(banners)} banner(s)")


def fingerprint_banners(catalog: Catalog, banners: Iterable[Banner | dict[str, Any]],
                        min_confidence: float = 0.0, max_scan: int = MAX_SCAN,
                        report_unknown: bool = True) -> Iterator[ServiceFingerprint]:
    """A ``ServiceFingerprint`` per (host, protocol, port) of ``banners``, in sorted order."""
    for group in group_banners(as_banner(b) for b in banners):
        record = fingerprint_port(catalog, group, min_confidence, max_scan, report_unknown)
        if record is not None:
            yield record


def group_banners(banners: Iterable[Banner]) -> list[list[Banner]]:
    """Banners grouped per (host, protocol, port), groups and members sorted."""
    groups: dict[tuple[str, str, int], list[Banner]] = {}
    for b in banners:
        groups.setdefault((b.host, b.protocol, b.port), []).append(b)
    ordered = sorted(groups.items(), key=lambda kv: (address_key(kv[0][0]), kv[0][1], kv[0][2]))
    return [sorted(g, key=lambda b: (b.probe, b.tls, b.data)) for _, g in ordered]


_BANNER_FIELDS = {f.name for f in fields(Banner)}


def as_banner(item: Banner | dict[str, Any]) -> Banner:
    if isinstance(item, Banner):
        return item
    if isinstance(item, dict):
        try:
            return Banner(**{k: v for k, v in item.items() if k in _BANNER_FIELDS})
        except TypeError as e:
            raise ModuleError(f"banner {item!r} lacks host or port: {e}") from e
    raise ModuleError(f"expected Banner records in 'banners', got {type(item).__name__}")


# -- details of a match ---------------------------------------------------------------------


def _same_product(a: Match, b: Match) -> bool:
    return (a.service == b.service and a.product is not None and b.product is not None
            and a.product.lower() == b.product.lower())


def _with_version(best: Match, donor: Match) -> Match:
    cpe = best.cpe
    if best.rule.cpe and best.found is not None:
        cpe = render_cpe(best.rule.cpe, donor.version, best.found)
    return Match(rule=best.rule, banner=best.banner, version=donor.version, cpe=cpe,
                 evidence=f"{best.evidence}; version from {donor.evidence}",
                 os=best.os or donor.os, info=best.info, order=best.order, found=best.found)


def _evidence(rule: Rule, banner: Banner, text: str) -> str:
    text = text.rstrip("\r\n\t ")
    shown = text if len(text) <= EVIDENCE_CHARS else (
        text[:EVIDENCE_CHARS // 2] + "..." + text[-(EVIDENCE_CHARS // 2 - 3):])
    quoted = shown.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return f'{rule.id} [{banner.probe or "?"}]: "{quoted}"'


def _os_hint(rule: Rule, m: Any) -> dict[str, str] | None:
    if not rule.os:
        return None
    values = {k: t.render(m) for k, t in rule.os}
    family, dist = values.get("family"), values.get("distribution")
    if dist:
        known = _DISTRIBUTIONS.get(dist.lower())
        if known is None:
            dist = None
        else:
            family, dist = family or known[0], known[1]
    if not family:
        return None
    out = {"family": family}
    release = values.get("release")
    if dist:
        out["distribution"] = dist
        if release:
            out["release"] = release
    return out


# -- the module -----------------------------------------------------------------------------


catalog_option = shared_catalog_option(load_catalog)


class FingerprintParser(Module):
    """Names the service, product and version behind each port from its banners."""

    module_type = "fingerprint_parser"
    description = "service, product, version and CPE of each port, from its banners"
    requires = ("banners",)
    produces = ("service_fingerprints",)
    config_schema = {
        Optional("catalog", default=BUILTIN,
                 description="rule catalog: builtin, a YAML file, or a list (later files "
                             "override rules of the same id)"): catalog_option,
        Optional("min_confidence", default=0.0,
                 description="ignore rule matches below this confidence (0-1)"): Fraction(),
        Optional("report_unknown", default=True,
                 description="report ports whose banners match no rule as service "
                             "'unknown'"): Bool(),
        Optional("max_scan", default=MAX_SCAN,
                 description="characters of each banner the rules read"): PositiveInt(),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        try:
            catalog = load_catalog(config["catalog"])
        except CatalogError as e:
            raise ModuleError(str(e), ctx.node_id) from e
        groups = group_banners(as_banner(b) for b in ctx.get("banners") or ())
        out: list[ServiceFingerprint] = ctx.restored_records()
        done = ctx.done_items()  # ports a killed run of this scan finished (resume)
        for i, group in enumerate(groups, 1):
            item = f"{group[0].host}/{group[0].protocol}/{group[0].port}"
            if item in done:
                continue
            record = fingerprint_port(catalog, group, config["min_confidence"],
                                      config["max_scan"], config["report_unknown"])
            if record is not None:
                ctx.emit(record)
                out.append(record)
            ctx.checkpoint(item, [record] if record is not None else [])
            if i % YIELD_EVERY == 0:
                ctx.progress(i, len(groups))
                gevent.sleep(0)
        ctx.progress(len(groups), len(groups))
        publish(ctx, "service_fingerprints", out)
