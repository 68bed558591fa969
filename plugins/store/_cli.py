"""``pentora scans list|show|diff|rm`` and the store options of ``pentora scan``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pentora_plugins.store._db import (
    StoreDamagedError,
    StoreError,
    configured_path,
    delete_scans,
    load_records,
    reading,
    resolve_id,
    retention_victims,
    scan_row,
    shown_status,
)

from pentora import clean_text
from pentora import clean_text as clean
from pentora import iso_time as iso
from pentora.cli import echo

# `pentora --help` imports this module (its options are the parser's): what only a command
# needs (the writer, the diff, the repair, the records, gevent) is imported by that command.


def add_commands(subparsers: Any, common: argparse.ArgumentParser, plugin: Any) -> None:
    """The ``scans`` command, and ``--store``/``--no-store`` on ``scan``."""
    scan = subparsers.choices.get("scan")
    if scan is not None:
        group = scan.add_argument_group("scan store")
        group.add_argument("--store", action=_StorePath, plugin=plugin, metavar="PATH",
                           help="the scan store file (default ~/.local/share/pentora/scans.db, "
                                "or $PENTORA_STORE)")
        group.add_argument("--no-store", action=_NoStore, plugin=plugin, nargs=0,
                           help="do not record this scan in the store")
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", metavar="PATH", help="the scan store file (default "
                       "~/.local/share/pentora/scans.db, or $PENTORA_STORE)")
    p = subparsers.add_parser("scans", help="stored scans: list, show, diff, remove, check")
    sub = p.add_subparsers(dest="scans_cmd", metavar="COMMAND", required=True)
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--format", choices=["text", "json"], default="text")
    parents = [common, store, fmt]
    c = sub.add_parser("list", parents=parents, help="stored scans, newest first")
    c.set_defaults(func=cmd_list, cooperative=False)
    c = sub.add_parser("show", parents=parents, help="one scan: nodes, records and findings")
    c.add_argument("id", help="scan ID (or a unique prefix)")
    c.set_defaults(func=cmd_show, cooperative=False)
    c = sub.add_parser("diff", parents=parents,
                       help="hosts, ports, services, findings and other records that appeared, went or "
                            "changed")
    c.add_argument("old", help="the earlier scan's ID")
    c.add_argument("new", help="the later scan's ID")
    c.set_defaults(func=cmd_diff, cooperative=False)
    c = sub.add_parser("rm", parents=[common, store], help="remove scans (or all but the newest N)")
    c.add_argument("ids", nargs="*", metavar="ID", help="scan IDs (or unique prefixes)")
    c.add_argument("--keep", type=_count, metavar="N", help="remove all but the newest N scans")
    c.set_defaults(func=cmd_rm, cooperative=False)
    c = sub.add_parser("check", parents=[common, store],
                       help="check the store file; --repair rebuilds a damaged one")
    c.add_argument("--repair", action="store_true",
                   help="move a damaged store aside and build a new one from what is readable")
    c.set_defaults(func=cmd_check, cooperative=False)


class _StorePath(argparse.Action):
    def __init__(self, *args: Any, plugin: Any, **kw: Any) -> None:
        self.plugin = plugin
        super().__init__(*args, **kw)

    def __call__(self, parser: Any, ns: argparse.Namespace, value: Any, option: Any = None) -> None:
        self.plugin.explicit = value
        setattr(ns, self.dest, value)


class _NoStore(_StorePath):
    def __call__(self, parser: Any, ns: argparse.Namespace, value: Any, option: Any = None) -> None:
        self.plugin.explicit = "off"
        setattr(ns, self.dest, True)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"--keep takes a number of scans, got '{text}'")
    return int(text)


def _path(args: argparse.Namespace) -> Path:
    path = configured_path(args.store)
    if path is None:
        raise StoreError("the scan store is turned off (PENTORA_STORE=off); pass --store PATH")
    if not path.exists():
        raise StoreError(f"no scan store at {path} (scans are stored there by `pentora scan`; "
                         "choose another with --store PATH or $PENTORA_STORE)")
    return path


@contextlib.contextmanager
def _store(args: argparse.Namespace) -> Iterator[sqlite3.Connection]:
    path = _path(args)
    with reading(path) as conn:
        # Reading needs no lock (WAL): importing what scans left pending is tried without
        # waiting for one, and left for next time while another pentora writes.
        conn.execute("PRAGMA busy_timeout = 0")
        with contextlib.suppress(sqlite3.Error):
            from pentora_plugins.store._writer import import_pending

            import_pending(conn, path)
        conn.execute("PRAGMA busy_timeout = 10000")
        yield conn


def _json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_list(args: argparse.Namespace) -> int:
    from pentora_plugins.store._reader import list_items

    with _store(args) as conn:
        items = list_items(conn)
    if args.format == "json":
        _json(items)
        return 0
    table = [("ID", "STARTED", "STATUS", "RUNS", "RECORDS", "FINDINGS", "DAG", "TARGETS")]
    table += [(i["id"], i["started_at"] or "", i["status"], str(i["runs"]), str(i["records"]),
               str(i["findings"]), i["dag"], i["targets"][:40]) for i in items]
    _table(table)
    if not items:
        echo("no scans stored")
    return 0


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    rows = [tuple(clean(c, None) for c in r) for r in rows]  # DAG names, targets, banners
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def cmd_show(args: argparse.Namespace) -> int:
    from pentora_plugins.kit.findings import SEVERITIES
    from pentora_plugins.store._reader import detail

    with _store(args) as conn:
        scan_id = resolve_id(conn, args.id)
        row = scan_row(conn, scan_id)
        shown = detail(conn, scan_id)
        records = load_records(conn, scan_id)
    nodes = [(n["node"], n["module_type"], n["status"], n["record"], n["run"]) for n in shown["nodes"]]
    if args.format == "json":
        _json({**shown, "records": records})
        return 0
    echo(f"scan {scan_id}  {clean(row['dag_name'], None)}  {shown_status(row)}  runs: {row['runs']}")
    echo(f"started {iso(row['started_at'])}  finished {iso(row['finished_at']) or '-'}")
    echo(f"vars: {clean(row['vars'], None)}")
    if row["error"]:
        echo(f"reason: {clean(row['error'], None)}")
    echo("")
    table = [("NODE", "MODULE", "STATUS", "RUN", "DETAIL")]
    for n, m, s, rec, r in nodes:
        record = rec or {}
        table.append((n, m, s, str(r), str(record.get("error") or record.get("reason") or "")[:80]))
    _table(table)
    echo("")
    kinds = Counter(str(f.get("kind")) for f in records)
    echo("records: " + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"))
    severities = Counter(str(f.get("severity") or "info") for f in records
                         if f.get("kind") == "vulnerability")
    worst_first = sorted(severities.items(),
                         key=lambda kv: -SEVERITIES.index(kv[0]) if kv[0] in SEVERITIES else 1)
    echo("findings: " + (", ".join(f"{n} {clean(s)}" for s, n in worst_first) or "none"))
    _ports_table(records)
    return 0


def _ports_table(records: list[dict[str, Any]]) -> None:
    from pentora_plugins.kit import diff as _diff

    services = {(f["host"], f["port"]): f for f in records if f.get("kind") == "service"}
    ports = [f for f in records if f.get("kind") == "port"]
    if not ports:
        return
    table = [("HOST", "PORT", "STATE", "SERVICE", "PRODUCT", "VERSION")]
    for p in sorted(ports, key=lambda p: (_diff.address_key(p["host"]), p["port"])):
        s = services.get((p["host"], p["port"]), {})
        table.append((p["host"], f"{p['port']}/{p.get('protocol', 'tcp')}", str(p.get("state", "")),
                      str(s.get("service") or ""), str(s.get("product") or ""), str(s.get("version") or "")))
    echo("")
    _table(table)


def cmd_diff(args: argparse.Namespace) -> int:
    from pentora_plugins.kit import diff as _diff

    with _store(args) as conn:
        old, new = resolve_id(conn, args.old), resolve_id(conn, args.new)
        changes = _diff.diff(load_records(conn, old), load_records(conn, new))
    if args.format == "json":
        _json({"old": old, "new": new, **changes})
    else:
        echo(_diff.render(changes, old, new))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    if not args.ids and args.keep is None:
        raise StoreError("scans rm takes scan IDs, or --keep N to remove all but the newest N")
    with _store(args) as conn:
        ids = [resolve_id(conn, i) for i in args.ids]
        if args.keep is not None:
            ids += [v for v in retention_victims(conn, args.keep) if v not in ids]
        running = [i for i in ids if shown_status(scan_row(conn, i)) == "running"]
        if running:
            raise StoreError(f"scan {running[0]} is still running; stop it before removing it")
        delete_scans(conn, ids)
    echo(f"removed {len(ids)} scan(s)" + (f": {', '.join(ids)}" if ids else ""))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from pentora_plugins.store import _repair

    path = _path(args)
    found = _repair.problems(path)
    if not found:
        echo(f"scan store {path} is sound")
        return 0
    damaged = StoreDamagedError(path, clean_text(found[0], 200))
    if not args.repair:
        echo(f"scan store {path} is damaged:")
        for line in found:
            echo(f"  {clean_text(line, 200)}")
        raise damaged
    done = _repair.repair(path)
    echo(f"scan store {path} was damaged ({clean_text(found[0], 200)}); the damaged file is kept "
          f"as {done.aside}")
    echo("recovered: " + ", ".join(f"{t.kept} {_NOUNS[name]}" for name, t in done.tables.items()))
    echo("lost:      " + ", ".join(f"{'?' if t.lost is None else t.lost} {_NOUNS[name]}"
                                    for name, t in done.tables.items())
          + (f" (scans {', '.join(done.lost_scans)})" if done.lost_scans else ""))
    if done.pending:
        echo(f"{done.pending} writes that scans left pending beside the store were added")
    return 0


_NOUNS = {"scans": "scans", "nodes": "node records", "results": "records",
          "checkpoints": "checkpoints"}
