"""Where catalogs come from: ``builtin``, ``feeds``, files and directories, in the right format.

``catalog`` names ``builtin``, ``feeds``, a path, or a list of them. ``feeds`` is what
``pentora catalog update`` downloaded (``feeds.cache_dir()``; nothing while it is empty).
A path is read by what it holds, not by its name:

- CISA's Known Exploited Vulnerabilities JSON (``kev``: ``catalogVersion``, items with
  ``cveID``): the CVE ids known to be exploited. Asked first: it has a ``vulnerabilities``
  key as NVD's files do;
- NVD CVE JSON 2.0 (an API answer or a feed file: ``{"vulnerabilities": [{"cve": ...}]}``);
- OSV (one advisory ``{"id", "affected": [...]}``, a list of them, a directory of
  ``*.json`` advisories, or a ``.zip`` of them as OSV's exports ship, ``all.zip``):
  entries for upstream packages, statements for distributions' packages (``osv``);
- the Debian Security Tracker's JSON (``debian_tracker``): statements for Debian's packages;
- YAML in the built-in catalog's format (``entries:``), by its ``.yaml``/``.yml`` name.

``.gz`` files are decompressed; a directory may hold any mix of ``*.json``, ``*.json.gz``
and ``*.zip`` files. Both a file and what it inflates to are bounded (``FEED_MAX_BYTES``),
a zip's members one by one (``MEMBER_MAX_BYTES``, ``MAX_MEMBERS``) and together, never
trusting the sizes its directory states. Files are parsed once per version (path, mtime,
size). Anything malformed raises ``CatalogError`` naming the file (and the zip member) and
the JSON path at fault.
"""

from __future__ import annotations

import functools
import gzip
import zipfile
import zlib
from pathlib import Path
from typing import Any

from pentora_plugins.cve import feeds
from pentora_plugins.cve.builtin import builtin_part, builtin_paths, yaml_part
from pentora_plugins.cve.catalog import Catalog, CatalogError, Entry, Part
from pentora_plugins.cve.debian_tracker import debian_fixes, is_debian_tracker
from pentora_plugins.cve.doc import Doc
from pentora_plugins.cve.fixes import FixIndex
from pentora_plugins.cve.kev import is_kev, kev_ids
from pentora_plugins.cve.nvd import is_nvd, nvd_entries
from pentora_plugins.cve.osv import is_osv, osv_part

from pentora import InputError, load_json, load_yaml, open_input

FEED_MAX_BYTES = 1 << 30  # a year of the NVD 2.0 feed is some hundreds of MB unpacked
MEMBER_MAX_BYTES = 64 * 1024 * 1024  # one advisory of a zip: OSV's are some KB
MAX_MEMBERS = 2_000_000  # OSV's Debian export holds some 100,000 advisories
BUILTIN = "builtin"
FEEDS = "feeds"
WORDS = (BUILTIN, FEEDS)
DATA_SUFFIXES = (".json", ".json.gz", ".zip")  # the files of a directory that are read


