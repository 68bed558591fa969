"""``-o`` files: every path checked before the run (all problems at once, exit 2), and each
file written under a temporary name and renamed into place, so a bad or failed run
never empties a results file that was there before. Real files, FIFOs, devices and
mounts; the scans (when one runs) go to servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import mounted_tmpfs
from tests.plugins._formats_scan import CONNECT_NODES, FORMATS, Scan, pentora, run_scan

OLD = b'{"kind": "scan", "scan_id": "earlier", "status": "completed"}\n'

CONNECT = """
name: connect-scan
vars: {targets: "", ports: ""}
nodes:""" + CONNECT_NODES


def connect_dag(folder: Path) -> str:
    (folder / "connect.yaml").write_text(CONNECT)
    return str(folder / "connect.yaml")


def partials(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".partial"))


def test_a_bad_second_output_leaves_the_first_file_byte_identical(run_cli, tmp_path):
    """The case that used to truncate old.jsonl before refusing /nonexistent/x.html."""
    old = tmp_path / "old.jsonl"
    old.write_bytes(OLD)
    before = old.stat()
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", "80", "--profile", "port-scan", "-o", "old.jsonl",
                   "-o", "/nonexistent/x.html", "--no-store", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "-o /nonexistent/x.html: its folder /nonexistent does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""  # nothing was scanned
    assert old.read_bytes() == OLD and old.stat().st_mtime_ns == before.st_mtime_ns
    assert partials(tmp_path) == []


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only tmpfs: root writes anywhere else, but not there."""
    yield from mounted_tmpfs(tmp_path / "ro", "ro,size=64k", "read-only")


def test_every_bad_output_is_named_at_once(run_cli, tmp_path):
    (tmp_path / "old.jsonl").write_bytes(OLD)
    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "fifo.jsonl")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "old.jsonl")
    (tmp_path / "plain").write_text("a file, not a folder\n")
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", "80", "--profile", "port-scan", "--no-store",
                   "-o", "old.jsonl", "-o", "jsonl:adir", "-o", "fifo.jsonl", "-o", "jsonl:/dev/null",
                   "-o", "missing/x.csv", "-o", "plain/x.md", "-o", "./old.jsonl", "-o", "link.jsonl",
                   "-o", "-", "--format", "jsonl", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    expected = [
        "-o adir: is a directory; give a file name inside it",
        "-o fifo.jsonl: is a FIFO (named pipe), not a regular file",
        "-o /dev/null: is a character device, not a regular file",
        "-o missing/x.csv: its folder missing does not exist; create it (mkdir -p)",
        "-o plain/x.md: its folder plain is not a folder",
        "-o ./old.jsonl: the same file as -o old.jsonl",
        "-o link.jsonl: the same file as -o old.jsonl",  # a symlink to it is the same file
    ]
    for line in expected:
        assert line in proc.stderr
    assert proc.stderr.count("\n  -o ") == len(expected) and "Traceback" not in proc.stderr
    assert (tmp_path / "old.jsonl").read_bytes() == OLD and partials(tmp_path) == []
    assert stat.S_ISFIFO((tmp_path / "fifo.jsonl").stat().st_mode)


def test_a_folder_that_cannot_take_a_file_is_refused_before_the_run(run_cli, tmp_path, readonly_dir):
    """Read-only for root too (a read-only mount), and /proc (no regular files can be made
    there): both found when the temporary file is created, before anything runs."""
    old = tmp_path / "old.jsonl"
    old.write_bytes(OLD)
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", "80", "--profile", "port-scan", "--no-store",
                   "-o", str(old), "-o", str(readonly_dir / "x.html"), "-o", "/proc/x.csv")
    assert proc.returncode == 2, proc.stderr
    assert f"-o {readonly_dir / 'x.html'}: cannot create a file in {readonly_dir}: Read-only file system" \
        in proc.stderr
    assert "-o /proc/x.csv: cannot create a file in /proc" in proc.stderr
    assert old.read_bytes() == OLD and partials(tmp_path) == []  # the one made is removed


