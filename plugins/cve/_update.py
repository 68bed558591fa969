"""``pentora catalog update``: download each feed, check it, and only then put it in place.

For each feed: a GET with ``If-None-Match`` / ``If-Modified-Since`` from the ``ETag`` /
``Last-Modified`` stored for that URL (``304 Not Modified`` keeps the file as it is); the
body goes to a temporary file beside the cache file, bounded in size and time; a feed
with ``checksum: nvd-meta`` is checked against the sha256 NVD publishes in its ``.meta``
file; the file must then parse as a catalog (``sources.load_part``, the same reader a scan
uses); only then does ``os.replace`` put it in place, whole. Any failure leaves the file
that was there, and says why in ``state.json``.

The client is the standard library's ``urllib.request``: plain GETs with headers need no
more. Redirects are followed to http(s) URLs only.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pentora_plugins.cve import feeds, sources
from pentora_plugins.cve.catalog import CatalogError, Part
from pentora_plugins.cve.feeds import Feed

from pentora import __version__

CHUNK = 1 << 16
META_MAX_BYTES = 64 * 1024  # NVD's .meta is five short lines
_SHA256 = re.compile(r"^sha256:([0-9A-Fa-f]{64})\s*$", re.MULTILINE)


class FeedError(Exception):
    """A feed that could not be updated; the message says why, in a line."""


@dataclass
class Limits:
    timeout: float = 60.0                  # seconds any one network wait may take
    max_time: float = 1800.0               # seconds one feed's download may take in all
    max_bytes: int = sources.FEED_MAX_BYTES


@dataclass
class Outcome:
    feed: Feed
    status: str                            # downloaded, not-modified, failed
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = 5

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> Any:
        try:
            feeds.check_url(newurl)
        except ValueError as e:
            raise FeedError(f"redirected to {newurl[:200]!r}: {e}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_Redirects)


def update(chosen: list[Feed], folder: Path, limits: Limits) -> list[Outcome]:
    """Update each feed in turn; ``state.json`` is written after each one, so that an
    interrupted run keeps what it finished."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        state = feeds.read_state(folder)
    except CatalogError:
        state = {}  # unreadable: rebuilt from what this run downloads
    outcomes = []
    for feed in chosen:
        info = dict(state.get(feed.name, {}))
        outcome = _update_one(feed, folder, info, limits)
        now = time.time()
        info.update(checked_at=now)
        if outcome.status == "failed":
            # `url` stays the one the cached copy came from: the copy kept is not the failed
            # URL's, and a later update of that URL must not ask with the old copy's ETag
            info.update(last_error=outcome.message, last_error_at=now, last_error_url=feed.url)
        else:
            info.update(url=feed.url, last_error=None, last_error_at=None, last_error_url=None)
        if outcome.status == "downloaded":
            info.update(file=feed.file, updated_at=now, counts=outcome.counts)
        state[feed.name] = info
        feeds.write_state(folder, state)
        outcomes.append(outcome)
    return outcomes


def _update_one(feed: Feed, folder: Path, info: dict[str, Any], limits: Limits) -> Outcome:
    target = folder / feed.file
    old = folder / info["file"] if isinstance(info.get("file"), str) else None
    same = info.get("url") == feed.url and old is not None and old.is_file()
    headers = {"User-Agent": f"pentora/{__version__}", "Accept-Encoding": "identity"}
    if same and info.get("etag"):
        headers["If-None-Match"] = str(info["etag"])
    if same and info.get("last_modified"):
        headers["If-Modified-Since"] = str(info["last_modified"])
    tmp = Path(tempfile.mkstemp(prefix=f".{feed.name}.", suffix=".partial", dir=folder)[1])
    try:
        with tmp.open("wb") as out:
            response = _download(feed.url, headers, out, limits)
        if response is None:
            return Outcome(feed, "not-modified", "not modified since the last update")
        meta_url = feed.meta_url()
        if meta_url:
            _check_meta(feed, tmp, meta_url, limits)
        part = _parse(feed, tmp)
        os.replace(tmp, target)  # whole or not at all: a scan never reads half a feed
        if old is not None and old != target:
            with contextlib.suppress(OSError):
                old.unlink()  # the URL's suffix changed: the old file is no feed any more
        info.update(etag=response.get("ETag"), last_modified=response.get("Last-Modified"))
        counts = {"entries": len(part.entries), "statements": len(part.fixes), "kev": len(part.kev)}
        return Outcome(feed, "downloaded", f"{target.stat().st_size} bytes", counts)
    except FeedError as e:
        return Outcome(feed, "failed", str(e))
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _download(url: str, headers: dict[str, str], out: IO[bytes], limits: Limits) -> Any:
    """The response's headers after its body is written to ``out``; None on 304."""
    request = urllib.request.Request(url, headers=headers)
    started = time.monotonic()
    try:
        with _OPENER.open(request, timeout=limits.timeout) as response:
            length = response.headers.get("Content-Length")
            total = 0
            while chunk := response.read(CHUNK):
                total += len(chunk)
                if total > limits.max_bytes:
                    raise FeedError(f"over the {limits.max_bytes}-byte limit for a feed")
                if time.monotonic() - started > limits.max_time:
                    raise FeedError(f"not downloaded within {limits.max_time:g} s")
                out.write(chunk)
            if length is not None and length.isdigit() and int(length) != total:
                raise FeedError(f"truncated: {total} of {length} bytes received")
            return response.headers
    except urllib.error.HTTPError as e:
        if e.code == 304:
            return None
        raise FeedError(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise FeedError(f"cannot reach it: {e.reason}") from None
    except (TimeoutError, http.client.HTTPException, OSError, ValueError) as e:
        raise FeedError(f"download failed: {type(e).__name__}: {e}") from None


def _check_meta(feed: Feed, data: Path, meta_url: str, limits: Limits) -> None:
    """The sha256 of NVD's ``.meta`` against the inflated feed's."""
    meta = Path(tempfile.mkstemp(prefix=f".{feed.name}.", suffix=".meta.partial",
                                 dir=data.parent)[1])
    try:
        with meta.open("wb") as out:
            _download(meta_url, {"User-Agent": f"pentora/{__version__}"}, out,
                      Limits(limits.timeout, limits.max_time, META_MAX_BYTES))
        found = _SHA256.search(meta.read_bytes().decode("ascii", "replace"))
    except FeedError as e:
        raise FeedError(f"its checksum {meta_url}: {e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            meta.unlink()
    if found is None:
        raise FeedError(f"{meta_url} gives no 'sha256:HEX' line")
    digest = hashlib.sha256()
    total = 0
    try:
        with data.open("rb") as raw:
            stream: Any = gzip.GzipFile(fileobj=raw) if raw.read(2) == b"\x1f\x8b" else raw
            raw.seek(0)
            while chunk := stream.read(CHUNK):
                total += len(chunk)
                if total > limits.max_bytes:
                    raise FeedError(f"inflates to over the {limits.max_bytes}-byte limit")
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise FeedError(f"not a valid gzip file ({e})") from None
    if digest.hexdigest().lower() != found.group(1).lower():
        raise FeedError(f"checksum mismatch: sha256 {digest.hexdigest()}, {meta_url} says "
                        f"{found.group(1).lower()}")


def _parse(feed: Feed, path: Path) -> Part:
    try:
        return sources.load_part(path)
    except CatalogError as e:
        raise FeedError(f"not a catalog pentora can read: {str(e).replace(str(path), feed.url)}") \
            from None
