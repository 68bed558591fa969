"""``-o`` files: every path checked before the run (all problems at once, exit 2), and each
file written under a temporary name and renamed into place, so a bad or failed run
never empties a results file that was there before. Real files, FIFOs, devices and
mounts; the scans (when one runs) go to servers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import mounted_tmpfs
from tests.plugins._formats_scan import CONNECT_NODES, FORMATS, Scan, pentora, run_scan, validate_nmap_xml

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


def test_oa_and_several_outputs_each_in_its_format_and_xml_on_stdout(run_cli, tmp_path, tcp_server):
    """nmap's -oA BASE (three files), -o FILE by extension, -o FORMAT:FILE, and -oX - on
    stdout, all in one scan; the summary goes to stderr then."""
    server = tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1\r\n")
    argv = ["scan", "-t", "127.0.0.1", "-p", str(server.port), "--profile", "service-scan",
            "--no-store", "-oA", "base", "-o", "r.html", "-o", "json:out.dat", "-oX", "-"]
    proc = run_cli(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("base.nmap", "base.xml", "base.gnmap", "r.html", "out.dat"):
        assert f"results written to {name}" in proc.stderr
    assert f"{server.port}/tcp" in proc.stderr  # the summary, off stdout
    validate_nmap_xml(proc.stdout)
    validate_nmap_xml(tmp_path / "base.xml")
    args = ET.parse(tmp_path / "base.xml").getroot().get("args")
    assert args == shlex.join(["pentora", *argv]) == ET.fromstring(proc.stdout).get("args")
    normal = (tmp_path / "base.nmap").read_text()
    assert re.search(rf"^PORT +STATE SERVICE +VERSION\n{server.port}/tcp +open +ssh +OpenSSH 9.2p1 "
                     r"\(protocol 2.0\)$",
                     normal, re.M), normal
    grepable = (tmp_path / "base.gnmap").read_text().splitlines()
    assert grepable[1] == "Host: 127.0.0.1 ()\tStatus: Up"
    assert grepable[2] == (f"Host: 127.0.0.1 ()\tPorts: {server.port}/open/tcp//ssh//OpenSSH 9.2p1 "
                           "(protocol 2.0)/\tOS: Linux|Unix")
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert json.loads((tmp_path / "out.dat").read_text())["scan"]["command_line"] == args
    assert partials(tmp_path) == []


@pytest.mark.parametrize("argv, message", [
    (["-oXf.xml"], "error: -oXf.xml: give -oX and its file apart (-oX f.xml), or write -o Xf.xml"),
    (["-o", "a.jsonl", "-o", "b.html", "--format", "json"],
     "error: --format json applies to -o - (stdout) only: a file is written in the format of its "
     "extension; to choose another, write -o json:FILE"),
    (["-o", "b.dat"], "name it: -o FORMAT:b.dat (e.g. json:b.dat)"),
    (["-o", "pdf:b.dat"], "cannot tell the output format of 'pdf:b.dat'"),  # not a format: a path
    (["-oA", "-"], "-oA writes three files named after a base name"),
    (["-oX", "-", "-o", "-"], "-o -: stdout is given to 2 outputs; give all but one a file"),
])
def test_output_options_that_would_surprise_are_refused_before_the_run(run_cli, tmp_path, argv, message):
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", "80", "--profile", "port-scan", "--no-store", *argv,
                   cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written, not even Xf.xml


def test_jsonl_on_stdout_pipes_into_a_json_reader_without_q(tcp_server, tmp_path):
    """``pentora scan … -o - --format jsonl | python -m json.tool --json-lines``: a real pipe,
    the summary on stderr, not in the reader's way."""
    server = tcp_server(banner=b"SSH-2.0-OpenSSH_9.3\r\n")
    scan = subprocess.Popen([sys.executable, "-m", "pentora", "scan", "-t", "127.0.0.1", "-p",
                             str(server.port), "--dag", connect_dag(tmp_path), "--no-store", "-o", "-",
                             "--format", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=tmp_path)
    assert scan.stdout is not None
    reader = subprocess.run([sys.executable, "-m", "json.tool", "--json-lines", "--compact"],
                            stdin=scan.stdout, capture_output=True, text=True, timeout=60)
    scan.stdout.close()
    _, err = scan.communicate(timeout=60)
    assert scan.returncode == 0 and reader.returncode == 0, (err, reader.stderr)
    kinds = [json.loads(line)["kind"] for line in reader.stdout.splitlines()]
    assert "port" in kinds and kinds[-1] == "scan"
    assert f"{server.port}/tcp" in err.decode()
