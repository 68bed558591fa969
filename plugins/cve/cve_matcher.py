"""``cve_matcher``: the vulnerability evaluator.

Reads ``service_fingerprints`` (and ``web_technologies``, ``banners``, ``http_responses``
and a credentialed check's ``packages`` when upstream nodes wrote them) and adds a
``Vulnerability`` to ``vulnerabilities`` for every CVE that affects what was found. The
product is the CPE's ``vendor:product`` (or, without a CPE, the product name as the
fingerprint catalog spells it); the version is the fingerprint's (or the CPE's).

Each finding says how it was established (``method``) and how sure that is
(``quality``, 0-100, ``kit.quality``): a distribution's build is judged by the
distribution's own fixed version where the banner shows its package revision, marked
``banner-backport-prone`` (30) where it does not, and an upstream build by the upstream
ranges (``banner``, 80); ``_match`` has the rules. ``min_confidence`` (of the fingerprint)
and ``min_cvss`` drop findings below them; reports decide what quality they count.
"""

from __future__ import annotations

from typing import Any

import gevent
import voluptuous as vol
from pentora_plugins.cve._match import (
    Inventory,
    Subject,
    as_subject,
    evaluate,
    identify,
    inventories,
    product_names,
)
from pentora_plugins.cve.catalog import CatalogError
from pentora_plugins.cve.sources import BUILTIN, FEEDS, load_catalog, normalise_sources
from pentora_plugins.kit.catalog import catalog_option as shared_catalog_option
from pentora_plugins.kit.findings import add_vulnerabilities
from pentora_plugins.kit.records import Vulnerability
from pentora_plugins.kit.records import field_of as _get
from voluptuous import Optional

from pentora import Module, ModuleError, NodeContext
from pentora.schema import Fraction

__all__ = ["CveMatcher", "Inventory", "Subject", "as_subject", "evaluate", "identify",
           "inventories", "product_names"]

YIELD_EVERY = 256
MAX_BANNER_TEXT = 8192


def port_texts(banners: Any, responses: Any) -> dict[tuple[str, int], list[str]]:
    """What each port said, for its distribution build: the banners, and the Server and
    X-Powered-By headers of its HTTP answer."""
    texts: dict[tuple[str, int], list[str]] = {}
    for b in banners or ():
        data = _get(b, "data")
        if isinstance(data, str) and data:
            texts.setdefault((str(_get(b, "host")), _get(b, "port")), []).append(data[:MAX_BANNER_TEXT])
    for r in responses or ():
        headers = _get(r, "headers") or {}
        if not isinstance(headers, dict):
            continue
        for name in ("server", "x-powered-by"):
            value = headers.get(name)
            if isinstance(value, str) and value:
                label = "Server" if name == "server" else "X-Powered-By"
                texts.setdefault((str(_get(r, "host")), _get(r, "port")), []).append(
                    f"{label}: {value[:MAX_BANNER_TEXT]}")
    return texts


# -- the module -----------------------------------------------------------------------------


catalog_option = shared_catalog_option(load_catalog, normalise_sources, CatalogError,
                                       "builtin | feeds | PATH | [...]")


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
        Optional("catalog", default=[BUILTIN, FEEDS],
                 description="vulnerability catalog: builtin, feeds (what `pentora catalog "
                             "update` downloaded; nothing before the first update), an NVD CVE "
                             "JSON 2.0 / OSV / Debian Security Tracker / KEV / YAML file or a "
                             "directory of them, or a list"): catalog_option,
        Optional("min_confidence", default=0.0,
                 description="skip fingerprints below this confidence (0-1)"): Fraction(),
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
        texts = port_texts(ctx.get("banners", None), ctx.get("http_responses", None))
        subjects = [s for s in (as_subject(r, texts.get((str(_get(r, "host")), _get(r, "port")), ()))
                                for r in records) if s is not None]
        found: list[Vulnerability] = []
        ctx.progress(0, len(subjects))
        matches = evaluate(catalog, subjects, min_confidence=config["min_confidence"],
                           min_cvss=config["min_cvss"],
                           packages=inventories(ctx.get("packages", None) or ()))
        for i, v in enumerate(matches, 1):
            found.append(v)
            if i % YIELD_EVERY == 0:
                gevent.sleep(0)
        ctx.progress(len(subjects), len(subjects))
        add_vulnerabilities(ctx, found)
