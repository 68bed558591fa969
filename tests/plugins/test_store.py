"""The scan store plugin in-process: what it writes, when it commits, how it resumes, and
what it does when another pentora holds the store's lock. Servers on 127.0.0.1 only."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import gevent
import pentora_plugins.engine.modules
import pentora_plugins.portscan.connect_scanner
import pentora_plugins.services.banner_grabber
import pentora_plugins.services.fingerprint_parser
import pentora_plugins.targets.target_parser
import pytest
from pentora_plugins.kit import records as kit_records
from pentora_plugins.kit.assumed import AssumedHosts
from pentora_plugins.kit.records import Port
from pentora_plugins.kit.targetset import TargetSet
from pentora_plugins.store import StorePlugin
from pentora_plugins.store._codec import (
    ALLOWED,
    ASSUMED_HOSTS,
    FORMER_NAMES,
    TARGET_ERROR,
    TARGET_SET,
    RefusedTypeError,
    UnstorableError,
    decode,
    dumps,
    encode,
    loads,
)
from pentora_plugins.store._db import connect, reading
from pentora_plugins.store._writer import import_pending
from voluptuous import Optional

import pentora
from pentora import Module, NodeContext, Orchestrator, hookimpl

SSH = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
FTP = b"220 (vsFTPd 3.0.3)\r\n"

DAG = """
name: store-test
vars: {targets: "127.0.0.1", ports: "1"}
engine: {fail_fast: false}
nodes:
  - {instance_id: targets, module_type: target_parser, config: {targets: "${targets}"}}
  - {instance_id: ports, module_type: connect_scanner, depends_on: [targets],
     config: {ports: "${ports}", input: targets}}
  - {instance_id: banners, module_type: banner_grabber, depends_on: [ports],
     config: {race_probes: false}}  # no race: the same banners however loaded the machine
  - {instance_id: services, module_type: fingerprint_parser, depends_on: [banners]}
