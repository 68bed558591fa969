"""Where catalogs come from: ``builtin``, files and directories, in the right format.

``catalog`` names ``builtin``, a path, or a list of them. A path is read by what it holds:

- NVD CVE JSON 2.0 (an API answer or a feed file: ``{"vulnerabilities": [{"cve": ...}]}``);
- OSV (one advisory ``{"id", "affected": [...]}``, a list of them, or a directory of
  ``*.json`` advisories as OSV's exports ship);
- YAML in the built-in catalog's format (``entries:``);

``.gz`` files are decompressed. Files are parsed once per version (path, mtime, size).
Anything malformed raises ``CatalogError`` naming the file and the JSON path at fault.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from pathlib import Path
from typing import Any

from pentora_plugins.cve.builtin import builtin_part, builtin_paths, yaml_part
from pentora_plugins.cve.catalog import Catalog, CatalogError, Entry, Part
from pentora_plugins.cve.doc import Doc
from pentora_plugins.cve.fixes import FixIndex
from pentora_plugins.cve.nvd import is_nvd, nvd_entries
from pentora_plugins.cve.osv import is_osv, osv_entries

from pentora import InputError, load_json, load_yaml, open_input

FEED_MAX_BYTES = 1 << 30  # a year of the NVD 2.0 feed is some hundreds of MB unpacked
BUILTIN = "builtin"


def normalise_sources(value: object) -> list[str]:
    """``builtin``, a path, or a list of them → ``builtin`` and absolute paths."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip()
                                                          for s in items):
        raise CatalogError(f"catalog: expected 'builtin', the path of an NVD CVE JSON 2.0, OSV "
                           f"or YAML file (or a directory of OSV files), or a list of them; "
                           f"got {value!r}")
    return [s if s == BUILTIN else str(Path(s).expanduser().resolve()) for s in items]


def load_catalog(sources: str | list[str] = BUILTIN) -> Catalog:
    """The entries of every source, indexed. Each file is parsed once per version."""
    names = normalise_sources(sources)
    return _indexed(tuple((source, *_stamp(source)) for source in names))


@functools.lru_cache(maxsize=8)
def _indexed(stamped: tuple[tuple[str, int, int], ...]) -> Catalog:
    # validation and the run load the same catalog: index it once per set of file versions
    entries: list[Entry] = []
    fixes = FixIndex()
    kev: set[str] = set()
    for source, mtime, size in stamped:
        part = _load_stamped(source, mtime, size)
        entries.extend(part.entries)
        fixes.add(part.fixes)  # a later source's statement replaces an earlier one's
        kev.update(part.kev)
    return Catalog(entries, tuple(source for source, _, _ in stamped), fixes=fixes, kev=kev)


def _stamp(source: str) -> tuple[int, int]:
    if source == BUILTIN:
        stats = [p.stat() for p in builtin_paths()]
        return max(st.st_mtime_ns for st in stats), sum(st.st_size for st in stats) + len(stats)
    path = Path(source)
    try:
        if path.is_dir():
            files = sorted(path.glob("*.json"))
            return max((f.stat().st_mtime_ns for f in files), default=0), len(files)
        st = path.stat()
    except OSError as e:
        raise CatalogError(f"catalog {source}: cannot read it ({e.strerror or e}); catalog takes "
                           f"'builtin' or the path of an NVD CVE JSON 2.0, OSV or YAML file") from e
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=32)
def _load_stamped(source: str, mtime: int, size: int) -> Part:
    if source == BUILTIN:
        return builtin_part()
    path = Path(source)
    if path.is_dir():
        parts = [_load_file(f) for f in sorted(path.glob("*.json"))]
        return Part(entries=tuple(e for p in parts for e in p.entries),
                    fixes=tuple(f for p in parts for f in p.fixes),
                    kev=frozenset(k for p in parts for k in p.kev))
    if path.suffix in (".yaml", ".yml") or path.name.endswith((".yaml.gz", ".yml.gz")):
        return yaml_part(_read_yaml(path), Doc(str(path)), path.name)
    return _load_file(path)


def _load_file(path: Path) -> Part:
    doc = Doc(str(path))
    data = _read_json(path)
    if is_nvd(data):
        return Part(entries=tuple(nvd_entries(data, doc, path.name)))
    if is_osv(data):
        return Part(entries=tuple(osv_entries(data, doc, path.name)))
    if isinstance(data, dict) and "CVE_Items" in data:
        doc.fail("$", "an NVD JSON 1.1 feed (CVE_Items); pentora reads the NVD CVE JSON 2.0 "
                      "format ({\"vulnerabilities\": [{\"cve\": ...}]}) — fetch the 2.0 feed")
    doc.fail("$", "neither NVD CVE JSON 2.0 ({\"vulnerabilities\": [{\"cve\": ...}]}) nor OSV "
                  "({\"id\": ..., \"affected\": [...]} or a list of them)")


def _read_bytes(path: Path) -> bytes:
    """A feed file's bytes, gunzipped when it is gzip; both the file and what it inflates
    to are bounded by ``FEED_MAX_BYTES`` (a small .gz can inflate to any size)."""
    try:
        with open_input(path, what="CVE catalog", max_bytes=FEED_MAX_BYTES) as stream:
            if stream.peek(2)[:2] != b"\x1f\x8b":
                return stream.read()
            with gzip.GzipFile(fileobj=stream) as inflated:
                data = inflated.read(FEED_MAX_BYTES + 1)
    except InputError as e:
        raise CatalogError(str(e)) from None
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise CatalogError(f"{path}: not a valid gzip file ({getattr(e, 'strerror', None) or e})") from None
    if len(data) > FEED_MAX_BYTES:
        raise CatalogError(f"{path}: inflates to over {FEED_MAX_BYTES >> 30} GiB: over the "
                           f"{FEED_MAX_BYTES}-byte limit for a CVE catalog")
    return data


def _read_json(path: Path) -> Any:
    try:
        return load_json(_read_bytes(path), str(path), what="CVE catalog", max_bytes=FEED_MAX_BYTES)
    except InputError as e:
        raise CatalogError(str(e)) from None


def _read_yaml(path: Path) -> Any:
    try:
        return load_yaml(_read_bytes(path), str(path), what="CVE catalog", max_bytes=FEED_MAX_BYTES)
    except InputError as e:
        raise CatalogError(str(e)) from None
