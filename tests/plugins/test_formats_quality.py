"""Quality of detection in every view: a real loopback scan whose findings have the qualities
30 (a backport may have fixed it), 80 (a bare upstream banner), 97 (an installed package) and
none (a plugin older than the scale). The summary and each format count and list the verified
ones (quality >= --min-quality, 70 by default, or none stated) and show the others apart;
``--min-quality 0`` and ``90`` move the line; ``--fail-on`` exits 5 on a verified finding only.
The HTML is read in headless Chromium: the Quality column, the greyed unverified rows, KEV.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pentora_plugins.output.formats import csv_report

from pentora.testing import TcpServer

from ._chromium import Chromium, page_of
from ._formats_scan import CONNECT_NODES, NMAP_DTD, pentora, schema_errors

# The scan's -o files, each format from the extension (csv-findings has none: it is replayed)
EXTENSIONS = {"jsonl": "jsonl", "json": "json", "csv": "csv", "md": "md", "xml": "xml", "html": "html",
              "nmap": "nmap", "summary": "txt"}
DAG = """
name: quality-e2e
vars: {targets: "", ports: ""}
nodes:""" + CONNECT_NODES.rstrip("\n") + """
  - {instance_id: banner_grab, module_type: banner_grabber, depends_on: [port_scan],
     config: {passive_timeout: 1s}}
  - {instance_id: fingerprint, module_type: fingerprint_parser, depends_on: [banner_grab]}
  - {instance_id: findings, module_type: quality_findings, depends_on: [fingerprint]}