"""
PLUGINS = (pentora_plugins.targets, pentora_plugins.portscan,
           pentora_plugins.services,
           pentora_plugins.services, pentora_plugins.engine)


def scan(db: Path, ports: str, *extra: Any, dag: str = DAG, **kw: Any) -> Any:
    orch = Orchestrator(plugins=(*PLUGINS, StorePlugin(db), *extra), autoload=False)
    orch.load_dag(dag)
    return orch.execute(vars={"ports": ports}, **kw)


def rows(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def findings(db: Path, scan_id: str) -> list[tuple[str, str]]:
    return [(k, d) for k, d in rows(db, "SELECT kind, data FROM results WHERE scan_id = ?", scan_id)]


@pytest.fixture
def servers(tcp_server):
    return tcp_server(banner=SSH), tcp_server(banner=FTP)


def test_a_scan_is_stored_with_dag_vars_nodes_findings_outputs_and_checkpoints(tmp_path, servers):
    db = tmp_path / "scans.db"
    ssh, ftp = servers
    result = scan(db, f"{ssh.port},{ftp.port}")
    assert result.ok, result.failures()
    (row,) = rows(db, "SELECT id, dag_name, status, runs, vars, dag FROM scans")
    assert row[:4] == (result.scan_id, "store-test", "completed", 1)
    assert json.loads(row[4])["ports"] == f"{ssh.port},{ftp.port}"
    assert [n["instance_id"] for n in json.loads(row[5])["nodes"]] == ["targets", "ports", "banners",
                                                                      "services"]
    nodes = dict(rows(db, "SELECT node, status FROM nodes"))
    assert nodes == dict.fromkeys(["targets", "ports", "banners", "services"], "completed")
    kinds = Counter(k for k, _ in findings(db, result.scan_id))
    assert kinds["port"] == 2 and kinds["service"] == 2 and kinds["banner"] >= 2
    services = {json.loads(d)["product"] for k, d in findings(db, result.scan_id) if k == "service"}
    assert services == {"OpenSSH", "vsftpd"}
    # every node's outputs come back exactly (the TargetSet of target_parser included)
    for _node, outputs in rows(db, "SELECT node, outputs FROM nodes"):
        restored = loads(outputs)
        for key, value in restored.items():
            original = result.context.get(key)
            assert (list(value) if key == "targets" else value) == (
                list(original) if key == "targets" else original), key
    checkpoints = sorted(rows(db, "SELECT node, item FROM checkpoints"))
    assert ("ports", "127.0.0.1") in checkpoints
    assert {("banners", f"127.0.0.1:{p}") for p in (ssh.port, ftp.port)} <= set(checkpoints)
    assert {("services", f"127.0.0.1/tcp/{p}") for p in (ssh.port, ftp.port)} <= set(checkpoints)


def test_codec_round_trips_pentora_values_and_refuses_others():
    targets = TargetSet.parse("127.0.0.1-3,127.0.0.9")
    value = {"t": targets, "tuple": (1, "a"), "set": {3, 4}, "ints": {1: "x"},
             "ports": [Port(host="127.0.0.1", port=22)]}
    back = loads(dumps(value))
    assert [t.address for t in back["t"]] == [t.address for t in targets]
    assert back["tuple"] == (1, "a") and back["set"] == {3, 4} and back["ints"] == {1: "x"}
    assert back["ports"] == [Port(host="127.0.0.1", port=22)]
    with pytest.raises(UnstorableError), socket.socket() as s:
        encode({"sock": s})
    with pytest.raises(RefusedTypeError, match="not a record type pentora stores"):
        decode({"$obj": "os:system", "state": {}})


@pytest.mark.parametrize("name", [
    "pentora._context:tempfile._TemporaryFileCloser",  # a pentora module, a stdlib class in it
    "pentora_plugins.kit.records:Record",               # the base, not a stored record
    "pentora_plugins.kit.records:dataclasses.Field",
    "pentora_plugins.distributed.celery_shards:CeleryShards",
    "builtins:object",
])
def test_codec_rebuilds_only_the_record_types_pentora_stores_and_imports_nothing(name):
    module = name.partition(":")[0]
    loaded = module in sys.modules
    with pytest.raises(RefusedTypeError) as refused:
        decode({"$obj": name, "state": {"name": "x"}})
    assert refused.value.type_name == name
    assert (module in sys.modules) == loaded  # the store's names are never imported


def test_codec_sets_only_declared_fields_through_the_constructor():
    stored = encode(Port(host="127.0.0.1", port=22))
    stored["state"]["__class__"] = "x"
    with pytest.raises(UnstorableError, match=r"does not declare"):
        decode(stored)
    state = encode(TargetSet.parse("127.0.0.1"))
    state["state"]["_starts"] = ["127.0.0.1"]
    with pytest.raises(UnstorableError, match="not integers"):
        decode(state)


def test_codec_reads_classes_under_the_module_paths_an_earlier_version_stored():
    targets = TargetSet.parse("127.0.0.1-3", seed=7)
    error = pentora_plugins.targets.target_parser.TargetError(spec="x.invalid", error="no")
    values = {TARGET_SET: targets, TARGET_ERROR: error, ASSUMED_HOSTS: AssumedHosts(targets),
              **{name: cls(**{f: "1" for f in ("address", "host", "port", "id", "name")
                              if f in cls.__dataclass_fields__})
                 for name, cls in ((n, getattr(kit_records, n.partition(":")[2])) for n in ALLOWED
                                   if n.startswith("pentora_plugins.kit.records:"))}}
    assert set(values) == ALLOWED and set(FORMER_NAMES.values()) <= ALLOWED
    for former, current in FORMER_NAMES.items():
        stored = encode(values[current])
        assert stored["$obj"] == current
        stored["$obj"] = former
        back = decode(json.loads(json.dumps(stored)))
        if current == TARGET_SET:
            assert list(back) == list(targets) and back.seed == 7
        elif current == ASSUMED_HOSTS:
            assert list(back) == list(values[current]) and back.targets.seed == 7
        else:
            assert back == values[current], former


class EmitThenLook(Module):
    """Emits a finding, then watches the store (another connection) until it is there."""

    module_type = "emit_then_look"
    produces = ("seen",)
    config_schema = {Optional("db", default=""): str}

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        ctx.emit({"kind": "note", "text": "committed before the node ends"})
        seen = []
        for _ in range(100):  # up to 10 s: the commit is due within 0.1 s
            gevent.sleep(0.1)
            seen = rows(Path(config["db"]), "SELECT n.status FROM results r JOIN nodes n ON "
                        "n.scan_id = r.scan_id AND n.node = r.node WHERE r.kind = 'note'")
            if seen:
                break
        ctx.set("seen", [s for (s,) in seen])


def test_findings_are_committed_while_the_node_still_runs(tmp_path):
    db = tmp_path / "scans.db"
    orch = Orchestrator(plugins=(pentora_plugins.engine, Modules(EmitThenLook),
                                 StorePlugin(db)), autoload=False)
    orch.load_dag(f"nodes: [{{instance_id: a, module_type: emit_then_look, config: {{db: '{db}'}}}}]")
    result = orch.execute()
    assert result.context.get("seen") == ["running"]


class Modules:
    def __init__(self, *modules: type[Module]) -> None:
        self.modules = modules

    @hookimpl
    def pentora_register_modules(self, registry: Any) -> None:
        for m in self.modules:
            registry.register(m)


def test_resume_restores_completed_nodes_and_continues_a_partial_one_per_target(tmp_path, servers):
    db = tmp_path / "scans.db"
    ssh, ftp = servers
    first = scan(db, f"{ssh.port},{ftp.port}")
    before = sorted(findings(db, first.scan_id))
    sid = first.scan_id
    for run in (2, 3):  # killed, resumed; then the resumed run killed at the same place
        # What a SIGKILL in the middle of banner grabbing leaves: ports done, one banner done.
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE scans SET status = 'running', pid = NULL WHERE id = ?", (sid,))
            conn.execute("UPDATE nodes SET status = 'running', outputs = NULL WHERE node = 'banners'")
            conn.execute("UPDATE nodes SET status = 'pending', outputs = NULL WHERE node = 'services'")
            conn.execute("DELETE FROM checkpoints WHERE node IN ('services') OR (node = 'banners' "
                         "AND item = ?)", (f"127.0.0.1:{ftp.port}",))
        seen = (ssh.connections, ftp.connections)
        again = scan(db, f"{ssh.port},{ftp.port}", scan_id=sid, options={"resume": True})
        assert again.ok, again.failures()
        for node in ("targets", "ports"):
            assert again.nodes[node].reason == "restored from an earlier run"
        assert again.nodes["banners"].reason is None and again.nodes["services"].reason is None
        assert ssh.connections == seen[0]  # neither port-scanned nor grabbed again: checkpointed
        assert ftp.connections > seen[1]   # its banner was not checkpointed: grabbed again
        assert sorted(findings(db, sid)) == before  # same findings, each once
        assert rows(db, "SELECT runs, status FROM scans") == [(run, "completed")]
        assert {p.port for p in again.context.get("open_ports")} == {ssh.port, ftp.port}
        assert len(again.context.get("service_fingerprints")) == 2


class Locker:
    """Another process holding the store's write lock until ``release()``."""

    def __init__(self, db: Path) -> None:
        code = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
                "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.readline(); "
                "c.execute('COMMIT')")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(db)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "locked\n"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(10)


