"""The downloaded feeds: which ones (a YAML file), where they are cached, what is known of each.

``pentora catalog update`` downloads each configured feed into the cache directory
(``cache_dir``: ``--cache-dir``, else ``$PENTORA_FEEDS_DIR``, else
``$XDG_CACHE_HOME/pentora/feeds``, else ``~/.cache/pentora/feeds``) as ``NAME`` plus the
URL's suffix (``.json``, ``.json.gz``, ``.zip``), and records in ``state.json`` beside
them, per feed: the URL, the file, the ``ETag`` and ``Last-Modified`` the server gave,
when it was last updated and checked, what it held (entries, statements, KEV ids), and
the last failure. The catalog word ``feeds`` reads the files ``state.json`` lists, by
feed name: for a (package, CVE) two feeds speak of, the later name's statement is kept.

The feeds file (``data/catalog_feeds.yaml`` is the default and says the format)::

    feeds:
      kev: {url: https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json}
      nvd-modified:
        url: https://nvd.nist.gov/feeds/json/cve/2.0/nvdcve-2.0-modified.json.gz
        checksum: nvd-meta      # the sha256 of NVD's .meta file beside it
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import voluptuous as vol
from pentora_plugins.cve.catalog import CatalogError

from pentora import InputError, atomic_output, load_json, load_yaml, read_input

ENV_DIR = "PENTORA_FEEDS_DIR"
STATE = "state.json"
CONFIG_MAX_BYTES = 1024 * 1024
STATE_MAX_BYTES = 16 * 1024 * 1024
CHECKSUMS = ("nvd-meta",)
SUFFIXES = (".json.gz", ".json", ".zip", ".gz")
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}", re.ASCII)


@dataclass(frozen=True)
class Feed:
    """One feed: its name (the cached file's), URL, and how its download is checked."""

    name: str
    url: str
    checksum: str | None = None

    @property
    def suffix(self) -> str:
        path = urlsplit(self.url).path.lower()
        return next((s for s in SUFFIXES if path.endswith(s)), ".json")

    @property
    def file(self) -> str:
        return self.name + self.suffix

    def meta_url(self) -> str | None:
        """Where the published checksum is: NVD's ``.meta`` beside ``.json.gz``."""
        if self.checksum != "nvd-meta":
            return None
        parts = urlsplit(self.url)
        path = re.sub(r"\.json(\.gz|\.zip)?$", "", parts.path) + ".meta"
        return parts._replace(path=path, query="", fragment="").geturl()


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host, else ``ValueError`` saying so."""
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise ValueError(f"{url!r} is not a URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {url[:200]!r}")
    return url


def _url(value: Any) -> str:
    if not isinstance(value, str):
        raise vol.Invalid("expected an http:// or https:// URL")
    try:
        return check_url(value)
    except ValueError as e:
        raise vol.Invalid(str(e)) from None


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise vol.Invalid(f"a feed name is lowercase letters, digits, '.', '_' or '-' (up to 64), "
                          f"got {str(value)[:70]!r}")
    return value


def _checksum(value: Any) -> str | None:
    if value is not None and value not in CHECKSUMS:
        raise vol.Invalid(f"expected one of {', '.join(CHECKSUMS)} (or nothing), got "
                          f"{str(value)[:40]!r}")
    return value  # type: ignore[no-any-return]


_CONFIG = vol.Schema({vol.Required("feeds"): {_name: {
    vol.Required("url"): _url,
    vol.Optional("checksum", default=None): _checksum,
}}})


def default_config() -> Path:
    return Path(str(resources.files("pentora_plugins").joinpath("data", "catalog_feeds.yaml")))


def load_config(path: Path | None = None) -> dict[str, Feed]:
    """The feeds of ``path`` (default: the built-in list); ``CatalogError`` names the file
    and the key at fault."""
    path = path or default_config()
    try:
        data = load_yaml(read_input(path, what="feeds file", max_bytes=CONFIG_MAX_BYTES),
                         str(path), what="feeds file", max_bytes=CONFIG_MAX_BYTES)
        config = _CONFIG(data)
    except InputError as e:
        raise CatalogError(str(e)) from None
    except vol.MultipleInvalid as e:
        problems = "; ".join(f"{'.'.join(map(str, err.path)) or 'the top'}: {err.msg}"
                             for err in e.errors)
        raise CatalogError(f"{path}: {problems} (the format: feeds: {{NAME: {{url: "
                           f"https://..., checksum: nvd-meta}}}})") from None
    return {name: Feed(name, raw["url"], raw["checksum"]) for name, raw in config["feeds"].items()}


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where feeds are cached: ``explicit``, ``$PENTORA_FEEDS_DIR``, then the XDG cache."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # as the XDG spec says
    return base / "pentora" / "feeds"


def read_state(folder: Path) -> dict[str, dict[str, Any]]:
    """What ``state.json`` says of each feed ({} when there is none yet)."""
    path = folder / STATE
    if not path.exists():
        return {}
    try:
        data = load_json(read_input(path, what="feed state", max_bytes=STATE_MAX_BYTES), str(path),
                         what="feed state", max_bytes=STATE_MAX_BYTES)
    except InputError as e:
        raise CatalogError(f"{e} (it is rewritten by `pentora catalog update`)") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and NAME.fullmatch(k) and
                                             isinstance(v, dict) for k, v in data.items()):
        raise CatalogError(f"{path}: expected {{FEED: {{...}}}} as `pentora catalog update` "
                           f"writes it; remove the file and run the update again")
    return data


def write_state(folder: Path, state: dict[str, dict[str, Any]]) -> None:
    with atomic_output(folder / STATE, line_buffering=False) as f:
        f.write(json.dumps(state, indent=2, sort_keys=True) + "\n")


def data_files(folder: Path) -> list[Path]:
    """The downloaded files ``state.json`` lists, by feed name (none when nothing was)."""
    files = []
    for name, info in sorted(read_state(folder).items()):
        file = info.get("file")
        if isinstance(file, str) and file.startswith(name) and "/" not in file:
            with contextlib.suppress(OSError):
                if (folder / file).is_file():
                    files.append(folder / file)
    return files
