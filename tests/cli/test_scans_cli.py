"""``pentora scans list|show|diff|rm``, ``pentora scan --resume``/``--store``/``--no-store``,
Ctrl-C, a report on a full disk and a store locked by another pentora — end to end, in
subprocesses, against servers on 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pentora_plugins.store._db import connect

from tests.plugins.test_store import Locker, corrupt_middle_page, readable, scans_with_notes

SSH92 = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
SSH93 = b"SSH-2.0-OpenSSH_9.3p1 Debian-1\r\n"
FTP = b"220 (vsFTPd 3.0.3)\r\n"
HTTP = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 0\r\n\r\n"


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def rows(db: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def service_scan(run_cli, db: Path, *ports: int, extra: tuple[str, ...] = ()) -> str:
    proc = run_cli("scan", "--targets", "127.0.0.1", "-p", ",".join(map(str, ports)),
                   "--profile", "service-scan", "--store", str(db), "-q", *extra)
    assert proc.returncode == 0, proc.stderr
    return str(rows(db, "SELECT id FROM scans ORDER BY started_at DESC LIMIT 1")[0][0])


def test_list_show_diff_and_rm(run_cli, tcp_server, tmp_path):
    db = tmp_path / "scans.db"
    ssh, ftp = tcp_server(banner=SSH92), tcp_server(banner=FTP)
    first = service_scan(run_cli, db, ssh.port, ftp.port)
    ssh.stop()
    ftp.stop()
    ssh2 = tcp_server(banner=SSH93, port=ssh.port)  # the same port, a newer version
    http = tcp_server(respond=lambda data: HTTP)
    second = service_scan(run_cli, db, ssh.port, ftp.port, http.port)

    listed = run_cli("scans", "list", "--store", str(db))
    assert listed.returncode == 0, listed.stderr
    assert first in listed.stdout and second in listed.stdout and "completed" in listed.stdout
    as_json = json.loads(run_cli("scans", "list", "--store", str(db), "--format", "json").stdout)
    assert [s["id"] for s in as_json] == [second, first] and as_json[0]["records"] > 0

    # "findings" are vulnerability records, as in every report; "records" counts them all
    assert listed.stdout.splitlines()[0].split() == ["ID", "STARTED", "STATUS", "RUNS", "RECORDS",
                                                     "FINDINGS", "DAG", "TARGETS"]
    stored = json.loads(run_cli("scans", "show", first, "--store", str(db), "--format", "json").stdout)
    assert as_json[1]["records"] == len(stored["records"]) > 0
    assert as_json[1]["findings"] == sum(r["kind"] == "vulnerability" for r in stored["records"])
    shown = run_cli("scans", "show", first[:6], "--store", str(db))
    assert shown.returncode == 0, shown.stderr
    assert f"{ftp.port}/tcp" in shown.stdout and "vsftpd" in shown.stdout
    kinds = [line for line in shown.stdout.splitlines() if line.startswith(("records: ", "findings: "))]
    assert len(kinds) == 2 and "port" in kinds[0], shown.stdout
    assert "banner_grab" in shown.stdout and "completed" in shown.stdout

    diff = run_cli("scans", "diff", first, second, "--store", str(db))
    assert diff.returncode == 0, diff.stderr
    lines = [line.strip() for line in diff.stdout.splitlines()]
    assert f"- {ftp.port}/tcp open" in lines, diff.stdout
    assert f"+ {http.port}/tcp open" in lines, diff.stdout
    assert f"~ {ssh2.port}/tcp service ssh OpenSSH 9.2p1 -> ssh OpenSSH 9.3p1" in lines, diff.stdout
    changes = json.loads(run_cli("scans", "diff", first, second, "--store", str(db),
                                 "--format", "json").stdout)
    assert changes["ports"]["removed"] == [["127.0.0.1", f"{ftp.port}/tcp", "open"]]
    same = run_cli("scans", "diff", first, first, "--store", str(db))
    assert "no differences" in same.stdout

    assert run_cli("scans", "rm", "--keep", "1", "--store", str(db)).returncode == 0
    assert [r[0] for r in rows(db, "SELECT id FROM scans")] == [second]
    assert rows(db, "SELECT count(*) FROM results WHERE scan_id = ?", first) == [(0,)]
    removed = run_cli("scans", "rm", second, "--store", str(db))
    assert removed.returncode == 0 and second in removed.stdout
    assert rows(db, "SELECT count(*) FROM scans") == [(0,)]


def test_store_location_env_and_no_store(run_cli, tcp_server, tmp_path):
    ssh = tcp_server(banner=SSH92)
    db = tmp_path / "env.db"
    args = ("scan", "--targets", "127.0.0.1", "-p", str(ssh.port), "--profile", "port-scan", "-q")
    assert run_cli(*args, env={"PENTORA_STORE": str(db)}).returncode == 0
    assert rows(db, "SELECT count(*) FROM scans") == [(1,)]
    assert run_cli(*args, "--no-store", env={"PENTORA_STORE": str(db)}).returncode == 0
    assert run_cli(*args, env={"PENTORA_STORE": "off"}).returncode == 0
    assert rows(db, "SELECT count(*) FROM scans") == [(1,)]
    home = tmp_path / "home"
    assert run_cli(*args, env={"HOME": str(home), "XDG_DATA_HOME": "", "PENTORA_STORE": ""}).returncode == 0
    assert rows(home / ".local/share/pentora/scans.db", "SELECT count(*) FROM scans") == [(1,)]


@pytest.mark.parametrize("args, code, message", [
    (["scans", "show", "nosuch"], 1, "no scan 'nosuch' in the store"),
    (["scans", "diff", "nosuch", "other"], 1, "no scan 'nosuch'"),
    (["scans", "rm"], 1, "scans rm takes scan IDs, or --keep N"),
    (["scans", "rm", "--keep", "x"], 2, "--keep takes a number"),
    (["scan", "--resume", "nosuch"], 1, "no stored scan 'nosuch' to resume"),
    (["scan", "--resume", "abc", "--targets", "127.0.0.1"], 2, "drop --targets"),
    (["scan", "--profile", "port-scan"], 2, "--targets (or --resume SCAN_ID)"),
])
def test_bad_input_is_a_message(run_cli, tmp_path, args, code, message):
    db = tmp_path / "scans.db"
    sqlite3.connect(db).close()
    run_cli("scans", "list", "--store", str(db))  # creates the schema
    proc = run_cli(*args, "--store", str(db))
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_missing_store_is_named(run_cli, tmp_path):
    proc = run_cli("scans", "list", "--store", str(tmp_path / "none.db"))
    assert proc.returncode == 1 and f"no scan store at {tmp_path / 'none.db'}" in proc.stderr


def test_resuming_a_completed_scan_says_there_is_nothing_to_do(run_cli, tcp_server, tmp_path):
    db = tmp_path / "scans.db"
    sid = service_scan(run_cli, db, tcp_server(banner=SSH92).port)
    proc = run_cli("scan", "--resume", sid, "--store", str(db))
    assert proc.returncode == 1 and f"scan {sid} completed; there is nothing to resume" in proc.stderr


HOOKS = '''
import pentora

@pentora.hookimpl
def pentora_scan_resume(scan_id):
    if scan_id != "feedface0001":
        return None
    dag = "name: stored\\nvars: {targets: ''}\\nnodes: [{instance_id: only, module_type: noop}]"
    return dag, {"targets": "127.0.0.1"}
'''


def test_pentora_scan_resume_hook_feeds_scan_resume(run_cli, tmp_path):
    """The core's side of --resume, without the store: any plugin may answer the hook."""
    hooks = tmp_path / "hooks.py"
    hooks.write_text(HOOKS)
    proc = run_cli("scan", "--resume", "feedface0001", "--hooks", str(hooks), "-p", "no:store")
    assert proc.returncode == 0, proc.stderr
    assert "scan feedface0001 completed" in proc.stdout