class Burst(Module):
    """Emits ``count`` findings, then (``release``) lets the other process go."""

    module_type = "burst"
    produces = ("burst",)
    config_schema = {Optional("count", default=50): int, Optional("release", default=False): bool,
                     Optional("hold", default=0.0): float}
    locker: ClassVar[Locker | None] = None

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        for i in range(config["count"]):
            ctx.emit({"kind": "note", "n": i})
        gevent.sleep(config["hold"])  # > a commit's 1 s wait for the lock: some find it locked
        if config["release"] and Burst.locker is not None:
            Burst.locker.release()
        ctx.set("burst", config["count"])


def _burst_scan(db: Path, release: bool, hold: float = 0.0) -> Any:
    orch = Orchestrator(plugins=(Modules(Burst), StorePlugin(db)), autoload=False)
    orch.load_dag("nodes: [{instance_id: a, module_type: burst, config: "
                  f"{{release: {release}, hold: {hold}}}}}]")
    return orch.execute()


def test_a_store_locked_by_another_pentora_is_waited_for_and_loses_nothing(tmp_path, log_messages):
    db = tmp_path / "scans.db"
    connect(db).close()
    Burst.locker = Locker(db)
    try:
        result = _burst_scan(db, release=True, hold=2.5)
    finally:
        Burst.locker.release()
    assert result.ok
    assert len(rows(db, "SELECT * FROM results WHERE kind = 'note'")) == 50
    assert any("locked by another pentora" in m for m in log_messages), log_messages
    assert not any("Traceback" in m for m in log_messages)


