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

Distribution ecosystems name a distribution's own packages, whose versions mean nothing
against an upstream version: each such ``affected[]`` gives ``DistroFix`` statements
instead (``osv_part``'s ``fixes``), one per CVE the advisory names, keyed by the
distribution whose packages it ships (``kit.distro``: AlmaLinux and Rocky Linux ship
RHEL's) and the release number:

- ``Debian:12`` → debian 12; ``Ubuntu:22.04:LTS``, ``Ubuntu:Pro:16.04:LTS`` → ubuntu
  16.04 (a release's own statement wins over its Pro one in the same advisory);
  ``Alpine:v3.19`` → alpine 3.19; ``Red Hat:enterprise_linux:9::appstream``,
  ``AlmaLinux:9``, ``Rocky Linux:8`` → rhel 9 / 8 (Red Hat's other products are skipped);
- an ``ECOSYSTEM`` range's last ``fixed`` event is the fixed version (checked in the
  distribution's version order, ``kit.distver``); no ``fixed`` event: ``vulnerable``;
- the CVEs are the id, ``aliases`` and ``upstream`` ids of the form ``CVE-…``, or
  ``DEBIAN-CVE-…`` / ``UBUNTU-CVE-…`` / ``ALPINE-CVE-…`` (Canonical's USN files and
  Debian's DSA/DLA files name their CVEs in ``upstream``); an advisory that names none is
  skipped. The advisory is its id (``USN-6859-1``, ``DSA-5724-1``, ``DEBIAN-CVE-…``).

Other distribution ecosystems (SUSE, Mageia, Wolfi…) are skipped for the same reason;
every other ecosystem (PyPI, npm, Go, crates.io, GIT-only…) gives entries as above.
"""

from __future__ import annotations

import re
from typing import Any

from pentora_plugins.cve.catalog import ANY_VENDOR, Entry, Part, Range, product_key
from pentora_plugins.cve.doc import Doc, one_line
from pentora_plugins.cve.fixes import ECOSYSTEM, PACKAGE_NAME, SEVERITIES, DistroFix
from pentora_plugins.cve.nvd import TITLE_CHARS
from pentora_plugins.kit import distro, distver
from pentora_plugins.kit.cvss import CvssError, base_score

_LABELS = {"critical": "critical", "high": "high", "moderate": "medium", "medium": "medium",
           "low": "low"}
# OSV ecosystems that are distributions' packages ("Debian:12", "SUSE:Linux Enterprise…"),
# by their first part; those kit.distro knows give statements, the others are skipped.
DISTRIBUTION_ECOSYSTEMS = frozenset({
    "debian", "ubuntu", "alpine", "red hat", "almalinux", "rocky linux", "suse", "opensuse",
    "mageia", "wolfi", "chainguard", "photon os", "openeuler", "alpaquita",
    "bellsoft hardened containers", "azure linux", "minimos", "openwrt", "echo", "green linux"})
_UPSTREAM_CVE = re.compile(r"(?:[A-Z]{2,16}-)?(CVE-\d{4}-\d{4,12})", re.ASCII)
_UBUNTU_RELEASE = re.compile(r"\d{2}\.\d{2}", re.ASCII)
_RELEASE = re.compile(r"v?(\d{1,3}(?:\.\d{1,3})?)(?:\.\d{1,3})?", re.ASCII)
_ECOSYSTEM_CHARS = 128


def is_osv(data: Any) -> bool:
    if isinstance(data, list):
        return bool(data) and all(isinstance(d, dict) and "id" in d for d in data)
    return isinstance(data, dict) and "id" in data and ("affected" in data or "schema_version" in data)


def osv_entries(data: Any, doc: Doc, source: str) -> list[Entry]:
    """The upstream entries of one advisory or a list of them (see ``osv_part``)."""
    return list(osv_part(data, doc, source).entries)


def osv_part(data: Any, doc: Doc, source: str) -> Part:
    """Entries for upstream ecosystems, statements for distributions' packages."""
    items = list(enumerate(data)) if isinstance(data, list) else [(None, data)]
    entries: list[Entry] = []
    fixes: list[DistroFix] = []
    for i, item in items:
        found, said = _advisory(item, "$" if i is None else f"$[{i}]", doc, source)
        entries.extend(found)
        fixes.extend(said)
    return Part(entries=tuple(entries), fixes=tuple(fixes))


def _advisory(adv: Any, path: str, doc: Doc, source: str) -> tuple[list[Entry], list[DistroFix]]:
    doc.need(adv, path, dict)
    ident = doc.field(adv, "id", path, str)
    if adv.get("withdrawn"):
        return [], []
    aliases = _ids(adv, "aliases", path, doc)
    cve = next((a for a in aliases if a.startswith("CVE-")), None)
    refs = [f"https://osv.dev/vulnerability/{ident}"]
    for i, ref in enumerate(doc.field(adv, "references", path, list, required=False, default=[])):
        where = f"{path}.references[{i}]"
        refs.append(doc.field(doc.need(ref, where, dict), "url", where, str))
    text = doc.field(adv, "summary", path, str, required=False) or \
        doc.field(adv, "details", path, str, required=False, default="")
    title = one_line(text, TITLE_CHARS)
    cvss, label = _severity(adv, path, doc)
    entries: list[Entry] = []
    fixes: list[DistroFix] = []
    cves: list[str] | None = None
    for i, affected in enumerate(doc.field(adv, "affected", path, list)):
        where = f"{path}.affected[{i}]"
        doc.need(affected, where, dict)
        release = _distribution(affected, where, doc)
        if release is not None:
            if cves is None:
                cves = _cves(ident, [*aliases, *_ids(adv, "upstream", path, doc)])
            said = _statements(affected, where, release, cves, ident, title, label, doc, source)
            fixes.extend(said)
            continue
        if _is_distribution(affected):
            continue  # a distribution kit.distro cannot name: its versions are its own
        key, ranges, versions = _affected(affected, where, doc)
        a_cvss, a_label = _severity(affected, where, doc)
        entries.append(Entry(id=cve or ident, product=key, title=title,
                             cvss=a_cvss if a_cvss is not None else cvss,
                             severity=a_label or label, ranges=tuple(ranges),
                             versions=tuple(versions), references=tuple(dict.fromkeys(refs)),
                             source=source))
    return entries, _own_release_first(fixes)


def _ids(adv: dict[str, Any], key: str, path: str, doc: Doc) -> list[str]:
    return [doc.need(a, f"{path}.{key}[{i}]", str)
            for i, a in enumerate(doc.field(adv, key, path, list, required=False, default=[]))]


def _cves(ident: str, others: list[str]) -> list[str]:
    """The CVE ids an advisory is about: its id, aliases and upstream ids that are CVEs, or
    a tracker's name of one (``UBUNTU-CVE-2024-6387``)."""
    found = (_UPSTREAM_CVE.fullmatch(name) for name in (ident, *others))
    return list(dict.fromkeys(m.group(1) for m in found if m))


def _ecosystem(affected: dict[str, Any]) -> str:
    package = affected.get("package")
    value = package.get("ecosystem") if isinstance(package, dict) else None
    return value[:_ECOSYSTEM_CHARS] if isinstance(value, str) else ""


def _is_distribution(affected: dict[str, Any]) -> bool:
    return _ecosystem(affected).split(":", 1)[0].strip().lower() in DISTRIBUTION_ECOSYSTEMS


def _distribution(affected: dict[str, Any], path: str, doc: Doc) -> tuple[str, str] | None:
    """(distribution, release) of a distribution ecosystem kit.distro knows, else None."""
    ecosystem = _ecosystem(affected)
    name, _, rest = ecosystem.partition(":")
    if name.strip().lower() not in DISTRIBUTION_ECOSYSTEMS:
        return None
    dist = distro.load_data().distribution(name)
    base = dist.packages if dist is not None else None
    if base not in ECOSYSTEM:
        return None
    parts = [p.strip() for p in rest.split(":")]
    if base == "rhel" and dist is not None and dist.id == "rhel" and \
            not parts[0].startswith(("enterprise_linux", "rhel")):
        return None  # Red Hat's other products (OpenShift, Satellite…) are not RHEL's packages
    pattern = _UBUNTU_RELEASE if base == "ubuntu" else _RELEASE
    release = next((m for m in map(pattern.fullmatch, parts) if m), None)
    if release is None:
        doc.fail(f"{path}.package.ecosystem", f"{ecosystem!r}: expected a release number after "
                                              f"the distribution ({name}:12, Ubuntu:22.04:LTS, "
                                              f"Alpine:v3.19)")
    number = release.group(0) if base == "ubuntu" else release.group(1)
    if ECOSYSTEM[base] == "rpm":
        number = number.split(".")[0]  # RHEL 9.2's packages are RHEL 9's
    return base, number


def _statements(affected: dict[str, Any], path: str, release: tuple[str, str], cves: list[str],
                ident: str, title: str, label: str | None, doc: Doc, source: str) -> list[DistroFix]:
    distribution, number = release
    package = doc.field(doc.field(affected, "package", path, dict), "name", f"{path}.package", str)
    if not PACKAGE_NAME.fullmatch(package):
        doc.fail(f"{path}.package.name", f"expected a source package name such as 'openssh', "
                                         f"got {package[:60]!r}")
    fixed = None
    for r, raw in enumerate(doc.field(affected, "ranges", path, list, required=False, default=[])):
        rpath = f"{path}.ranges[{r}]"
        doc.need(raw, rpath, dict)
        if doc.field(raw, "type", rpath, str) != "ECOSYSTEM":
            continue
        for e, event in enumerate(doc.field(raw, "events", rpath, list)):
            value = doc.need(event, f"{rpath}.events[{e}]", dict).get("fixed")
            if value is not None:
                fixed = doc.need(value, f"{rpath}.events[{e}].fixed", str)
                if not distver.is_valid(ECOSYSTEM[distribution], fixed):
                    doc.fail(f"{rpath}.events[{e}].fixed",
                             f"{fixed[:80]!r} is not a valid {ECOSYSTEM[distribution]} version")
    specific = affected.get("ecosystem_specific")
    urgency = specific.get("urgency") if isinstance(specific, dict) else None
    severity = label or (SEVERITIES.get(urgency.lower()) if isinstance(urgency, str) else None)
    pro = ":pro:" in _ecosystem(affected).lower()
    return [DistroFix(cve=cve, distribution=distribution, release=number, package=package,
                      status="fixed" if fixed else "vulnerable", fixed=fixed,
                      advisory=ident if not pro else f"{ident} (Ubuntu Pro)", source=source,
                      title=title, severity=severity)
            for cve in cves]


def _own_release_first(fixes: list[DistroFix]) -> list[DistroFix]:
    """One statement per (package, CVE): a release's own one over its Ubuntu Pro one."""
    kept: dict[tuple[str, str, str, str], DistroFix] = {}
    for fix in fixes:
        key = (*fix.key, fix.cve)
        if key not in kept or kept[key].advisory.endswith("(Ubuntu Pro)"):
            kept[key] = fix
    return list(kept.values())


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