SLOW = """
name: slow
vars: {targets: ""}
nodes:
  - {instance_id: quick, module_type: sleep, config: {duration: 10ms, steps: 1}}
  - {instance_id: slow, module_type: sleep, depends_on: [quick], config: {duration: 3s, steps: 30}}
"""


def wait_for(check, what: str, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def node_status(db: Path, node: str) -> str | None:
    if not db.exists():
        return None
    try:
        found = rows(db, "SELECT status FROM nodes WHERE node = ?", node)
    except sqlite3.OperationalError:  # schema not written yet
        return None
    return found[0][0] if found else None


def test_ctrl_c_writes_the_partial_report_and_prints_the_resume_command(tmp_path):
    db, dag, out = tmp_path / "scans.db", tmp_path / "slow.yaml", tmp_path / "out.jsonl"
    dag.write_text(SLOW)
    proc = subprocess.Popen([sys.executable, "-m", "pentora", "scan", "--targets", "127.0.0.1",
                             "--dag", str(dag), "--store", str(db), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: node_status(db, "slow") == "running", "the slow node to start")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    sid = rows(db, "SELECT id FROM scans")[0][0]
    assert proc.returncode == 3, stderr
    assert f"Resume it with: pentora scan --resume {sid} --store {db}" in stderr
    assert "Traceback" not in stderr
    report = jsonl(out)
    assert report[-1]["kind"] == "scan" and report[-1]["status"] == "cancelled"
    assert rows(db, "SELECT status FROM scans") == [("cancelled",)]
    resumed = subprocess.run([sys.executable, "-m", "pentora", "scan", "--resume", sid,
                              "--store", str(db)], capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert rows(db, "SELECT status, runs FROM scans") == [("completed", 2)]
    quick = json.loads(rows(db, "SELECT record FROM nodes WHERE node = 'quick'")[0][0])
    assert quick["reason"] == "restored from an earlier run"


def test_a_full_disk_stops_one_report_with_a_message_and_loses_nothing(run_cli, tcp_server,
                                                                       tmp_path, tiny_disk):
    db, full, small = tmp_path / "scans.db", tmp_path / "all.jsonl", tiny_disk / "out.jsonl"
    ssh, ftp = tcp_server(banner=SSH92), tcp_server(banner=FTP)
    proc = run_cli("scan", "--targets", "127.0.0.1", "-p", f"{ssh.port},{ftp.port}", "--profile",
                   "service-scan", "--store", str(db), "-o", str(small), "-o", str(full))
    assert proc.returncode == 1, proc.stderr
    assert f"cannot write to {small}: No space left on device" in proc.stderr
    assert f"cannot write {small}: No space left on device" in proc.stderr  # at the end too
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert "OpenSSH" in proc.stdout  # the summary is still printed
    assert not small.exists()  # a cut file is never renamed into place, to pass for a whole one
    kept = [p for p in tiny_disk.iterdir() if p.name.endswith(".partial")]
    assert len(kept) == 1 and f"what was written is kept in {kept[0]}" in proc.stderr
    lines = jsonl(full)
    assert lines[-1]["kind"] == "scan" and lines[-1]["status"] == "completed"
    found = sorted(json.dumps(line, sort_keys=True) for line in lines
                   if line["kind"] not in ("node", "scan"))
    stored = sorted(json.dumps(json.loads(d), sort_keys=True)
                    for (d,) in rows(db, "SELECT data FROM results"))
    assert stored == found and any('"service"' in s for s in stored)


def test_a_store_locked_by_another_pentora_is_a_message_and_loses_nothing(run_cli, tcp_server,
                                                                          tmp_path):
    db = tmp_path / "scans.db"
    ssh = tcp_server(banner=SSH92)
    first = service_scan(run_cli, db, ssh.port)
    locker = Locker(db)
    try:
        proc = run_cli("scan", "--targets", "127.0.0.1", "-p", str(ssh.port), "--profile",
                       "service-scan", "--store", str(db), "-q", env={"PENTORA_STORE_WAIT": "1"})
        listed = run_cli("scans", "list", "--store", str(db))  # reading needs no lock (WAL)
    finally:
        locker.release()
    assert proc.returncode == 0, proc.stderr
    assert "locked by another pentora" in proc.stderr and "Traceback" not in proc.stderr
    assert "they are added the next time the store is opened" in proc.stderr
    assert listed.returncode == 0 and first in listed.stdout
    shown = run_cli("scans", "list", "--store", str(db), "--format", "json")  # imports the file
    scans = json.loads(shown.stdout)
    assert len(scans) == 2 and {s["status"] for s in scans} == {"completed"}
    assert not list(tmp_path.glob("scans.db.pending-*"))
    services = []
    for s in scans:
        found = json.loads(run_cli("scans", "show", s["id"], "--store", str(db), "--format",
                                   "json").stdout)["records"]
        services.append(sorted((f["kind"], f["port"], f.get("product"), f.get("version"))
                               for f in found if f["kind"] in ("port", "service")))
    assert services[0] == services[1]
    assert ("service", ssh.port, "OpenSSH", "9.2p1") in services[1]


def test_a_scan_whose_process_still_runs_is_not_resumed_nor_removed(run_cli, tmp_path):
    db = tmp_path / "scans.db"
    conn = connect(db)
    conn.execute("INSERT INTO scans (id, dag_name, dag, vars, status, started_at, runs, pid, host) "
                 "VALUES ('busy00000001', 'x', '{}', '{}', 'running', 0, 1, ?, ?)",
                 (os.getpid(), os.uname().nodename))
    conn.close()
    proc = run_cli("scan", "--resume", "busy00000001", "--store", str(db))
    assert proc.returncode == 1 and f"still running (pid {os.getpid()})" in proc.stderr
    proc = run_cli("scans", "rm", "busy", "--store", str(db))
    assert proc.returncode == 1 and "still running" in proc.stderr
    assert "running" in run_cli("scans", "list", "--store", str(db)).stdout


def interrupted(db: Path, sid: str, rerun: str = "asset_profile") -> None:
    """What a SIGKILL leaves: the scan "running" with no process, ``rerun`` not finished."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE scans SET status = 'running', pid = NULL WHERE id = ?", (sid,))
        conn.execute("UPDATE nodes SET status = 'running', outputs = NULL WHERE node = ?", (rerun,))


def node_reasons(db: Path) -> dict[str, str | None]:
    return {n: json.loads(r)["reason"] for n, r in rows(db, "SELECT node, record FROM nodes")}


def test_a_crafted_store_cannot_delete_a_file_through_resume(run_cli, tcp_server, tmp_path):
    """A store naming a class of the standard library under a pentora module (the class
    that deletes the file it names when freed) is refused: the file survives, the node
    runs again, and the warning names the scan, the node and the type."""
    db, victim = tmp_path / "scans.db", tmp_path / "victim.txt"
    victim.write_text("keep me")
    sid = service_scan(run_cli, db, tcp_server(banner=SSH92).port)
    closer = "pentora._context:tempfile._TemporaryFileCloser"
    inner = {"$obj": closer, "state": {"file": None, "name": str(tmp_path / "none"), "delete": False}}
    # An unknown type after it: whatever reads it fails, and drops (frees) the closer.
    crafted = {"targets": [{"$obj": closer, "state": {"file": inner, "name": str(victim), "delete": True}},
                           {"$obj": "pentora_plugins.nosuch:Thing", "state": {}}],
               "target_errors": []}
    interrupted(db, sid)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE nodes SET outputs = ? WHERE node = 'target_ingestion'",
                     (json.dumps(crafted),))
    proc = run_cli("scan", "--resume", sid, "--store", str(db))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "keep me"
    assert (f"scan {sid}: node 'target_ingestion': the store names type '{closer}', which is not "
            "a record type pentora stores; refused") in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    reasons = node_reasons(db)
    assert reasons["target_ingestion"] is None  # ran again
    assert reasons["port_scan"] == "restored from an earlier run"


def test_a_store_of_an_earlier_version_still_resumes(run_cli, tcp_server, tmp_path):
    """Records under the module paths earlier versions stored them (``pentora_plugins.records``,
    ``pentora_plugins._targetset``) are rebuilt: every finished node is restored."""
    db = tmp_path / "scans.db"
    ssh = tcp_server(banner=SSH92)
    sid = service_scan(run_cli, db, ssh.port)
    interrupted(db, sid)
    with sqlite3.connect(db) as conn:
        for node, outputs in conn.execute("SELECT node, outputs FROM nodes").fetchall():
            if outputs:
                old = (outputs.replace('"pentora_plugins.kit.records:', '"pentora_plugins.records:')
                       .replace('"pentora_plugins.kit.targetset:', '"pentora_plugins._targetset:'))
                conn.execute("UPDATE nodes SET outputs = ? WHERE node = ?", (old, node))
    stored = "".join(o for (o,) in rows(db, "SELECT outputs FROM nodes WHERE outputs IS NOT NULL"))
    assert "pentora_plugins.records:Port" in stored and "pentora_plugins._targetset:TargetSet" in stored
    seen = ssh.connections
    proc = run_cli("scan", "--resume", sid, "--store", str(db), "-o", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 0, proc.stderr
    assert "refused" not in proc.stderr and "cannot be read back" not in proc.stderr, proc.stderr
    reasons = node_reasons(db)
    for node in ("target_ingestion", "discover.merge", "port_scan", "banner_grab", "fingerprint"):
        assert reasons[node] == "restored from an earlier run", (node, reasons)
    assert reasons["asset_profile"] is None
    assert ssh.connections == seen  # neither scanned nor grabbed again
    profiles = [r for r in jsonl(tmp_path / "out.jsonl") if r["kind"] == "asset"]
    assert profiles and profiles[0]["open_ports"] == [ssh.port], profiles


def test_a_damaged_store_is_named_with_its_repair_and_repaired(run_cli, tmp_path):
    db, out = tmp_path / "scans.db", tmp_path / "new.jsonl"
    ids = scans_with_notes(db)
    corrupt_middle_page(db, "results")
    hit = next(i for i in ids if not readable(db, i))
    sound = next(i for i in ids if readable(db, i))
    message = (f"scan store {db} is damaged (database disk image is malformed): run `pentora scans "
               f"check --repair --store {db}`")
    for args in (["scans", "show", hit], ["scans", "diff", sound, hit], ["scans", "rm", hit],
                 ["scans", "check"], ["scan", "--resume", hit],
                 ["scan", "--targets", "127.0.0.1", "--profile", "port-scan", "-p", "1", "-o", str(out)]):
        proc = run_cli(*args, "--store", str(db), env={"PENTORA_STORE_WAIT": "30"})
        assert proc.returncode == 4, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()  # refused before the scan: no output, no pending file either
    assert not list(tmp_path.glob("scans.db.pending-*"))
    assert run_cli("scans", "show", sound, "--store", str(db)).returncode == 0  # what is readable

    repaired = run_cli("scans", "check", "--repair", "--store", str(db))
    assert repaired.returncode == 0, repaired.stderr
    (aside,) = tmp_path.glob("scans.db.damaged-*[0-9]")
    lines = repaired.stdout.splitlines()
    assert f"the damaged file is kept as {aside}" in lines[0]
    assert lines[1] == "recovered: 4 scans, 4 node records, " + lines[1].split(", ", 2)[2]
    lost = int(lines[2].split(", ")[2].split()[0])
    kept = rows(db, "SELECT count(*) FROM results")[0][0]
    assert 0 < lost and kept + lost == 200, lines
    assert run_cli("scans", "check", "--store", str(db)).stdout.strip() == f"scan store {db} is sound"
    for scan_id in ids:
        shown = run_cli("scans", "show", scan_id, "--store", str(db), "--format", "json")
        assert shown.returncode == 0, shown.stderr
    assert run_cli("scans", "rm", hit, "--store", str(db)).returncode == 0


def special_files(tmp_path: Path) -> dict[str, Path]:
    """A character device (the node of /dev/zero, made here: renaming it is harmless), a
    FIFO and a folder, in the test's own folder."""
    import stat

    dev, fifo = tmp_path / "zero", tmp_path / "fifo"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 5))
    os.mkfifo(fifo)
    return {"character device": dev, "FIFO": fifo, "directory": tmp_path}


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_store_that_is_not_a_regular_file_is_refused_and_never_moved(run_cli, tmp_path):
    for kind, path in special_files(tmp_path).items():
        for args in (("scans", "check", "--repair"), ("scans", "check"), ("scans", "list"),
                     ("scan", "-t", "127.0.0.1", "-p", "1", "--profile", "port-scan")):
            proc = run_cli(*args, "--store", str(path), timeout=30)
            assert proc.returncode != 0, (args, proc.stdout)  # before any scanning
            assert f"is a {kind}" in proc.stderr and "not a regular file" in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr
    # Nothing was moved aside or created beside them: a repair of /dev/zero must not
    # rename the system's device.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "zero"]
    assert os.major(os.stat(tmp_path / "zero").st_rdev) == 1


def test_a_pending_file_that_is_a_fifo_is_skipped_not_waited_for(run_cli, tmp_path):
    db = tmp_path / "scans.db"
    connect(db).close()
    os.mkfifo(tmp_path / "scans.db.pending-abc-1.jsonl")
    proc = run_cli("scans", "list", "--store", str(db), timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "pending store file" in proc.stderr and "FIFO" in proc.stderr