def test_a_store_locked_past_the_wait_leaves_a_pending_file_imported_later(tmp_path, log_messages,
                                                                           monkeypatch):
    db = tmp_path / "scans.db"
    connect(db).close()
    monkeypatch.setenv("PENTORA_STORE_WAIT", "0.3")
    locker = Locker(db)
    try:
        result = _burst_scan(db, release=False, hold=1.5)
    finally:
        locker.release()
    pending = list(tmp_path.glob("scans.db.pending-*.jsonl"))
    assert len(pending) == 1
    assert any(str(pending[0]) in m and "next time the store is opened" in m for m in log_messages)
    assert rows(db, "SELECT count(*) FROM results") == [(0,)]
    with reading(db) as conn:
        assert import_pending(conn, db) > 50
    assert rows(db, "SELECT status FROM scans WHERE id = ?", result.scan_id) == [("completed",)]
    assert len(rows(db, "SELECT * FROM results WHERE kind = 'note'")) == 50
    assert not pending[0].exists()


def test_retention_keeps_the_newest_scans(tmp_path, monkeypatch):
    db = tmp_path / "scans.db"
    monkeypatch.setenv("PENTORA_STORE_KEEP", "2")
    ids = [_burst_scan(db, release=False).scan_id for _ in range(3)]
    assert sorted(r[0] for r in rows(db, "SELECT id FROM scans")) == sorted(ids[1:])
    assert {r[0] for r in rows(db, "SELECT DISTINCT scan_id FROM results")} == set(ids[1:])


def test_an_unwritable_store_is_a_warning_and_the_scan_goes_on(tmp_path, log_messages):
    bad = tmp_path / "not-a-db"
    bad.write_text("this is not SQLite " * 100)
    result = _burst_scan(bad, release=False)
    assert result.ok
    assert any(str(bad) in m and "not stored" in m for m in log_messages), log_messages


def test_diff_compares_hosts_ports_services_and_findings():
    from pentora_plugins.kit.diff import diff, render

    def f(kind: str, **fields: Any) -> dict[str, Any]:
        return {"kind": kind, "host": "127.0.0.1", **fields}

    old = [{"kind": "host", "address": "127.0.0.1"}, f("port", port=22, protocol="tcp"),
           f("service", port=22, protocol="tcp", service="ssh", product="OpenSSH", version="9.2p1"),
           f("vulnerability", port=22, id="CVE-2023-1", severity="high"),
           f("webtech", port=80, name="nginx", version="1.22.1"), f("banner", port=22, data="x")]
    new = [{"kind": "host", "address": "127.0.0.1"}, f("port", port=80, protocol="tcp"),
           f("service", port=22, protocol="tcp", service="ssh", product="OpenSSH", version="9.3p1"),
           f("vulnerability", port=22, id="CVE-2023-1", severity="critical"),
           f("webtech", port=80, name="nginx", version="1.25.0"), f("banner", port=22, data="y")]
    changes = diff(old, new)
    assert changes["hosts"] == {"added": [], "removed": [], "changed": []}
    assert changes["ports"]["added"] == [["127.0.0.1", "80/tcp", "open"]]
    assert changes["ports"]["removed"] == [["127.0.0.1", "22/tcp", "open"]]
    text = render(changes, "a", "b").splitlines()
    assert "  ~ 22/tcp service ssh OpenSSH 9.2p1 -> ssh OpenSSH 9.3p1" in text
    assert "  ~ 22/tcp vulnerability CVE-2023-1 high -> critical" in text
    assert "  ~ 80/tcp webtech nginx 1.22.1 -> 1.25.0" in text
    assert not [line for line in text if "banner" in line]  # banners restate ports: left out


def test_a_resumed_connect_scan_skips_the_hosts_it_had_finished(tmp_path, servers):
    db = tmp_path / "scans.db"
    ssh, ftp = servers
    dag = DAG.replace('vars: {targets: "127.0.0.1"', 'vars: {targets: "127.0.0.1,127.0.0.2"')
    first = scan(db, f"{ssh.port},{ftp.port}", dag=dag)
    assert {("ports", "127.0.0.1"), ("ports", "127.0.0.2")} <= set(
        rows(db, "SELECT node, item FROM checkpoints"))
    with sqlite3.connect(db) as conn:  # killed while 127.0.0.2 was being port-scanned
        conn.execute("UPDATE nodes SET status = 'running', outputs = NULL WHERE node = 'ports'")
        conn.execute("UPDATE nodes SET status = 'pending', outputs = NULL "
                     "WHERE node IN ('banners', 'services')")
        conn.execute("DELETE FROM checkpoints WHERE item = '127.0.0.2'")
    seen = (ssh.connections, ftp.connections)
    before = sorted(findings(db, first.scan_id))
    again = scan(db, f"{ssh.port},{ftp.port}", dag=dag, scan_id=first.scan_id,
                 options={"resume": True})
    assert again.ok, again.failures()
    assert (ssh.connections, ftp.connections) == seen  # 127.0.0.1: not scanned nor grabbed again
    assert [(p.host, p.port) for p in again.context.get("open_ports")] == sorted(
        ("127.0.0.1", p) for p in (ssh.port, ftp.port))
    assert sorted(findings(db, first.scan_id)) == before  # each finding once
    assert len(again.context.get("service_fingerprints")) == 2


