"""nmap-compatible XML from a real loopback scan: valid against Debian nmap's DTD and read
by python-libnmap's NmapParser, as tools that import nmap XML read it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pentora_plugins.output.formats import xml_report
from pentora_plugins.output.formats._model import Report

from ._formats_scan import Scan, run_scan, validate_nmap_xml


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    yield from run_scan(tmp_path_factory)



def test_real_scan_validates_against_nmaps_dtd(scan):
    validate_nmap_xml(scan.out("xml"))


def test_nmap_parser_reads_hosts_ports_services_and_cpes(scan):
    parser = pytest.importorskip("libnmap.parser", reason="python-libnmap (the test extra) is not installed")
    report = parser.NmapParser.parse_fromfile(str(scan.out("xml")))
    assert report.hosts_up == 1 and report.hosts_total == 1
    [host] = report.hosts
    assert host.address == "127.0.0.1" and host.is_up()
    services = {s.port: s for s in host.services}
    assert set(services) == set(scan.ports.values())
    ssh = services[scan.ports["ssh"]]
    assert (ssh.state, ssh.protocol, ssh.service) == ("open", "tcp", "ssh")
    assert ssh.service_dict["product"] == "OpenSSH" and ssh.service_dict["version"] == "9.2p1"
    assert [c.cpestring for c in ssh.cpelist] == ["cpe:/a:openbsd:openssh:9.2p1"]
    findings = [s for s in ssh.scripts_results if s["id"] == "pentora-findings"]
    assert findings and "TEST-ssh" in findings[0]["output"]
    assert report.summary.startswith("pentora done")


def test_control_characters_and_markup_from_targets_stay_valid_xml():
    report = Report()
    report.add({"kind": "host", "address": "127.0.0.1", "alive": True, "hostname": "h\x00<x>",
                "reason": "syn-ack"})
    report.add({"kind": "port", "host": "127.0.0.1", "port": 22, "protocol": "tcp", "state": "open"})
    report.add({"kind": "service", "host": "127.0.0.1", "port": 22, "protocol": "tcp", "service": "ssh",
                "product": "Open\x1b[31mSSH\x00</service>", "version": "\ufffe9", "confidence": 0.5,
                "info": "]]>&amp;"})
    report.add({"kind": "vulnerability", "host": "127.0.0.1", "port": 22, "id": "X\x07",
                "severity": "high", "title": "<script>", "references": ["a\x01"]})
    text = xml_report.render(report)
    validate_nmap_xml(text)
    assert "Open\\x1b[31mSSH\\x00&lt;/service&gt;" in text and "\\ufffe9" in text


def test_cpe_23_names_become_nmaps_22_uris():
    assert xml_report.cpe22("cpe:2.3:a:f5:nginx:1.22.1:*:*:*:*:*:*:*") == "cpe:/a:f5:nginx:1.22.1"
    assert xml_report.cpe22("cpe:2.3:a:postfix:postfix:*:*:*:*:*:*:*:*") == "cpe:/a:postfix:postfix"
    assert xml_report.cpe22("cpe:/o:linux:linux_kernel") == "cpe:/o:linux:linux_kernel"
    assert xml_report.cpe22(None) is None


def test_the_command_line_is_shell_quoted_without_url_passwords():
    from pentora_plugins.output import command_line

    argv = ["scan", "-t", "127.0.0.1", "--set", "note=two words", "--broker", "redis://:s3cr3t@127.0.0.1:6379/0",
            "--backend", "redis://user:pw@127.0.0.1/1", "-oX", "-"]
    assert command_line(argv) == ("pentora scan -t 127.0.0.1 --set 'note=two words' --broker "
                                  "'redis://:***@127.0.0.1:6379/0' --backend "
                                  "'redis://user:***@127.0.0.1/1' -oX -")
