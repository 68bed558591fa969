"""The Markdown format: a ticket-ready report from a real loopback scan, target text inert."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from pentora_plugins.output.formats import md_report

from ._formats_scan import Scan, run_scan


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    yield from run_scan(tmp_path_factory)



def _sections(text: str) -> list[str]:
    return re.findall(r"^#{2,3} (.+)$", text, flags=re.M)


def test_summary_hosts_services_and_findings_by_severity(scan):
    text = scan.out("md").read_text()
    assert text.startswith("# pentora report: formats-e2e\n")
    assert _sections(text) == ["Summary", "Hosts", "Services", "Findings by severity", "High (1)",
                               "Medium (1)", "Low (1)", "Info (1)", "Nodes that did not complete",
                               "Targets that could not be used"]
    assert "| nosuch.invalid | nosuch.invalid | cannot resolve 'nosuch.invalid':" in text
    assert "| Open ports | 3 |" in text and "| Findings | 1 high, 1 medium, 1 low, 1 info |" in text
    assert f"| 127.0.0.1 | {scan.ports['ssh']}/tcp | ssh | OpenSSH | 9.2p1 |" in text
    assert "| explode | explode | failed |" in text


def test_every_table_row_has_its_columns(scan):
    """A pipe from a banner must not add a column: each row has its header's cell count."""
    text = scan.out("md").read_text()
    for block in text.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows:
            widths = {len(re.split(r"(?<!\\)\|", row)) for row in rows}
            assert len(widths) == 1, block


def test_target_strings_are_escaped(scan):
    text = scan.out("md").read_text()
    assert "<script>" not in text and "&lt;script&gt;alert('ssh')&lt;/script&gt;" in text
    assert "\x1b" not in text and "\\\\x1b\\[31mRED" in text  # shown, not obeyed
    assert "\\*\\*bold\\*\\* \\| pipe" in text
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text)


def test_esc_neutralises_markdown_html_and_mentions():
    assert md_report.esc("[x](javascript:alert(1))") == "\\[x\\](javascript:alert(1))"
    assert md_report.esc("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert md_report.esc("@admin #12 `code` ~~s~~ a_b") == "\\@admin \\#12 \\`code\\` \\~\\~s\\~\\~ a\\_b"
    assert md_report.esc("line\nbreak") == "line\\\\x0abreak"
