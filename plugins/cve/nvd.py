"""NVD CVE JSON 2.0 files (the API's answer, and the feed files) → catalog entries.

Each ``vulnerabilities[].cve`` gives one entry per product named by a *vulnerable*
``configurations[].nodes[].cpeMatch[]`` criterion: a CPE with a version is that exact
version, a CPE with ``*`` takes the range of ``versionStartIncluding`` /
``versionStartExcluding`` / ``versionEndIncluding`` / ``versionEndExcluding`` (no bound at
all: every version). Non-vulnerable criteria (the platform of an AND node) are context,
not products. The score is the first of ``metrics.cvssMetricV31``, ``V30``, ``V40``,
``V2`` (the ``Primary`` one where several are given). Rejected CVEs are skipped.
"""

from __future__ import annotations

import re
from typing import Any

from pentora_plugins.cve.catalog import Entry, Range, parse_cpe, product_key
from pentora_plugins.cve.doc import Doc

METRICS = ("cvssMetricV31", "cvssMetricV30", "cvssMetricV40", "cvssMetricV2")
BOUNDS = ("versionStartIncluding", "versionStartExcluding", "versionEndIncluding",
          "versionEndExcluding")
TITLE_CHARS = 160
_CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$")


def is_nvd(data: Any) -> bool:
    return isinstance(data, dict) and "vulnerabilities" in data


def nvd_entries(data: dict[str, Any], doc: Doc, source: str) -> list[Entry]:
    items = doc.field(data, "vulnerabilities", "$", list)
    out: list[Entry] = []
    for i, item in enumerate(items):
        path = f"$.vulnerabilities[{i}]"
        cve = doc.field(doc.need(item, path, dict), "cve", path, dict)
        out.extend(_cve_entries(cve, f"{path}.cve", doc, source))
    return out


def _cve_entries(cve: dict[str, Any], path: str, doc: Doc, source: str) -> list[Entry]:
    ident = doc.field(cve, "id", path, str)
    if not _CVE_ID.match(ident):
        doc.fail(f"{path}.id", f"expected a CVE id such as CVE-2024-6387, got {ident!r}")
    if str(cve.get("vulnStatus", "")).lower() == "rejected":
        return []
    products = _products(doc.field(cve, "configurations", path, list, required=False, default=[]),
                         f"{path}.configurations", doc)
    if not products:
        return []
    cvss = _score(doc.field(cve, "metrics", path, dict, required=False, default={}),
                  f"{path}.metrics", doc)
    title = _title(doc.field(cve, "descriptions", path, list, required=False, default=[]),
                   f"{path}.descriptions", doc)
    refs = []
    for i, ref in enumerate(doc.field(cve, "references", path, list, required=False, default=[])):
        where = f"{path}.references[{i}]"
        refs.append(doc.field(doc.need(ref, where, dict), "url", where, str))
    refs.insert(0, f"https://nvd.nist.gov/vuln/detail/{ident}")
    return [Entry(id=ident, product=key, title=title, cvss=cvss, ranges=tuple(ranges),
                  versions=tuple(versions), references=tuple(dict.fromkeys(refs)), source=source)
            for key, (ranges, versions) in sorted(products.items())]


def _products(configs: list[Any], path: str, doc: Doc) -> dict[str, tuple[list[Range], list[str]]]:
    found: dict[str, tuple[list[Range], list[str]]] = {}
    for c, config in enumerate(configs):
        cpath = f"{path}[{c}]"
        nodes = doc.field(doc.need(config, cpath, dict), "nodes", cpath, list)
        for n, node in enumerate(nodes):
            npath = f"{cpath}.nodes[{n}]"
            doc.need(node, npath, dict)
            if doc.field(node, "negate", npath, bool, required=False, default=False):
                continue  # "not running on X": no product of its own
            for m, match in enumerate(doc.field(node, "cpeMatch", npath, list)):
                _add_match(match, f"{npath}.cpeMatch[{m}]", doc, found)
    return found


def _add_match(match: Any, path: str, doc: Doc,
               found: dict[str, tuple[list[Range], list[str]]]) -> None:
    doc.need(match, path, dict)
    vulnerable = doc.field(match, "vulnerable", path, bool)
    criteria = doc.field(match, "criteria", path, str)
    parsed = parse_cpe(criteria)
    if parsed is None:
        doc.fail(f"{path}.criteria", f"expected a CPE 2.3 string such as "
                                     f"cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*, got {criteria!r}")
    bounds = {k: doc.field(match, k, path, str, required=False) for k in BOUNDS}
    if not vulnerable:
        return
    vendor, product, version = parsed
    ranges, versions = found.setdefault(product_key(vendor, product), ([], []))
    if version is not None:
        versions.append(version)
        return
    start = bounds["versionStartIncluding"] or bounds["versionStartExcluding"]
    end = bounds["versionEndIncluding"] or bounds["versionEndExcluding"]
    ranges.append(Range(start=start, start_inclusive=bounds["versionStartExcluding"] is None,
                        end=end, end_inclusive=bounds["versionEndIncluding"] is not None))


def _score(metrics: dict[str, Any], path: str, doc: Doc) -> float | None:
    for name in METRICS:
        items = doc.field(metrics, name, path, list, required=False, default=[])
        if not items:
            continue
        ranked = sorted(range(len(items)), key=lambda i: (not isinstance(items[i], dict)
                                                          or items[i].get("type") != "Primary", i))
        where = f"{path}.{name}[{ranked[0]}]"
        data = doc.field(doc.need(items[ranked[0]], where, dict), "cvssData", where, dict)
        score = doc.field(data, "baseScore", f"{where}.cvssData", int, float)
        if not 0 <= score <= 10:
            doc.fail(f"{where}.cvssData.baseScore", f"expected a score 0-10, got {score}")
        return float(score)
    return None


def _title(descriptions: list[Any], path: str, doc: Doc) -> str:
    texts: dict[str, str] = {}
    for i, d in enumerate(descriptions):
        where = f"{path}[{i}]"
        doc.need(d, where, dict)
        texts.setdefault(doc.field(d, "lang", where, str), doc.field(d, "value", where, str))
    text = " ".join((texts.get("en") or next(iter(texts.values()), "")).split())
    return text if len(text) <= TITLE_CHARS else text[:TITLE_CHARS - 3].rstrip() + "..."
