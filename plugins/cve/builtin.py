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
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pentora_plugins.cve.catalog import CatalogError, Entry, Range, product_key
from pentora_plugins.cve.doc import Doc

from pentora import InputError, load_yaml, read_input

BUILTIN_MAX_BYTES = 64 * 1024 * 1024

ENTRY_FIELDS = ("id", "product", "title", "cvss", "affected", "source_url", "references",
                "description")
RANGE_FIELDS = ("from", "after", "before", "through", "version")


def builtin_path() -> Path:
    return Path(str(resources.files("pentora_plugins").joinpath("data", "cve_catalog.yaml")))


def builtin_entries() -> list[Entry]:
    path = builtin_path()
    name = f"builtin catalog {path}"
    try:
        data = load_yaml(read_input(path, what="CVE catalog", max_bytes=BUILTIN_MAX_BYTES), name,
                         what="CVE catalog", max_bytes=BUILTIN_MAX_BYTES)
    except InputError as e:
        raise CatalogError(f"{name}: cannot load it: {e}") from None
    return yaml_entries(data, Doc(f"builtin catalog {path}"), "builtin")


def yaml_entries(data: Any, doc: Doc, source: str) -> list[Entry]:
    """The entries of a YAML catalog (see the module docstring for the format)."""
    doc.need(data, "$", dict)
    extra = sorted(set(data) - {"entries"})
    if extra:
        doc.fail(f"$.{extra[0]}", "unknown top-level field; a catalog holds 'entries:'")
    items = doc.field(data, "entries", "$", list)
    entries = [_entry(item, f"$.entries[{i}]", doc, source) for i, item in enumerate(items)]
    seen: dict[tuple[str, str], int] = {}
    for i, e in enumerate(entries):
        first = seen.setdefault((e.id, e.product), i)
        if first != i:
            doc.fail(f"$.entries[{i}].id", f"{e.id} for {e.product} is already $.entries[{first}]")
    return entries


def _entry(item: Any, path: str, doc: Doc, source: str) -> Entry:
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
    vendor, name = product.split(":")
    return Entry(id=ident, product=product_key(vendor, name),
                 title=doc.field(item, "title", path, str, required=False, default=""),
                 cvss=float(cvss), ranges=tuple(ranges), versions=tuple(versions),
                 references=tuple(dict.fromkeys([url, *refs])), source=source)


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
