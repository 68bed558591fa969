"""OSV advisories (https://ossf.github.io/osv-schema/) → catalog entries.

One entry per ``affected[]`` package. ``ranges[].events`` are read in order: each
``introduced`` opens an affected range (``"0"``: from the first version), closed by the
next ``fixed`` (exclusive) or ``last_affected`` (inclusive), or open when none follows;
``limit`` events are ignored (they bound a git walk). ``GIT`` ranges name commits, not
versions, and are skipped; ``versions`` lists exact affected versions. Packages are
indexed by name (``*:redis``) and meet a fingerprint through the product of its CPE; a
name written ``vendor:product`` is indexed as that CPE key. The id is the advisory's CVE
alias where it has one. A ``CVSS_V3`` severity vector is scored; otherwise the qualitative
``database_specific.severity`` (``HIGH``, ``MODERATE``...) gives the severity.
"""

from __future__ import annotations

from typing import Any

from pentora_plugins.cve.catalog import ANY_VENDOR, Entry, Range, product_key
from pentora_plugins.cve.doc import Doc
from pentora_plugins.cve.nvd import TITLE_CHARS
from pentora_plugins.kit.cvss import CvssError, base_score

_LABELS = {"critical": "critical", "high": "high", "moderate": "medium", "medium": "medium",
           "low": "low"}


def is_osv(data: Any) -> bool:
    if isinstance(data, list):
        return bool(data) and all(isinstance(d, dict) and "id" in d for d in data)
    return isinstance(data, dict) and "id" in data and ("affected" in data or "schema_version" in data)


def osv_entries(data: Any, doc: Doc, source: str) -> list[Entry]:
    if isinstance(data, list):
        return [e for i, item in enumerate(data) for e in _advisory(item, f"$[{i}]", doc, source)]
    return _advisory(data, "$", doc, source)


def _advisory(adv: Any, path: str, doc: Doc, source: str) -> list[Entry]:
    doc.need(adv, path, dict)
    ident = doc.field(adv, "id", path, str)
    if adv.get("withdrawn"):
        return []
    aliases = [doc.need(a, f"{path}.aliases[{i}]", str)
               for i, a in enumerate(doc.field(adv, "aliases", path, list, required=False,
                                               default=[]))]
    cve = next((a for a in aliases if a.startswith("CVE-")), None)
    refs = [f"https://osv.dev/vulnerability/{ident}"]
    for i, ref in enumerate(doc.field(adv, "references", path, list, required=False, default=[])):
        where = f"{path}.references[{i}]"
        refs.append(doc.field(doc.need(ref, where, dict), "url", where, str))
    text = doc.field(adv, "summary", path, str, required=False) or \
        doc.field(adv, "details", path, str, required=False, default="")
    title = " ".join(text.split())
    title = title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS - 3].rstrip() + "..."
    cvss, label = _severity(adv, path, doc)
    out = []
    for i, affected in enumerate(doc.field(adv, "affected", path, list)):
        where = f"{path}.affected[{i}]"
        key, ranges, versions = _affected(affected, where, doc)
        a_cvss, a_label = _severity(affected, where, doc)
        out.append(Entry(id=cve or ident, product=key, title=title,
                         cvss=a_cvss if a_cvss is not None else cvss, severity=a_label or label,
                         ranges=tuple(ranges), versions=tuple(versions),
                         references=tuple(dict.fromkeys(refs)), source=source))
    return out


def _affected(affected: Any, path: str, doc: Doc) -> tuple[str, list[Range], list[str]]:
    doc.need(affected, path, dict)
    package = doc.field(affected, "package", path, dict)
    name = doc.field(package, "name", f"{path}.package", str).strip()
    if not name:
        doc.fail(f"{path}.package.name", "expected a package name, got an empty string")
    vendor, _, product = name.rpartition(":") if ":" in name else (ANY_VENDOR, "", name)
    key = product_key(vendor, product) if vendor != ANY_VENDOR else f"{ANY_VENDOR}:{name.lower()}"
    ranges: list[Range] = []
    for r, raw in enumerate(doc.field(affected, "ranges", path, list, required=False, default=[])):
        rpath = f"{path}.ranges[{r}]"
        doc.need(raw, rpath, dict)
        kind = doc.field(raw, "type", rpath, str)
        if kind not in ("ECOSYSTEM", "SEMVER", "GIT"):
            doc.fail(f"{rpath}.type", f"expected ECOSYSTEM, SEMVER or GIT, got {kind!r}")
        events = doc.field(raw, "events", rpath, list)
        if kind != "GIT":
            ranges.extend(_ranges(events, f"{rpath}.events", doc))
    versions = [doc.need(v, f"{path}.versions[{i}]", str)
                for i, v in enumerate(doc.field(affected, "versions", path, list, required=False,
                                                default=[]))]
    if not ranges and not versions:
        doc.fail(path, "no affected versions: expected 'ranges' with ECOSYSTEM/SEMVER events or "
                       "'versions'")
    return key, ranges, versions


def _ranges(events: list[Any], path: str, doc: Doc) -> list[Range]:
    out: list[Range] = []
    start: str | None = None
    opened = False
    for i, event in enumerate(events):
        where = f"{path}[{i}]"
        doc.need(event, where, dict)
        if len(event) != 1:
            doc.fail(where, f"expected one of introduced, fixed, last_affected, limit; got "
                            f"{sorted(event)}")
        (kind, value), = event.items()
        value = doc.need(value, f"{where}.{kind}", str)
        if kind == "introduced":
            start, opened = (None if value == "0" else value), True
        elif kind in ("fixed", "last_affected"):
            if not opened:
                doc.fail(where, f"'{kind}' without an 'introduced' before it")
            out.append(Range(start=start, end=value, end_inclusive=kind == "last_affected"))
            opened = False
        elif kind != "limit":
            doc.fail(where, f"unknown event {kind!r} (introduced, fixed, last_affected, limit)")
    if opened:
        out.append(Range(start=start))
    return out


def _severity(obj: dict[str, Any], path: str, doc: Doc) -> tuple[float | None, str | None]:
    score = None
    for i, sev in enumerate(doc.field(obj, "severity", path, list, required=False, default=[])):
        where = f"{path}.severity[{i}]"
        doc.need(sev, where, dict)
        if doc.field(sev, "type", where, str) == "CVSS_V3":
            try:
                score = base_score(doc.field(sev, "score", where, str))
            except CvssError as e:
                doc.fail(f"{where}.score", str(e))
            break
    specific = obj.get("database_specific")
    label = specific.get("severity") if isinstance(specific, dict) else None
    return score, _LABELS.get(str(label).lower()) if label else None