def corrupt_middle_page(db: Path, table: str, min_pages: int = 3) -> int:
    """Overwrite the middle leaf page of ``table`` with garbage (after moving the WAL's
    pages into the file, where they are overwritten too); the page number."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        try:
            pages = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND "
                                                "pagetype = 'leaf' ORDER BY pageno", (table,))]
        except sqlite3.OperationalError as e:
            pytest.skip(f"this SQLite has no dbstat table to find a page of {table} by: {e}")
    assert len(pages) >= min_pages, f"{table} has {len(pages)} leaf pages, fewer than {min_pages}"
    page = pages[len(pages) // 2]
    with open(db, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xa5" * size)
    return page


def scans_with_notes(db: Path, count: int = 4) -> list[str]:
    """``count`` stored scans of 50 findings each: several pages of results."""
    return [_burst_scan(db, release=False).scan_id for _ in range(count)]


def readable(db: Path, scan_id: str) -> bool:
    try:
        rows(db, "SELECT data FROM results WHERE scan_id = ?", scan_id)
    except sqlite3.DatabaseError:
        return False
    return True


def test_repair_copies_every_readable_row_and_keeps_the_damaged_file(tmp_path):
    from pentora_plugins.store import _repair

    db = tmp_path / "scans.db"
    ids = scans_with_notes(db)
    corrupt_middle_page(db, "results")
    damaged = db.read_bytes()
    assert _repair.problems(db)
    hit = [i for i in ids if not readable(db, i)]
    assert hit and len(hit) < len(ids)
    done = _repair.repair(db)
    assert done.aside.read_bytes() == damaged  # moved aside whole, not rewritten
    assert done.aside.name.startswith("scans.db.damaged-")
    assert _repair.problems(db) == []
    results = done.tables["results"]
    kept = rows(db, "SELECT scan_id, count(*) FROM results GROUP BY scan_id")
    assert sorted(i for i, _ in kept) == sorted(ids)  # every scan kept some findings
    assert results.kept == sum(n for _, n in kept) and results.total == 200
    assert 0 < results.lost < 50 and results.kept + results.lost == 200
    assert done.tables["scans"].kept == 4 and done.tables["scans"].lost == 0
    for scan_id, n in kept:  # what is lost is lost from the damaged scans only
        assert n == 50 or scan_id in hit
    assert rows(db, "SELECT status FROM scans") == [("completed",)] * 4
    again = _repair._aside_name(db)  # a second repair in the same second: another name
    assert again != done.aside


def test_a_damaged_store_is_not_waited_for_and_its_writes_go_to_the_pending_file(tmp_path,
                                                                               log_messages):
    db = tmp_path / "scans.db"
    scans_with_notes(db, 3)
    corrupt_middle_page(db, "scans", min_pages=1)  # the table a new scan's first commit writes to
    result = _burst_scan(db, release=False)
    assert result.ok
    text = "\n".join(log_messages)
    assert f"scan store {db} is damaged" in text and "scans check --repair" in text, text
    assert "waiting up to" not in text and "locked" not in text
    (pending,) = tmp_path.glob("scans.db.pending-*.jsonl")
    assert f"saved to {pending}" in text
    assert sum(1 for line in pending.read_text().splitlines() if '"result"' in line) == 50

    from pentora_plugins.store import _repair

    done = _repair.repair(db)  # the repaired store takes in what the scan saved beside it
    assert done.pending > 50 and not pending.exists()
    assert rows(db, "SELECT status FROM scans WHERE id = ?", result.scan_id) == [("completed",)]
    assert rows(db, "SELECT count(*) FROM results WHERE scan_id = ?", result.scan_id) == [(50,)]
    # The damaged page held the other scans' records: their findings went with them.
    assert done.tables["scans"].kept == 0 and done.tables["results"].orphans == 150


def test_a_locked_store_costs_a_scan_one_wait(tmp_path, monkeypatch):
    """Once a commit found the store locked, node ends and ticks only try: the scan waits
    for the lock at most once while it runs (and once more at its end), not at each node."""
    from pentora_plugins.store._writer import BUSY_WAIT, Writer

    db = tmp_path / "scans.db"
    connect(db).close()
    waits: list[float] = []
    run = Writer._run

    def counting(self: Writer, fn: Any, busy: float) -> Any:
        waits.append(busy)
        return run(self, fn, busy)

    monkeypatch.setattr(Writer, "_run", counting)
    monkeypatch.setenv("PENTORA_STORE_WAIT", "0")
    nodes = ", ".join(f"{{instance_id: n{i}, module_type: burst, config: {{count: 5}}}}" for i in range(8))
    locker = Locker(db)
    try:
        orch = Orchestrator(plugins=(Modules(Burst), StorePlugin(db)), autoload=False)
        orch.load_dag(f"nodes: [{nodes}]")
        result = orch.execute()
    finally:
        locker.release()
    assert result.ok
    commits = waits[1:]  # the first call is the scan's start, which only reads
    assert len(commits) >= 9  # 8 node ends and the end of the scan at least
    assert commits.count(BUSY_WAIT) == 2 and commits[-1] == BUSY_WAIT, commits  # first, and at the end
    assert all(w == 0 for w in commits[1:-1]), commits
    (pending,) = tmp_path.glob("scans.db.pending-*.jsonl")
    assert sum(1 for line in pending.read_text().splitlines() if '"result"' in line) == 40


def test_repair_of_a_file_that_is_no_store_keeps_it_and_starts_afresh(tmp_path):
    from pentora_plugins.store import _repair

    db = tmp_path / "scans.db"
    db.write_bytes(b"not SQLite at all " * 500)
    assert _repair.problems(db) == ["file is not a database"]
    done = _repair.repair(db)
    assert done.aside.read_bytes() == b"not SQLite at all " * 500
    assert {t.kept for t in done.tables.values()} == {0}
    assert {t.lost for t in done.tables.values()} == {None}  # how much was there: unknown
    assert _repair.problems(db) == [] and rows(db, "SELECT count(*) FROM scans") == [(0,)]


def test_repair_refuses_a_store_another_pentora_holds(tmp_path):
    from pentora_plugins.store import _repair
    from pentora_plugins.store._db import StoreError

    db = tmp_path / "scans.db"
    connect(db).close()
    locker = Locker(db)
    try:
        with pytest.raises(StoreError, match="in use by another pentora"):
            _repair.repair(db)
    finally:
        locker.release()
    assert [p.name for p in tmp_path.iterdir() if "damaged" in p.name] == []


def test_pentora_scan_store_reads_lists_and_removes_what_a_scan_with_the_store_option_wrote(
        tcp_server, tmp_path):
    """A scan given ``options={"store": PATH}`` (the server's) is stored by a recorder that
    was given no path; the hook's reader lists it, shows it as ``scans show`` does, gives
    its records, marks it interrupted and removes it."""
    server = tcp_server(banner=SSH)
    db = tmp_path / "chosen.db"
    orch = Orchestrator(plugins=(*PLUGINS, StorePlugin()), autoload=False)
    orch.load_dag(DAG)
    result = orch.execute(vars={"ports": str(server.port)}, options={"store": str(db)})
    store = orch.pm.hook.pentora_scan_store(path=str(db))
    assert isinstance(store, pentora.ScanStore)
    [item] = store.list()
    assert item["id"] == result.scan_id and item["status"] == "completed"
    assert item["targets"] == "127.0.0.1" and item["records"] >= 2
    assert store.count() == 1 and store.count(status="failed") == 0
    assert store.list(status="failed") == [] and store.list(offset=1) == []
    shown = store.get(result.scan_id)
    assert shown["scan"]["status"] == "completed" and shown["counts"]["port"] == 1
    assert [n["node"] for n in shown["nodes"]] == ["targets", "ports", "banners", "services"]
    assert {"kind": "port", "host": "127.0.0.1", "port": server.port}.items() <= \
        next(r for r in store.records(result.scan_id) if r["kind"] == "port").items()
    store.mark_interrupted([result.scan_id])  # a completed scan stays completed
    assert store.get(result.scan_id)["scan"]["status"] == "completed"
    assert store.get("nope") is None
    assert store.delete(result.scan_id) is True and store.delete(result.scan_id) is False
    assert store.list() == []