def normalise_sources(value: object) -> list[str]:
    """``builtin``, ``feeds``, a path, or a list of them → those words and absolute paths."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip()
                                                          for s in items):
        raise CatalogError(f"catalog: expected 'builtin', 'feeds' (what `pentora catalog "
                           f"update` downloaded), the path of an NVD CVE JSON 2.0, OSV, KEV, "
                           f"Debian Security Tracker or YAML file (or a directory of them), or "
                           f"a list of them; got {value!r}")
    return [s if s in WORDS else str(Path(s).expanduser().resolve()) for s in items]


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
    if source == FEEDS:
        return _stamp_files(_feed_files())
    path = Path(source)
    try:
        if path.is_dir():
            return _stamp_files(_data_files(path))
        st = path.stat()
    except OSError as e:
        raise CatalogError(f"catalog {source}: cannot read it ({e.strerror or e}); catalog takes "
                           f"'builtin', 'feeds' or the path of an NVD CVE JSON 2.0, OSV, KEV, "
                           f"Debian Security Tracker or YAML file (or a directory of them)") from e
    return st.st_mtime_ns, st.st_size


def _stamp_files(files: list[Path]) -> tuple[int, int]:
    try:
        stats = [f.stat() for f in files]
    except OSError as e:
        raise CatalogError(f"catalog {e.filename}: cannot read it ({e.strerror or e})") from e
    return (max((st.st_mtime_ns for st in stats), default=0),
            sum(st.st_size for st in stats) * 1000 + len(stats))


def _data_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.name.endswith(DATA_SUFFIXES) and f.is_file())


@functools.lru_cache(maxsize=32)
def _load_stamped(source: str, mtime: int, size: int) -> Part:
    if source == BUILTIN:
        return builtin_part()
    if source == FEEDS:
        return _joined([load_part(f) for f in _feed_files()])
    path = Path(source)
    if path.is_dir():
        return _joined([load_part(f) for f in _data_files(path)])
    if path.suffix in (".yaml", ".yml") or path.name.endswith((".yaml.gz", ".yml.gz")):
        return yaml_part(_read_yaml(path), Doc(str(path)), path.name)
    return load_part(path)


def _feed_files() -> list[Path]:
    """The downloaded feeds' files; none when the cache is another user's (a HOME shared
    by a process that dropped privileges): nothing was downloaded for this one."""
    try:
        return feeds.data_files(feeds.cache_dir())
    except PermissionError:
        return []


def _joined(parts: list[Part]) -> Part:
    return Part(entries=tuple(e for p in parts for e in p.entries),
                fixes=tuple(f for p in parts for f in p.fixes),
                kev=frozenset(k for p in parts for k in p.kev))


def load_part(path: Path) -> Part:
    """What one JSON, ``.json.gz`` or OSV ``.zip`` file holds, by its content."""
    if _is_zip(path):
        return _load_zip(path)
    return _parse(_read_json(path), Doc(str(path)), path.name)


def _parse(data: Any, doc: Doc, source: str) -> Part:
    if is_kev(data):
        return Part(kev=kev_ids(data, doc))
    if is_nvd(data):
        return Part(entries=tuple(nvd_entries(data, doc, source)))
    if is_osv(data):
        return osv_part(data, doc, source)
    if is_debian_tracker(data):
        return Part(fixes=tuple(debian_fixes(data, doc, source)))
    if isinstance(data, dict) and "CVE_Items" in data:
        doc.fail("$", "an NVD JSON 1.1 feed (CVE_Items); pentora reads the NVD CVE JSON 2.0 "
                      "format ({\"vulnerabilities\": [{\"cve\": ...}]}) — fetch the 2.0 feed")
    doc.fail("$", "none of the formats a catalog file may have: NVD CVE JSON 2.0 "
                  "({\"vulnerabilities\": [{\"cve\": ...}]}), OSV ({\"id\": ..., \"affected\": "
                  "[...]} or a list of them), CISA KEV ({\"catalogVersion\": ..., "
                  "\"vulnerabilities\": [{\"cveID\": ...}]}) or the Debian Security Tracker's "
                  "({\"PACKAGE\": {\"CVE-…\": {\"releases\": ...}}})")


def _is_zip(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False  # _read_bytes says why, naming the file


def _load_zip(path: Path) -> Part:
    """The OSV advisories of a zip (OSV's ``all.zip`` exports), member by member, bounded:
    a member's stated size is not trusted, each is read up to its limit and one byte more."""
    parts: list[Part] = []
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            members = [i for i in archive.infolist() if i.filename.endswith(".json")]
            if len(members) > MAX_MEMBERS:
                raise CatalogError(f"{path}: {len(members)} files in the zip: over the limit of "
                                   f"{MAX_MEMBERS} for a CVE catalog")
            for info in members:
                name = f"{path}:{info.filename[:200]}"
                with archive.open(info) as member:
                    raw = member.read(MEMBER_MAX_BYTES + 1)
                if len(raw) > MEMBER_MAX_BYTES:
                    raise CatalogError(f"{name}: over the {MEMBER_MAX_BYTES}-byte limit for one "
                                       f"advisory of a zip")
                total += len(raw)
                if total > FEED_MAX_BYTES:
                    raise CatalogError(f"{path}: inflates to over the {FEED_MAX_BYTES}-byte limit "
                                       f"for a CVE catalog")
                data = _json_of(raw, name)
                if not is_osv(data):
                    Doc(name).fail("$", "expected an OSV advisory ({\"id\": ..., \"affected\": "
                                        "[...]}): a zip catalog holds OSV advisories")
                parts.append(osv_part(data, Doc(name), path.name))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
            zlib.error) as e:
        raise CatalogError(f"{path}: not a valid zip file ({e})") from None
    except OSError as e:
        raise CatalogError(f"{path}: cannot read it ({e.strerror or e})") from None
    return _joined(parts)


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
    return _json_of(_read_bytes(path), str(path))


def _json_of(raw: bytes, name: str) -> Any:
    try:
        return load_json(raw, name, what="CVE catalog", max_bytes=FEED_MAX_BYTES)
    except InputError as e:
        raise CatalogError(str(e)) from None


def _read_yaml(path: Path) -> Any:
    try:
        return load_yaml(_read_bytes(path), str(path), what="CVE catalog", max_bytes=FEED_MAX_BYTES)
    except InputError as e:
        raise CatalogError(str(e)) from None