def test_report_and_demo_check_their_outputs_too(run_cli, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(OLD)
    proc = run_cli("report", str(src), "-o", f"md:{tmp_path}")
    assert proc.returncode == 2 and f"-o {tmp_path}: is a directory" in proc.stderr
    proc = run_cli("demo", "-o", str(tmp_path / "no" / "x.jsonl"))
    assert proc.returncode == 2, proc.stderr
    assert "its folder" in proc.stderr and "demo services" not in proc.stderr  # none started


def test_demo_writes_each_output_in_the_format_its_name_says(run_cli, tmp_path):
    """``pentora demo -o demo.html`` once wrote JSON lines into demo.html."""
    proc = run_cli("demo", "-o", "demo.html", "-o", "demo.jsonl", "-oN", "demo.nmap", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "demo.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "</html>" in html
    records = [json.loads(line) for line in (tmp_path / "demo.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "scan" and records[-1]["command_line"].startswith("pentora demo -o ")
    normal = (tmp_path / "demo.nmap").read_text()
    assert "Nmap scan report for 127.0.0.1" in normal and "PORT " in normal
    assert {"results written to demo.html", "results written to demo.nmap"} <= set(proc.stderr.splitlines())


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    yield from run_scan(tmp_path_factory)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_through_the_rename_equals_the_format_written_to_a_stream(scan, fmt):
    """The file a live scan renamed into place holds exactly what the same writer writes
    to a plain stream (``pentora report --format F`` to stdout, no temporary file)."""
    assert scan.proc.returncode == 3, scan.proc.stderr  # the explode node fails on purpose
    proc = pentora("report", str(scan.out("jsonl")), "--format", fmt)
    assert proc.returncode == 0, proc.stderr
    if fmt == "jsonl":  # the replay has the scan line already, and writes it as read
        assert proc.stdout == scan.out("jsonl").read_text()
    else:
        assert scan.out(fmt).read_text() == proc.stdout
    assert partials(scan.dir) == []


def test_the_summary_file_is_the_terminal_summary_and_modes_follow_the_umask(run_cli, tmp_path,
                                                                             tcp_server):
    server = tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1\r\n")
    kept = tmp_path / "kept.jsonl"
    kept.write_bytes(OLD)
    kept.chmod(0o600)

    def umask_027() -> None:
        os.umask(0o027)

    proc = subprocess.run([sys.executable, "-m", "pentora", "scan", "-t", "127.0.0.1", "-p",
                           str(server.port), "--dag", connect_dag(tmp_path), "--no-store", "-o",
                           "summary:s.txt",
                           "-o", "kept.jsonl"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60, preexec_fn=umask_027)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s.txt").read_text() == proc.stdout and f"{server.port}/tcp" in proc.stdout
    assert stat.S_IMODE((tmp_path / "s.txt").stat().st_mode) == 0o640  # 0666 less the umask
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # an existing file keeps its mode
    assert kept.read_bytes() != OLD and partials(tmp_path) == []


def test_a_symlinked_output_replaces_the_file_it_points_to(run_cli, tmp_path, tcp_server):
    server = tcp_server()
    real = tmp_path / "real.jsonl"
    real.write_bytes(OLD)
    (tmp_path / "link.jsonl").symlink_to(real)
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", str(server.port), "--dag", connect_dag(tmp_path),
                   "--no-store", "-o", "link.jsonl", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "link.jsonl").is_symlink() and f'"port": {server.port}' in real.read_text()


PATH_FORMAT = '''
import sys
from functools import partial

from pentora import OutputFormat, hookimpl


class PortList:  # the pre-stream example of the hook reference: it is given the path
    def __init__(self, path):
        assert isinstance(path, str), path
        self.out = sys.stdout if path == "-" else open(path, "w")

    def record(self, kind, data):
        if kind == "port":
            get = data.get if isinstance(data, dict) else partial(getattr, data)
            print(f"{get('host')}:{get('port')}", file=self.out)

    def close(self, result):
        if self.out is not sys.stdout:
            self.out.close()


@hookimpl
def pentora_register_output_formats(registry):
    registry.register_output_format(OutputFormat("ports", "host:port lines", open=PortList,
                                                 extensions=(".ports",)))
'''


def test_a_format_that_takes_a_path_still_gets_one_after_the_checks(run_cli, tmp_path, tcp_server):
    server = tcp_server()
    (tmp_path / "fmt.py").write_text(PATH_FORMAT)
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", str(server.port), "--dag", connect_dag(tmp_path),
                   "--no-store", "--hooks", "fmt.py", "-o", "open.ports", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "open.ports").read_text() == f"127.0.0.1:{server.port}\n"
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", str(server.port), "--dag", connect_dag(tmp_path),
                   "--no-store", "--hooks", "fmt.py", "-o", "no/open.ports", cwd=tmp_path)
    assert proc.returncode == 2 and "-o no/open.ports: its folder no does not exist" in proc.stderr


def test_machine_output_on_stdout_is_not_mixed_with_the_summary(run_cli, tcp_server, tmp_path):
    """``-o - --format jsonl | jq``: stdout holds the records alone; the summary, for a
    person, goes to stderr then."""
    server = tcp_server(banner=b"SSH-2.0-OpenSSH_9.3\r\n")
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", str(server.port), "--profile", "service-scan",
                   "--no-store", "-o", "-", "--format", "jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is JSON
    assert {"port", "service", "scan"} <= {r["kind"] for r in records}
    assert "1 host(s) up" in proc.stderr or f"{server.port}/tcp" in proc.stderr  # the summary
    assert "results written to -" not in proc.stderr
    with_file = run_cli("scan", "-t", "127.0.0.1", "-p", str(server.port), "--profile",
                        "service-scan", "--no-store", "-o", "out.jsonl", cwd=tmp_path)
    assert f"{server.port}/tcp" in with_file.stdout  # no -o -: the summary stays on stdout
    assert "results written to out.jsonl" in with_file.stderr
