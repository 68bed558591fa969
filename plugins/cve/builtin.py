"""The built-in curated catalog (``data/cve_catalog.yaml``) and YAML catalogs like it.

Format (the top of the built-in file says the same)::

    entries:
      - id: CVE-2024-6387
        product: openbsd:openssh        # CPE vendor:product, as the fingerprinter names it
        title: regreSSHion ...
        cvss: 8.1                       # CVSS v3.x base score (v2 where only that exists)
        affected:                       # any of these
          - {from: 8.5p1, before: 9.8p1}    # from: inclusive, after: exclusive lower bound
          - {through: 4.4p1}                # before: exclusive, through: inclusive upper bound
          - {version: 2.3.4}                # one exact version
        source_url: https://...         # the advisory the entry was written from
        references: [https://...]
        role: server                    # server, client or library (see catalog.Entry)
        component: sshd                 # the program or part affected
        kev: true                       # in CISA's Known Exploited Vulnerabilities catalog
        distros:                        # what distributions say, per release
          debian/12: {package: openssh, fixed: '1:9.2p1-2+deb12u3', advisory: DSA-5724-1}
          debian/11: {package: openssh, status: not-affected, advisory: https://...}
          ubuntu/22.04: {package: openssh, fixed: '1:8.9p1-3ubuntu0.10', advisory: USN-6859-1}

A ``distros`` key is ``DISTRIBUTION/RELEASE`` (a ``kit.distro`` id and release number);
``package`` is the distribution's source package; ``status`` is ``fixed`` (the default
when ``fixed`` is given), ``not-affected`` or ``vulnerable`` (no fix released);
``advisory`` names the distribution's advisory (DSA, DLA, USN, RHSA) or its tracker page.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from pentora_plugins.cve.catalog import ROLES, CatalogError, Entry, Part, Range, product_key
from pentora_plugins.cve.doc import Doc
from pentora_plugins.cve.fixes import ECOSYSTEM, STATUSES, DistroFix
from pentora_plugins.kit import distro, distver

from pentora import InputError, load_yaml, read_input

BUILTIN_MAX_BYTES = 64 * 1024 * 1024

ENTRY_FIELDS = ("id", "product", "title", "cvss", "affected", "source_url", "references",
                "description", "role", "component", "kev", "distros")
FIX_FIELDS = ("package", "fixed", "status", "advisory")
RELEASE = re.compile(r"\d{1,4}(?:\.\d{1,2})?")  # 12, 22.04, 3.19, 2023
RANGE_FIELDS = ("from", "after", "before", "through", "version")


def builtin_path() -> Path:
    return Path(str(resources.files("pentora_plugins").joinpath("data", "cve_catalog.yaml")))


def builtin_paths() -> list[Path]:
    """The built-in catalog's files: ``cve_catalog.yaml``, then ``cve_catalog/*.yaml`` by name
    (one file per group of products, so that each stays readable)."""
    main = builtin_path()
    extra = main.with_suffix("")
    return [main, *(sorted(extra.glob("*.yaml")) if extra.is_dir() else [])]


def builtin_part() -> Part:
    paths = builtin_paths()
    parts = [_builtin_file(path) for path in paths]
    seen: dict[tuple[str, str], Path] = {}
    for path, part in zip(paths, parts, strict=True):
        for e in part.entries:
            first = seen.setdefault((e.id, e.product), path)
            if first != path:
                raise CatalogError(f"builtin catalog {path}: {e.id} for {e.product} is already "
                                   f"in {first.name}: keep one")
    entries = [e for p in parts for e in p.entries]
    return Part(entries=tuple(entries), fixes=tuple(f for p in parts for f in p.fixes),
                kev=frozenset(k for p in parts for k in p.kev))


def _builtin_file(path: Path) -> Part:
    name = f"builtin catalog {path}"
    try:
        data = load_yaml(read_input(path, what="CVE catalog", max_bytes=BUILTIN_MAX_BYTES), name,
                         what="CVE catalog", max_bytes=BUILTIN_MAX_BYTES)
    except InputError as e:
        raise CatalogError(f"{name}: cannot load it: {e}") from None
    return yaml_part(data, Doc(name), "builtin")


def builtin_entries() -> list[Entry]:
    return list(builtin_part().entries)


def yaml_part(data: Any, doc: Doc, source: str) -> Part:
    """The entries and distribution statements of a YAML catalog (see the module docstring)."""
    doc.need(data, "$", dict)
    extra = sorted(set(data) - {"entries"})
    if extra:
        doc.fail(f"$.{extra[0]}", "unknown top-level field; a catalog holds 'entries:'")
    items = doc.field(data, "entries", "$", list)
    entries: list[Entry] = []
    fixes: list[DistroFix] = []
    for i, item in enumerate(items):
        entry, entry_fixes = _entry(item, f"$.entries[{i}]", doc, source)
        entries.append(entry)
        fixes.extend(entry_fixes)
    seen: dict[tuple[str, str], int] = {}
    for i, e in enumerate(entries):
        first = seen.setdefault((e.id, e.product), i)
        if first != i:
            doc.fail(f"$.entries[{i}].id", f"{e.id} for {e.product} is already $.entries[{first}]")
    return Part(entries=tuple(entries), fixes=tuple(fixes),
                kev=frozenset(e.id for e in entries if e.kev))


def _entry(item: Any, path: str, doc: Doc, source: str) -> tuple[Entry, list[DistroFix]]:
    doc.need(item, path, dict)
    unknown = sorted(set(item) - set(ENTRY_FIELDS))
    if unknown:
        doc.fail(f"{path}.{unknown[0]}", f"unknown field (known: {', '.join(ENTRY_FIELDS)})")
    ident = doc.field(item, "id", path, str)
    product = doc.field(item, "product", path, str)
    if product.count(":") != 1 or not all(product.split(":")):
        doc.fail(f"{path}.product", f"expected CPE vendor:product such as openbsd:openssh, "
                                    f"got {product!r}")
    cvss = doc.field(item, "cvss", path, int, float)
    if not 0 <= cvss <= 10:
        doc.fail(f"{path}.cvss", f"expected a CVSS base score 0-10, got {cvss}")
    url = doc.field(item, "source_url", path, str)
    if not url.startswith("https://"):
        doc.fail(f"{path}.source_url", f"expected an https:// URL, got {url!r}")
    refs = doc.field(item, "references", path, list, required=False, default=[])
    refs = [doc.need(r, f"{path}.references[{i}]", str) for i, r in enumerate(refs)]
    ranges, versions = _affected(doc.field(item, "affected", path, list), f"{path}.affected", doc)
    role = doc.field(item, "role", path, str, required=False, default="any")
    if role not in ROLES:
        doc.fail(f"{path}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
    component = doc.field(item, "component", path, str, required=False)
    kev = doc.field(item, "kev", path, bool, required=False, default=False)
    fixes = _fixes(doc.field(item, "distros", path, dict, required=False, default={}),
                   f"{path}.distros", ident, doc, source)
    vendor, name = product.split(":")
    entry = Entry(id=ident, product=product_key(vendor, name),
                  title=doc.field(item, "title", path, str, required=False, default=""),
                  cvss=float(cvss), ranges=tuple(ranges), versions=tuple(versions),
                  references=tuple(dict.fromkeys([url, *refs])), source=source,
                  role=role, component=component, kev=kev)
    return entry, fixes


def _fixes(table: dict[str, Any], path: str, cve: str, doc: Doc, source: str) -> list[DistroFix]:
    # the path names the entry by its index; in a long file the CVE id is what finds it
    try:
        return [_fix(key, raw, f"{path}.{key}", cve, doc, source) for key, raw in table.items()]
    except CatalogError as e:
        raise CatalogError(f"{e} (entry {cve})") from None


def _fix(key: str, raw: Any, where: str, cve: str, doc: Doc, source: str) -> DistroFix:
    distribution, _, release = str(key).partition("/")
    if distribution not in ECOSYSTEM or not release:
        doc.fail(where, f"expected DISTRIBUTION/RELEASE such as debian/12 or ubuntu/22.04 "
                        f"(distributions: {', '.join(sorted(ECOSYSTEM))}), got {key!r}")
    _check_release(distribution, release, where, doc)
    doc.need(raw, where, dict)
    unknown = sorted(set(raw) - set(FIX_FIELDS))
    if unknown:
        doc.fail(f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(FIX_FIELDS)})")
    package = doc.field(raw, "package", where, str)
    fixed = doc.field(raw, "fixed", where, str, required=False)
    status = doc.field(raw, "status", where, str, required=False,
                       default="fixed" if fixed is not None else None)
    if status not in STATUSES:
        doc.fail(f"{where}.status", f"expected one of {', '.join(STATUSES)}, got {status!r}")
    if (status == "fixed") != (fixed is not None):
        doc.fail(where, "'fixed: VERSION' goes with status fixed, and only with it")
    if fixed is not None and not distver.is_valid(ECOSYSTEM[distribution], fixed):
        doc.fail(f"{where}.fixed", f"{fixed!r} is not a valid {ECOSYSTEM[distribution]} "
                                   f"version (quote it: '1:9.2p1-2+deb12u3')")
    return DistroFix(cve=cve, distribution=distribution, release=release,
                     package=package, status=status, fixed=fixed,
                     advisory=doc.field(raw, "advisory", where, str), source=source)


def _check_release(distribution: str, release: str, where: str, doc: Doc) -> None:
    """A release is its number, as a host's /etc/os-release gives it: a codename or any other
    word would be accepted and never match a host, leaving every finding there unverified."""
    if RELEASE.fullmatch(release):
        return
    known = distro.load_data().distributions.get(distribution)
    numbers = {codename: number for number, codename in (known.releases.items() if known else ())
               if codename}
    if release.lower() in numbers:
        doc.fail(where, f"a release is its number, not its codename: {distribution}/"
                        f"{numbers[release.lower()]} for {release}")
    doc.fail(where, f"expected a release number such as debian/12, ubuntu/22.04 or alpine/3.19, "
                    f"got {release[:40]!r}")


def _affected(items: list[Any], path: str, doc: Doc) -> tuple[list[Range], list[str]]:
    if not items:
        doc.fail(path, "expected at least one range or version")
    ranges: list[Range] = []
    versions: list[str] = []
    for i, raw in enumerate(items):
        where = f"{path}[{i}]"
        doc.need(raw, where, dict)
        bad = sorted(set(raw) - set(RANGE_FIELDS))
        if bad or not raw:
            doc.fail(where, f"expected keys among {', '.join(RANGE_FIELDS)}, got {sorted(raw)}")
        for k, v in raw.items():
            if isinstance(v, float):  # YAML reads 1.20 as the number 1.2
                doc.fail(f"{where}.{k}", f"quote versions ('{v}'): YAML read this one as a number")
        values = {k: str(doc.need(v, f"{where}.{k}", str, int)) for k, v in raw.items()}
        if "version" in values:
            if len(values) > 1:
                doc.fail(where, "'version' names one exact version: no bounds beside it")
            versions.append(values["version"])
            continue
        if ("from" in values and "after" in values) or ("before" in values and "through" in values):
            doc.fail(where, "one lower bound (from/after) and one upper bound (before/through)")
        ranges.append(Range(start=values.get("from", values.get("after")),
                            start_inclusive="after" not in values,
                            end=values.get("before", values.get("through")),
                            end_inclusive="through" in values))
    return ranges, versions
