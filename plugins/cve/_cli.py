"""``pentora catalog update | status``: the downloaded feeds of the ``feeds`` catalog."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pentora import clean_text as clean
from pentora import iso_time
from pentora.cli import EXIT_FAILED, EXIT_INVALID, EXIT_OK, EXIT_USAGE, CliError, echo

if TYPE_CHECKING:
    from pentora_plugins.cve.feeds import Feed

# The feeds, the catalog readers and the downloader are imported by the commands that use
# them: every pentora command, and every TAB of shell completion, builds this parser.


def add_commands(subparsers: Any, common: argparse.ArgumentParser) -> None:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--config", metavar="FILE", type=Path,
                       help="the feeds file (default: the built-in list; its format is in "
                            "docs/modules/cve_matcher.md)")
    where.add_argument("--source", action="append", default=[], metavar="NAME=URL",
                       help="download feed NAME from URL instead (a new NAME adds a feed); "
                            "repeatable")
    where.add_argument("--cache-dir", metavar="DIR",
                       help="where feeds are kept (default $PENTORA_FEEDS_DIR, else "
                            "$XDG_CACHE_HOME/pentora/feeds, else ~/.cache/pentora/feeds)")
    p = subparsers.add_parser("catalog", help="the vulnerability feeds the 'feeds' catalog reads: "
                                              "update, status")
    sub = p.add_subparsers(dest="catalog_cmd", metavar="COMMAND", required=True)
    c = sub.add_parser("update", parents=[common, where],
                       help="download the feeds that changed, check them, keep the old ones "
                            "when that fails")
    c.add_argument("names", nargs="*", metavar="NAME",
                   help="only these feeds (default: those of --source, else all)")
    c.add_argument("--timeout", type=_seconds, default=60.0, metavar="SECONDS",
                   help="longest wait for the server at any one time (default 60)")
    c.add_argument("--max-time", type=_seconds, default=1800.0, metavar="SECONDS",
                   help="longest download of one feed (default 1800)")
    c.set_defaults(func=cmd_update, cooperative=False)
    c = sub.add_parser("status", parents=[common, where],
                       help="each feed: URL, last update and age, ETag, what it holds, failures")
    c.set_defaults(func=cmd_status, cooperative=False)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 86400, got '{text}'")
    return value


def _feeds(args: argparse.Namespace) -> dict[str, Feed]:
    from pentora_plugins.cve import feeds
    from pentora_plugins.cve.catalog import CatalogError
    from pentora_plugins.cve.feeds import Feed

    try:
        chosen = feeds.load_config(args.config)
    except CatalogError as e:
        raise CliError(str(e), EXIT_INVALID) from None
    for item in args.source:
        name, sep, url = item.partition("=")
        try:
            if not sep or not feeds.NAME.fullmatch(name):
                raise ValueError("expected NAME=URL, NAME lowercase letters, digits, '.', '_' "
                                 "or '-'")
            feeds.check_url(url)
        except ValueError as e:
            raise CliError(f"--source {item[:200]!r}: {e}", EXIT_USAGE) from None
        old = chosen.get(name)
        chosen[name] = Feed(name, url, old.checksum if old else None)
    return chosen


def cmd_update(args: argparse.Namespace) -> int:
    from pentora_plugins.cve import _update, feeds

    chosen = _feeds(args)
    unknown = [n for n in args.names if n not in chosen]
    if unknown:
        raise CliError(f"no feed named {unknown[0]!r} (feeds: {', '.join(chosen)})", EXIT_USAGE)
    # --source NAME=URL without names updates those feeds only: pointing one feed at a mirror
    # must not send the others to their default servers on the internet.
    names = args.names or [item.partition("=")[0] for item in args.source]
    todo = [chosen[n] for n in dict.fromkeys(names)] if names else list(chosen.values())
    folder = feeds.cache_dir(args.cache_dir)
    limits = _update.Limits(timeout=args.timeout, max_time=args.max_time)
    try:
        outcomes = _update.update(todo, folder, limits)
    except OSError as e:
        raise CliError(f"feed cache {folder}: {e.strerror or e} (choose another with --cache-dir "
                       f"or $PENTORA_FEEDS_DIR)", EXIT_INVALID) from None
    for o in outcomes:
        line = f"{o.feed.name}: {o.status}"
        if o.status == "downloaded":
            line += f" ({_counts(o.counts)})"
        elif o.status == "failed":
            kept = "the previous copy is kept" if (folder / o.feed.file).is_file() else \
                "nothing is cached for it yet"
            line += f": {clean(o.message, 400)}; {kept}"
        echo(line)
    failed = [o.feed.name for o in outcomes if o.status == "failed"]
    if failed:
        echo(f"error: {len(failed)} feed(s) failed to update: {', '.join(failed)}", err=True)
        return EXIT_FAILED
    return EXIT_OK


def _counts(counts: dict[str, Any]) -> str:
    return (f"{counts.get('entries', 0)} entries, {counts.get('statements', 0)} statements, "
            f"{counts.get('kev', 0)} KEV ids")


def cmd_status(args: argparse.Namespace) -> int:
    from pentora_plugins.cve import feeds
    from pentora_plugins.cve.catalog import CatalogError

    chosen = _feeds(args)
    folder = feeds.cache_dir(args.cache_dir)
    try:
        state = feeds.read_state(folder)
    except CatalogError as e:
        raise CliError(str(e), EXIT_INVALID) from None
    echo(f"feed cache: {clean(str(folder), None)}")
    now = time.time()
    for name in [*chosen, *sorted(set(state) - set(chosen))]:
        info = state.get(name, {})
        seen_url = info.get("url") or info.get("last_error_url") or "?"
        url = chosen[name].url if name in chosen else f"{seen_url} (not configured)"
        echo(f"{name}  {clean(url, 200)}")
        updated = info.get("updated_at")
        if not isinstance(updated, int | float) or not (folder / str(info.get("file"))).is_file():
            echo("  never downloaded")
        else:
            echo(f"  updated {iso_time(updated)} ({_age(now - updated)} ago)  "
                 f"ETag {clean(info.get('etag') or '-', 80)}")
            echo(f"  {_counts(info.get('counts') or {})}")
            if name in chosen and info.get("url") != chosen[name].url:
                echo(f"  downloaded from {clean(str(info.get('url')), 200)}")
        if info.get("last_error"):
            when = info.get("last_error_at")
            at = f" ({iso_time(when)})" if isinstance(when, int | float) else ""
            failed_url = info.get("last_error_url")
            if failed_url and failed_url != info.get("url"):
                at += f" from {clean(str(failed_url), 200)}"
            echo(f"  last update failed{at}: {clean(str(info['last_error']), 400)}")
    return EXIT_OK


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
