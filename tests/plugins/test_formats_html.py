"""The HTML report of a real loopback scan, loaded in headless Chromium (Debian's package).

The page must load from the file alone (no request but the file itself, no console
error: a CSP violation or a failed load would be one), its tables must sort when a
header is clicked, the DAG and the timeline must be drawn with each node's status
colour, and a banner carrying ``<script>`` must be text on the page, not a script.
A screenshot is saved under the test's tmp dir, and under $PENTORA_ARTIFACTS if set.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pentora_plugins.output.formats import html_report
from pentora_plugins.output.formats._model import Report
from pentora_plugins.output.formats._svg import MAX_DRAWN, STATUS_COLORS

from ._chromium import Chromium, page_of
from ._formats_scan import Scan, run_scan


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    yield from run_scan(tmp_path_factory)



@pytest.fixture(scope="module")
def page(scan) -> Iterator[Chromium]:  # noqa: F811
    with page_of(scan.out("html")) as browser:
        yield browser


def _column(page: Chromium, table: str, col: int) -> list[str]:
    return page.evaluate(f'Array.from(document.querySelectorAll("#{table} tbody tr"))'
                         f'.map(r => r.cells[{col}].textContent)')


def test_page_loads_from_the_file_alone_without_console_errors(page, scan):
    assert page.evaluate("document.readyState") == "complete"
    assert page.evaluate("document.title") == "pentora report: formats-e2e"
    page.evaluate("new Promise(resolve => setTimeout(resolve, 300))")  # let late reports arrive
    assert page.errors() == []
    assert page.requests() == [scan.out("html").resolve().as_uri()]


def test_summary_names_the_targets_that_could_not_be_used(page):
    items = page.evaluate('Array.from(document.querySelectorAll("#target-errors li"))'
                          '.map(li => li.textContent)')
    assert len(items) == 1 and items[0].startswith("target nosuch.invalid not used: cannot resolve")


def test_hostile_banner_is_text_not_a_script(page, scan):
    # the page's own sorting script is the only script element
    assert page.evaluate("document.scripts.length") == 1
    banners = _column(page, "services", 8)
    assert any("<script>alert('ssh')</script>" in b for b in banners), banners
    assert any("\\x1b[31mRED" in b for b in banners)
    assert page.evaluate("document.body.innerText.includes("
                         "\"<script>alert('ssh')</script>\")")
    source = scan.out("html").read_text()
    assert len(re.findall(r"<script\b", source, flags=re.I)) == 1


def test_clicking_a_header_sorts_the_services_table(page, scan):
    ports = sorted(scan.ports.values())
    click = 'document.querySelector("#services thead th:nth-child(2) button").click()'
    page.evaluate(click)
    assert [int(p) for p in _column(page, "services", 1)] == ports
    assert page.evaluate('document.querySelector("#services thead th:nth-child(2)")'
                         '.getAttribute("aria-sort")') == "ascending"
    page.evaluate(click)
    assert [int(p) for p in _column(page, "services", 1)] == ports[::-1]
    page.evaluate('document.querySelector("#services thead th:nth-child(5) button").click()')
    assert _column(page, "services", 4) == sorted(_column(page, "services", 4))


def test_dag_and_timeline_are_drawn_with_status_colours(page):
    fills = page.evaluate('Object.fromEntries(Array.from(document.querySelectorAll("svg.dag g.node"))'
                          '.map(g => [g.dataset.node, g.querySelector("rect").getAttribute("fill")]))')
    assert fills["explode"] == STATUS_COLORS["failed"]
    assert fills["banner_grab"] == STATUS_COLORS["completed"]
    assert len(fills) == 8
    assert page.evaluate('document.querySelectorAll("svg.dag path.edge").length') == 7
    # layers: port_scan's column is left of banner_grab's, which is left of fingerprint's
    xs = page.evaluate('Object.fromEntries(Array.from(document.querySelectorAll("svg.dag g.node"))'
                       '.map(g => [g.dataset.node, +g.querySelector("rect").getAttribute("x")]))')
    assert xs["targets"] < xs["discover"] < xs["port_scan"] < xs["banner_grab"] < xs["fingerprint"]
    assert xs["explode"] == xs["banner_grab"]
    bars = page.evaluate('Array.from(document.querySelectorAll("svg.timeline g.bar"))'
                         '.map(g => g.dataset.node)')
    assert set(bars) == set(fills)
    box = page.evaluate('JSON.stringify(document.querySelector("svg.dag").getBoundingClientRect())')
    assert '"width":0' not in box


def test_screenshot_is_saved_as_an_artifact(page, tmp_path: Path):
    shot = page.screenshot(tmp_path / "report.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    artifacts = os.environ.get("PENTORA_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "html-report.png")


def test_every_target_string_is_escaped_in_the_source():
    report = Report()
    evil = "<img src=x onerror=alert(1)>\"'&\x1b[2J\u202e"
    report.add({"kind": "host", "address": "127.0.0.1", "alive": True, "hostname": evil})
    report.add({"kind": "port", "host": "127.0.0.1", "port": 80, "protocol": "tcp", "state": "open"})
    report.add({"kind": "service", "host": "127.0.0.1", "port": 80, "protocol": "tcp", "service": evil,
                "product": evil, "version": evil, "info": evil})
    report.add({"kind": "banner", "host": "127.0.0.1", "port": 80, "protocol": "tcp", "data": evil})
    report.add({"kind": "http", "host": "127.0.0.1", "port": 80, "title": evil, "status": 200})
    report.add({"kind": "webtech", "host": "127.0.0.1", "port": 80, "name": evil})
    report.add({"kind": "vulnerability", "host": "127.0.0.1", "port": 80, "id": evil, "title": evil,
                "severity": "high", "evidence": evil})
    report.add({"kind": "node", "node": evil, "module_type": evil, "status": "failed", "error": evil})
    report.add({"kind": "scan", "scan_id": evil, "dag": evil, "status": "failed",
                "started_at": None, "finished_at": None, "vars": {"targets": evil}})
    text = html_report.render(report)
    assert "<img" not in text and "\x1b" not in text and "\u202e" not in text
    assert text.count("&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;&amp;\\x1b[2J\\u202e") >= 12


def test_a_huge_dag_is_listed_not_drawn():
    report = Report()
    for i in range(MAX_DRAWN + 1):
        report.add({"kind": "node", "node": f"n{i}", "module_type": "noop", "status": "completed",
                    "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.000Z"})
    text = html_report.render(report)
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="dag"' not in text
    assert text.count("too many to draw") == 2  # the DAG and the timeline
    assert text.count('<tr><td>n') == MAX_DRAWN + 1  # the node table lists them all


def test_csp_would_stop_a_script_that_escaped_the_escaping(page, scan, tmp_path: Path):
    """Defence in depth: a script smuggled into the page is refused by its CSP (runs last:
    it loads another page into the shared browser)."""
    html = scan.out("html").read_text().replace(
        "<footer>", '<footer><script>document.title = "pwned"</script><img src="x.png">')
    injected = tmp_path / "injected.html"
    injected.write_text(html)
    before = len(page.events)
    page.open(injected)
    assert page.evaluate("document.title") == "pentora report: formats-e2e"
    page.events[:before] = []


    def refused(directive: str) -> bool:
        return any("Content Security Policy" in e and directive in e for e in page.errors())

    for _ in range(100):  # the browser reports the refusals as they happen, maybe after the load
        if refused("script-src") and refused("img-src"):
            break
        page.evaluate("new Promise(resolve => setTimeout(resolve, 50))")
    assert refused("script-src") and refused("img-src"), page.errors()
