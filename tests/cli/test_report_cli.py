"""``pentora report FILE.jsonl``: an earlier scan's JSONL rendered again, and bad files refused
with the line number (exit 1), never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins._formats_scan import FORMATS, Scan, pentora, run_scan, schema_errors


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    yield from run_scan(tmp_path_factory)



@pytest.mark.parametrize("fmt", FORMATS)
def test_report_renders_what_the_live_scan_wrote(scan, fmt, tmp_path: Path):
    """Replaying the JSONL through a format gives the very file the scan wrote live."""
    out = tmp_path / f"again.{fmt}"
    proc = pentora("report", str(scan.out("jsonl")), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == f"report written to {out}\n"
    assert out.read_text() == scan.out(fmt).read_text()


def test_each_output_takes_its_own_format_and_format_names_stdouts(scan, tmp_path: Path):
    """Several -o at once: each in the format of its extension, or the FORMAT: it names;
    --format is the format of -o - alone."""
    a, b, c = tmp_path / "a.html", tmp_path / "b.txt", tmp_path / "c.dat"
    proc = pentora("report", str(scan.out("jsonl")), "-o", str(a), "-o", f"md:{b}", "-o", f"json:{c}",
                   "-o", "-", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert a.read_text() == scan.out("html").read_text()
    assert b.read_text() == scan.out("md").read_text()
    assert schema_errors(json.loads(c.read_text())) == []
    assert proc.stdout == scan.out("csv").read_text()
    proc = pentora("report", str(scan.out("jsonl")), "--format", "json")  # no -o: stdout
    assert proc.returncode == 0 and schema_errors(json.loads(proc.stdout)) == []


def test_format_with_files_only_is_refused_naming_the_way(scan, tmp_path: Path):
    """``-o a.jsonl -o b.html --format json`` once wrote JSON into b.html."""
    b = tmp_path / "b.html"
    proc = pentora("report", str(scan.out("jsonl")), "-o", str(tmp_path / "a.jsonl"), "-o", str(b),
                   "--format", "json")
    assert proc.returncode == 2, proc.stderr
    assert "--format json applies to -o - (stdout) only" in proc.stderr
    assert "write -o json:FILE" in proc.stderr and not b.exists()


def test_report_without_an_output_prints_the_summary(scan):
    """What the scan printed when it ended, drawn again from its JSONL."""
    proc = pentora("report", str(scan.out("jsonl")))
    assert proc.returncode == 0, proc.stderr
    live = scan.proc.stdout.splitlines()
    assert proc.stdout.splitlines() == live, proc.stdout
    assert any(f"{scan.ports['ssh']}/tcp" in line for line in live)
    assert proc.stderr == ""


def test_report_reads_stdin(scan):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pentora", "report", "-", "--format", "csv"],
                          input=scan.out("jsonl").read_text(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == scan.out("csv").read_text()


def test_an_interrupted_scan_without_its_scan_line_still_renders(scan, tmp_path: Path):
    lines = scan.out("jsonl").read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:-1]))
    proc = pentora("report", str(cut), "--format", "md")
    assert proc.returncode == 0, proc.stderr
    assert "| Status | incomplete (no scan line: the scan was interrupted?) |" in proc.stdout
    assert "| Open ports | 3 |" in proc.stdout
    html = tmp_path / "cut.html"
    assert pentora("report", str(cut), "-o", str(html)).returncode == 0
    assert 'data-node="explode" data-status="failed"' in html.read_text()  # nodes drawn, unconnected


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text(text)
    return path


HOST = '{"kind": "host", "address": "127.0.0.1", "alive": true}\n'
PORT = '{"kind": "port", "host": "127.0.0.1", "port": 22, "protocol": "tcp", "state": "open"}\n'


@pytest.mark.parametrize("text, message", [
    (HOST + "{not json\n" + PORT,
     "line 2: not valid JSON: Expecting property name enclosed in double quotes"),
    (HOST + PORT + '{"kind": "port", "host": "127.0',
     "line 3: truncated: the file ends in the middle of this line"),
    (HOST + "[1, 2]\n", "line 2: expected a JSON object with a string 'kind' field"),
    (HOST + '{"kind": "port", "host": "127.0.0.1", "port": "22", "protocol": "tcp", "state": "open"}\n',
     "line 2: field 'port' of a 'port' record should be integer, not \"22\""),
    (HOST + '{"kind": "service", "host": "127.0.0.1", "port": 22}\n',
     "line 2: a 'service' record needs the field(s) service"),
    (HOST + '{"kind": "host", "address": "127.0.0.1", "alive": 1}\n',
     "line 2: field 'alive' of a 'host' record should be boolean, not 1"),
    (HOST + "\xff\n", "line 2: not valid JSON"),
    ("\n\n", "holds no records: nothing to report"),
])
def test_bad_jsonl_is_refused_with_its_line_number(tmp_path: Path, text, message):
    path = _write(tmp_path, text)
    out = tmp_path / "out.md"
    proc = pentora("report", str(path), "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr and str(path) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # nothing written from a file that was refused


def test_not_utf8_is_named(tmp_path: Path):
    path = tmp_path / "bin.jsonl"
    path.write_bytes(HOST.encode() + b'{"kind": "host", "address": "\xff"}\n')
    proc = pentora("report", str(path), "--format", "md")
    assert proc.returncode == 1 and "line 2: not UTF-8 text (byte 30)" in proc.stderr


def test_skip_bad_lines_renders_the_rest_and_names_each_skipped_line(tmp_path: Path):
    # a killed scan's cut line, then lines a resumed scan appended after it
    cut = '{"kind": "port", "ho'
    path = _write(tmp_path, HOST + cut + "\n" + PORT + '{"kind": 5}\n' + cut)
    proc = pentora("report", str(path), "--format", "csv", "--skip-bad-lines")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith("127.0.0.1,,22,tcp,open")
    assert [line.split(":")[0] for line in proc.stderr.splitlines()] == ["warning"] * 3
    assert "line 2 skipped: not valid JSON" in proc.stderr
    assert "line 4 skipped: expected a JSON object" in proc.stderr
    assert "line 5 skipped: truncated" in proc.stderr


def test_unknown_kinds_pass_through(tmp_path: Path):
    path = _write(tmp_path, HOST + '{"kind": "third_party_thing", "x": [1]}\n')
    proc = pentora("report", str(path), "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[1]) == {"kind": "third_party_thing", "x": [1]}


@pytest.mark.parametrize("args, code, message", [
    (["missing.jsonl", "--format", "md"], 1, "JSONL report file not found: missing.jsonl (resolved to "),
    (["in.jsonl", "-o", "in.jsonl"], 2, "would overwrite the JSONL being read"),
    (["in.jsonl", "-o", "out.weird"], 2, "cannot tell the output format of 'out.weird'"),
    (["in.jsonl", "--format", "pdf"], 2, "unknown output format 'pdf'"),
    (["in.jsonl", "-o", "out.html", "--format", "md"], 2, "--format md applies to -o - (stdout) only"),
    (["in.jsonl", "-oXout.xml"], 2, "-oXout.xml: give -oX and its file apart (-oX out.xml)"),
    (["in.jsonl", "-oA", "-"], 2, "-oA writes three files named after a base name"),
    (["in.jsonl", "-o", "md:in.jsonl"], 2, "-o in.jsonl would overwrite the JSONL being read"),
    (["in.jsonl", "-o", "no/such/dir/out.md"], 2,
     "-o no/such/dir/out.md: its folder no/such/dir does not exist; create it (mkdir -p)"),
    (["in.jsonl", "-o", "out.md", "-o", "./out.md"], 2, "-o ./out.md: the same file as -o out.md"),
    (["in.jsonl", "-o", "md:."], 2, "-o .: is a directory; give a file name inside it"),
    (["in.jsonl", "-o", "x.weird", "-o", "y.dat"], 2,
     "cannot tell the output format of 'x.weird' from its extension (known: .csv, .gnmap, "),
    (["in.jsonl", "-o", "x.weird", "-o", "y.dat"], 2, "name it: -o FORMAT:y.dat (e.g. json:y.dat)"),
    (["in.jsonl", "-o", "md:/dev/null"], 2, "-o /dev/null: is a character device"),
])
def test_usage_errors(tmp_path: Path, args, code, message):
    _write(tmp_path, HOST)
    proc = pentora("report", *args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "in.jsonl").read_text() == HOST


@pytest.mark.parametrize("fmt, message", [
    ("html", "cannot write the html report to '{out}': No space left on device"),
    ("jsonl", "cannot write {out}: No space left on device"),
])
def test_a_full_disk_is_a_message_and_the_old_file_stays(scan, fmt, message, tiny_disk):
    """A 4 KB filesystem fills while the report is written: the file it was to replace is
    left as it was, and the message names the temporary file holding what was written."""
    out = tiny_disk / f"old.{fmt}"
    out.write_text("the previous report\n")
    proc = pentora("report", str(scan.out("jsonl")), "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    assert message.format(out=out) in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_text() == "the previous report\n"
    kept = [p for p in tiny_disk.iterdir() if p.name.endswith(".partial")]
    assert len(kept) == 1 and kept[0].name.startswith(f".old.{fmt}.")
    assert f"{out} was left as it was, what was written is kept in {kept[0]}" in proc.stderr
