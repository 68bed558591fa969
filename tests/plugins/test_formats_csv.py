"""The CSV format: one row per open port, from a real loopback scan; formulas defused."""

from __future__ import annotations

import csv
from collections.abc import Iterator

import pytest
from pentora_plugins.output.formats import csv_report
from pentora_plugins.output.formats._model import Report

from ._formats_scan import Scan, run_scan


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    yield from run_scan(tmp_path_factory)



def _rows(scan) -> list[dict[str, str]]:
    with scan.out("csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_one_row_per_open_port_with_service_and_finding_count(scan):
    rows = _rows(scan)
    assert list(rows[0]) == list(csv_report.COLUMNS)
    by_port = {int(r["port"]): r for r in rows}
    assert set(by_port) == set(scan.ports.values())
    ssh = by_port[scan.ports["ssh"]]
    assert (ssh["host"], ssh["protocol"], ssh["state"], ssh["service"], ssh["product"], ssh["version"]) == (
        "127.0.0.1", "tcp", "open", "ssh", "OpenSSH", "9.2p1")
    assert ssh["cpe"].startswith("cpe:2.3:a:openbsd:openssh:9.2p1")
    assert by_port[scan.ports["http"]]["product"] == "nginx"
    # test_findings gives each fingerprinted port one finding; the host-wide one is on no port
    assert all(r["findings"] == "1" for r in rows)


def test_rows_are_sorted_by_address_then_port(scan):
    ports = [int(r["port"]) for r in _rows(scan)]
    assert ports == sorted(ports)


def test_a_formula_from_a_target_is_defused():
    report = Report()
    report.add({"kind": "port", "host": "127.0.0.1", "port": 1, "protocol": "tcp", "state": "open"})
    report.add({"kind": "service", "host": "127.0.0.1", "port": 1, "protocol": "tcp",
                "service": "x", "product": "=HYPERLINK(\"http://evil.invalid\")", "version": "+1\x1b[2J",
                "cpe": "@SUM(A1)"})
    [row] = list(csv.reader(csv_report.render(report).splitlines()))[1:]
    cells = dict(zip(csv_report.COLUMNS, row, strict=True))
    assert cells["product"] == "'=HYPERLINK(\"http://evil.invalid\")"
    assert cells["version"] == "'+1\\x1b[2J"
    assert cells["cpe"] == "'@SUM(A1)"
    assert csv_report.cell("-2+3") == "'-2+3" and csv_report.cell("nginx") == "nginx"