"""
# Four findings on the SSH port, one per quality, each worse than the next better-proven one:
# a default view (70) counts high, medium and low; the critical one is unverified.
HOOKS = '''
from pentora import Module, hookimpl
from pentora_plugins.kit.findings import add_vulnerabilities
from pentora_plugins.kit.records import Vulnerability

FOUND = [("Q-BACKPORT", "critical", 30, "banner-backport-prone", True),
         ("Q-BANNER", "high", 80, "banner", False),
         ("Q-PACKAGE", "medium", 97, "package", True),
         ("Q-NONE", "low", None, None, False)]


class QualityFindings(Module):
    module_type = "quality_findings"
    requires = ("service_fingerprints",)
    produces = ("vulnerabilities",)

    def run(self, ctx, config):
        found = []
        for fp in ctx.get("service_fingerprints"):
            for vid, severity, quality, method, kev in FOUND:
                found.append(Vulnerability(
                    host=fp.host, port=fp.port, id=vid, title=f"{vid} in {fp.product}",
                    severity=severity, evidence=f"{vid}: banner {fp.product} {fp.version}",
                    quality=quality, method=method, known_exploited=kev, source="test"))
        add_vulnerabilities(ctx, found)


@hookimpl
def pentora_register_modules(registry):
    registry.register(QualityFindings)
'''
ALL = {"Q-BACKPORT", "Q-BANNER", "Q-PACKAGE", "Q-NONE"}
# --min-quality → (the verified ids, the unverified ids)
SPLITS = {70: ({"Q-BANNER", "Q-PACKAGE", "Q-NONE"}, {"Q-BACKPORT"}),
          90: ({"Q-PACKAGE", "Q-NONE"}, {"Q-BACKPORT", "Q-BANNER"}),
          0: (ALL, set())}


@dataclass
class Run:
    dir: Path
    proc: Any
    hooks: Path
    dag: Path
    port: int

    def out(self, fmt: str) -> Path:
        return self.dir / f"scan.{EXTENSIONS[fmt]}"

    def scan(self, *args: str) -> Any:
        return pentora("scan", "--targets", "127.0.0.1", "-p", str(self.port), "--dag", str(self.dag),
                       "--hooks", str(self.hooks), "--no-store", *args, cwd=self.dir)

    def report(self, fmt: str, *args: str) -> Any:
        return pentora("report", str(self.out("jsonl")), "--format", fmt, *args, cwd=self.dir)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("quality")
    server = TcpServer(banner=b"SSH-2.0-OpenSSH_9.2p1\r\n").start()
    try:
        (directory / "scan.yaml").write_text(DAG)
        (directory / "hooks.py").write_text(HOOKS)
        r = Run(directory, None, directory / "hooks.py", directory / "scan.yaml", server.port)
        # .txt is nmap's normal output: the summary is named (summary:FILE)
        r.proc = r.scan(*[a for fmt in EXTENSIONS
                          for a in ("-o", f"summary:{r.out(fmt)}" if fmt == "summary" else str(r.out(fmt)))])
        yield r
    finally:
        server.stop()


def test_the_scan_ran_and_jsonl_keeps_every_finding_with_its_quality(run):
    assert run.proc.returncode == 0, run.proc.stderr
    lines = [json.loads(line) for line in run.out("jsonl").read_text().splitlines()]
    vulns = {v["id"]: v for v in lines if v["kind"] == "vulnerability"}
    assert set(vulns) == ALL
    assert (vulns["Q-BACKPORT"]["quality"], vulns["Q-BACKPORT"]["method"]) == (30, "banner-backport-prone")
    assert vulns["Q-NONE"]["quality"] is None and vulns["Q-PACKAGE"]["known_exploited"] is True
    assert all(schema_errors(line) == [] for line in lines)


# -- the summary --------------------------------------------------------------------------------


def _summary_blocks(text: str) -> tuple[str, str]:
    head, _, unverified = text.partition("unverified: may be fixed by a backport")
    return head, unverified


def test_summary_counts_the_verified_and_lists_the_unverified_apart(run):
    for text in (run.proc.stdout, run.out("summary").read_text()):  # the terminal and -o summary:FILE
        head, unverified = _summary_blocks(text)
        assert "3 finding(s): 1 high, 1 medium, 1 low" in head
        assert "QUALITY" in head and "Q-BACKPORT" not in head
        assert {"Q-BANNER", "Q-PACKAGE", "Q-NONE"} <= set(head.split())
        package = next(line for line in head.splitlines() if "Q-PACKAGE" in line).split()
        assert "KEV" in package and "97" in package
        assert unverified.startswith(" (1, quality < 70; --min-quality 0 shows them as findings)")
        row = next(line for line in unverified.splitlines() if "Q-BACKPORT" in line).split()
        assert row[:4] == [f"127.0.0.1:{run.port}", "Q-BACKPORT", "KEV", "30"]
        # why it is unverified, not the start of the evidence (the version matched, the same
        # on every row of a port)
        assert "distribution build without its revision: a backport may fix it" in " ".join(row)


def test_summary_follows_min_quality(run):
    proc = run.scan("--min-quality", "90")
    assert proc.returncode == 0, proc.stderr
    head, unverified = _summary_blocks(proc.stdout)
    assert "2 finding(s): 1 medium, 1 low" in head
    assert "(2, quality < 90;" in unverified and "Q-BANNER" in unverified
    banner = next(line for line in unverified.splitlines() if "Q-BANNER" in line)
    assert banner.endswith("upstream version read from a banner")
    proc = run.scan("--min-quality", "0")
    head, unverified = _summary_blocks(proc.stdout)
    assert "4 finding(s): 1 critical, 1 high, 1 medium, 1 low" in head and unverified == ""


# -- each format, written by the scan and replayed at other thresholds ---------------------------


def _json_split(text: str) -> tuple[set[str], set[str], int]:
    doc = json.loads(text)
    assert schema_errors(doc) == []
    verified = {r["id"] for r in doc["records"] if r["kind"] == "vulnerability"}
    return verified, {r["id"] for r in doc["unverified"]}, doc["min_quality"]


def _csv_split(text: str) -> tuple[set[str], set[str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(csv_report.FINDING_COLUMNS)
    by_id = {r["id"]: r for r in rows}
    assert by_id["Q-NONE"]["quality"] == "" and by_id["Q-PACKAGE"]["quality"] == "97"
    assert by_id["Q-PACKAGE"]["known_exploited"] == "yes" and by_id["Q-BANNER"]["method"] == "banner"
    return ({i for i, r in by_id.items() if r["verified"] == "yes"},
            {i for i, r in by_id.items() if r["verified"] == "no"})


def _ids_in(text: str) -> set[str]:
    return {i for i in ALL if i in text}


def _md_split(text: str) -> tuple[set[str], set[str]]:
    findings, _, unverified = text.partition("## Unverified: may be fixed by a backport")
    return _ids_in(findings), _ids_in(unverified)


def _xml_split(text: str) -> tuple[set[str], set[str]]:
    root = ET.fromstring(text)
    scripts = {s.get("id"): s for s in root.iter("script")}

    def ids(script_id: str) -> set[str]:
        script = scripts.get(script_id)
        return set() if script is None else {t.get("key") for t in script.findall("table")}

    return ids("pentora-findings"), ids("pentora-unverified")


@pytest.mark.parametrize("min_quality", [None, 90, 0])
def test_json_records_hold_the_verified_and_unverified_the_rest(run, min_quality):
    if min_quality is None:  # the file the scan wrote, at the default
        text, expected = run.out("json").read_text(), 70
    else:
        proc = run.report("json", "--min-quality", str(min_quality))
        assert proc.returncode == 0, proc.stderr
        text, expected = proc.stdout, min_quality
    verified, unverified, written_with = _json_split(text)
    assert (verified, unverified) == SPLITS[expected] and written_with == expected


@pytest.mark.parametrize("min_quality", [None, 90, 0])
def test_csv_counts_verified_per_port_and_csv_findings_has_quality_and_verified(run, min_quality):
    if min_quality is None:
        ports, findings, expected = run.out("csv").read_text(), run.report("csv-findings").stdout, 70
    else:
        ports = run.report("csv", "--min-quality", str(min_quality)).stdout
        findings = run.report("csv-findings", "--min-quality", str(min_quality)).stdout
        expected = min_quality
    verified, unverified = SPLITS[expected]
    [row] = list(csv.DictReader(io.StringIO(ports)))
    assert (row["findings"], row["unverified"]) == (str(len(verified)), str(len(unverified)))
    assert _csv_split(findings) == (verified, unverified)


def rendered(run, fmt: str, min_quality: int | None) -> tuple[str, int]:
    """The ``fmt`` output and the threshold it was drawn at: the file the scan wrote (at
    the default, 70) when ``min_quality`` is None, else ``pentora report`` at it."""
    if min_quality is None:
        return run.out(fmt).read_text(), 70
    return run.report(fmt, "--min-quality", str(min_quality)).stdout, min_quality


@pytest.mark.parametrize("min_quality", [None, 90, 0])
def test_markdown_findings_and_a_separate_unverified_section(run, min_quality):
    text, expected = rendered(run, "md", min_quality)
    verified, unverified = SPLITS[expected]
    assert _md_split(text) == (verified, unverified)
    assert f"| Unverified | {len(unverified)} (quality below {expected}) |" in text
    if unverified:
        assert "--min-quality 0` shows them as findings" in text
    assert "Q-PACKAGE **KEV**" in text and "97 (package)" in text


@pytest.mark.parametrize("min_quality", [None, 90, 0])
def test_xml_unverified_in_their_own_script_and_quality_in_each_finding(run, min_quality):
    text, expected = rendered(run, "xml", min_quality)
    assert _xml_split(text) == SPLITS[expected]
    root = ET.fromstring(text)
    package = next(t for t in root.iter("table") if t.get("key") == "Q-PACKAGE")
    elems = {e.get("key"): e.text for e in package.findall("elem")}
    assert (elems["quality"], elems["method"], elems["known_exploited"]) == ("97", "package", "true")
    if NMAP_DTD.is_file():
        etree = pytest.importorskip("lxml.etree", reason="lxml (the test extra) is not installed")
        dtd = etree.DTD(str(NMAP_DTD))
        assert dtd.validate(etree.fromstring(text.encode())), dtd.error_log.filter_from_errors()
    else:
        print(f"{NMAP_DTD} is absent: the DTD check is left out (install Debian's nmap package)")


@pytest.mark.parametrize("min_quality", [None, 90, 0])
def test_nmap_normal_output_has_the_unverified_in_their_own_script(run, min_quality):
    text, expected = rendered(run, "nmap", min_quality)
    findings, _, unverified = text.partition("| pentora-unverified:")
    assert (_ids_in(findings), _ids_in(unverified)) == SPLITS[expected]
    assert "Q-PACKAGE (medium, KEV)" in text
    if SPLITS[expected][1]:
        assert f"| pentora-unverified: unverified: may be fixed by a backport (quality < {expected})" in text


# -- --fail-on and bad values ------------------------------------------------------------------


def test_fail_on_exits_5_only_for_a_verified_finding_that_bad(run):
    proc = run.scan("--fail-on", "critical")  # the critical finding is unverified at 70
    assert proc.returncode == 0, proc.stderr
    proc = run.scan("--fail-on", "HIGH", "-q")
    assert proc.returncode == 5, proc.stderr
    assert "1 verified finding(s) of severity high or worse (--fail-on high, quality >= 70)" in proc.stderr
    proc = run.scan("--fail-on", "critical", "--min-quality", "0", "-q")
    assert proc.returncode == 5, proc.stderr


def test_report_fail_on_after_writing_the_file(run):
    out = run.dir / "gate.md"
    proc = pentora("report", str(run.out("jsonl")), "-o", str(out), "--fail-on", "medium", cwd=run.dir)
    assert proc.returncode == 5 and out.is_file(), proc.stderr
    assert "2 verified finding(s) of severity medium or worse" in proc.stderr
    proc = run.report("md", "--fail-on", "high", "--min-quality", "90")  # high is only a banner's
    assert proc.returncode == 0, proc.stderr
    proc = run.report("md", "--fail-on", "critical", "--min-quality", "0")
    assert proc.returncode == 5, proc.stderr


@pytest.mark.parametrize("command", ["scan", "report", "demo"])
@pytest.mark.parametrize("value", ["101", "-1", "high", "7.5"])
def test_a_bad_min_quality_is_a_usage_error_naming_the_option(run, command, value):
    args = {"scan": ["scan", "--targets", "127.0.0.1"], "report": ["report", str(run.out("jsonl"))],
            "demo": ["demo"]}[command]
    proc = pentora(*args, f"--min-quality={value}", cwd=run.dir)
    assert proc.returncode == 2
    assert "argument --min-quality: expected a quality from 0 to 100" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_fail_on_is_a_usage_error_naming_the_choices(run):
    proc = run.report("md", "--fail-on", "severe")
    assert proc.returncode == 2 and "argument --fail-on: invalid choice: 'severe'" in proc.stderr


# -- the HTML page in a real browser ---------------------------------------------------------------


@pytest.fixture(scope="module")
def page(run) -> Iterator[Chromium]:
    with page_of(run.out("html")) as browser:
        yield browser


def _rows(page: Chromium, selector: str) -> list[dict[str, Any]]:
    return page.evaluate(
        f'Array.from(document.querySelectorAll("{selector} tbody tr")).map(r => ({{'
        'cells: Array.from(r.cells).map(c => c.textContent), cls: r.className, '
        'color: getComputedStyle(r.cells[0]).color, '
        'kev: Array.from(r.querySelectorAll(".kev")).map(k => getComputedStyle(k).display)}))')


def test_html_findings_have_a_quality_column_and_a_kev_badge(page):
    heads = page.evaluate('Array.from(document.querySelectorAll("#findings table.findings thead th"))'
                          '.map(th => th.textContent)')
    assert heads[:7] == ["Host", "Port", "ID", "Title", "CVSS", "Quality", "Evidence"]
    rows = {r["cells"][2]: r for r in _rows(page, "#findings table.findings")}
    assert set(rows) == {"Q-BANNER", "Q-PACKAGEKEV", "Q-NONE"}
    package = rows["Q-PACKAGEKEV"]
    assert package["cells"][5] == "97 (package)" and package["kev"] == ["inline-block"]
    assert rows["Q-NONE"]["cells"][5] == "" and rows["Q-BANNER"]["cells"][5] == "80 (banner)"
    cards = page.evaluate('Array.from(document.querySelectorAll(".card")).map(c => c.textContent)')
    assert "3findings" in cards and "1unverified (quality < 70)" in cards


def test_html_unverified_rows_are_greyed_in_their_own_section(page):
    assert page.evaluate('document.querySelector("#unverified h2").textContent') == \
        "Unverified: may be fixed by a backport (1)"
    [row] = _rows(page, "#unverified-table")
    [verified] = [r for r in _rows(page, "#findings table.findings") if r["cells"][2] == "Q-NONE"]
    assert row["cls"] == "unverified" and row["cells"][2] == "Q-BACKPORTKEV"
    assert row["cells"][5] == "30 (banner-backport-prone)"
    assert row["color"] != verified["color"]  # greyed: not the verified rows' text colour
    assert row["color"] == "rgb(138, 144, 160)"
    assert page.errors() == []
