"""Terminal output: control characters and escape sequences from targets are shown, never obeyed.

Every printer (the scan summary, ``pentora dag run``'s node table, text logs, reports
written to stdout) passes target strings through ``pentora._text.clean``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from pentora_plugins.output import summary as output_table

from pentora._text import clean

from ._formats_scan import Scan, pentora, run_scan


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    yield from run_scan(tmp_path_factory)


# anything a terminal would act on: C0 controls but newline, DEL, C1, bidi/zero-width/separators
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


@pytest.mark.parametrize("raw, shown", [
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),                # SGR colour
    ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),                    # OSC: window title
    ("\x9b2J", "\\x9b2J"),                                        # 8-bit CSI: clear screen
    ("a\rb\nc\x08d\x00", "a\\x0db\\x0ac\\x08d\\x00"),               # overwrite tricks, NUL
    ("admin\u202etxt.exe", "admin\\u202etxt.exe"),                # bidi override (trojan source)
    ("zero\u200bwidth\u2028sep\ufeff", "zero\\u200bwidth\\u2028sep\\ufeff"),
    ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ("plain ünïcödé 日本 ✓", "plain ünïcödé 日本 ✓"),              # printable text untouched
    (None, ""),
])
def test_clean_shows_what_a_terminal_would_obey(raw, shown):
    assert clean(raw, None) == shown


def test_clean_cuts_after_escaping():
    assert clean("\x1b" * 10, 8) == "\\x1b\\x1…"
    assert clean("short", 60) == "short"
    assert output_table.clean is clean  # one helper, wherever a printer imports it from


def test_clean_lines_keeps_line_breaks_only_and_is_idempotent():
    block = "a\x1b[2J\r\nb\u202e\x9b\n"
    assert clean(block, None, lines=True) == "a\\x1b[2J\\x0d\nb\\u202e\\x9b\n"
    assert clean(block, None) == "a\\x1b[2J\\x0d\\x0ab\\u202e\\x9b\\x0a"
    once = clean(block, None, lines=True)
    assert clean(once, None, lines=True) == once  # a second pass (pentora.cli.echo) changes nothing


def test_scan_summary_and_logs_of_hostile_targets_are_inert(scan):
    """The e2e scan: banners with ANSI/OSC sequences, a node error carrying ESC."""
    for stream in (scan.proc.stdout, scan.proc.stderr):
        assert not UNSAFE.search(stream), repr(stream)
    error = "node explode failed: Node 'explode': exploded on purpose: <b>bold</b> \\x1b[31mred"
    assert error in scan.proc.stdout
    assert "\\x1b[31mred" in scan.proc.stderr  # the node-failed log line, escaped


def test_dag_run_node_table_is_inert(scan):
    proc = pentora("dag", "run", str(scan.dir / "scan.yaml"), "--hooks", str(scan.hooks),
                   "--set", "targets=127.0.0.1", "--set", f"ports={scan.ports['ssh']}",
                   "--log-level", "INFO")
    assert proc.returncode == 3, proc.stderr
    assert "exploded on purpose: <b>bold</b> \\x1b[31mred" in proc.stdout
    assert not UNSAFE.search(proc.stdout) and not UNSAFE.search(proc.stderr)


@pytest.mark.parametrize("fmt", ["md", "csv", "xml", "html"])
def test_reports_written_to_stdout_are_inert(scan, fmt):
    proc = pentora("report", str(scan.out("jsonl")), "--format", fmt)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\\x1b\\?\[31mRED", proc.stdout) or fmt == "csv"  # csv has no banner column
    assert not UNSAFE.search(proc.stdout.replace("\r\n", "\n"))
