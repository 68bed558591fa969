"""asset_profiler, json_reporter (streamed JSONL) and the summary table."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import gevent
import pentora_plugins.engine
import pentora_plugins.output
import pentora_plugins.output.summary as output_table
import pentora_plugins.services
from pentora_plugins.kit.records import Banner, Host, Port, ServiceFingerprint
from pentora_plugins.output.jsonl import FLUSH_AFTER

from pentora import DagBuilder, Module, NodeContext, Orchestrator


def fp(host: str, port: int, service: str, product: str | None = None, version: str | None = None,
       evidence: str = "") -> ServiceFingerprint:
    return ServiceFingerprint(host=host, port=port, service=service, product=product, version=version,
                              confidence=0.9, evidence=evidence)


def run_profiler(values: dict[str, Any]):
    dag = (DagBuilder().add_node("seed", "set", config={"values": values})
           .add_node("profile", "asset_profiler", ["seed"]).build())
    orch = Orchestrator(plugins=[pentora_plugins.engine, pentora_plugins.services], autoload=False)
    orch.load_dag(dag)
    result = orch.execute()
    assert result.ok, result.nodes
    return {p.host: p for p in result.context.get("asset_profiles")}


def test_profiles_services_ports_tags_and_debian_from_ssh():
    profiles = run_profiler({
        "discovered_hosts": [Host("127.0.0.1", ttl=64, method="icmp")],
        "open_ports": [Port("127.0.0.1", 22), Port("127.0.0.1", 80), Port("127.0.0.1", 5432)],
        "banners": [Banner("127.0.0.1", 22, data="SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")],
        "service_fingerprints": [fp("127.0.0.1", 22, "ssh", "OpenSSH", "9.2p1"),
                                 fp("127.0.0.1", 80, "http", "nginx", "1.22.1"),
                                 fp("127.0.0.1", 5432, "postgresql", "PostgreSQL")],
    })
    p = profiles["127.0.0.1"]
    assert p.open_ports == [22, 80, 5432]
    assert [s["service"] for s in p.services] == ["ssh", "http", "postgresql"]
    assert p.tags == ["database", "remote-access", "web"]
    assert p.os["family"] == "Linux" and p.os["distribution"] == "Debian"
    assert p.os["release"] == "12 (bookworm)"
    assert p.os["confidence"] >= 0.85 and "ttl 64" in p.os["evidence"]


def test_a_port_votes_once_for_the_os_though_its_banner_and_fingerprint_both_say_it():
    ssh = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
    profiles = run_profiler({
        "banners": [Banner("127.0.0.1", 22, data=ssh)],
        "service_fingerprints": [fp("127.0.0.1", 22, "ssh", "OpenSSH", "9.2p1", evidence=ssh)],
    })
    os_guess = profiles["127.0.0.1"].os
    assert os_guess["evidence"] == ["banner: Debian-2"]
    two = run_profiler({
        "banners": [Banner("127.0.0.1", 22, data=ssh), Banner("127.0.0.1", 2222, data=ssh)],
        "service_fingerprints": [fp("127.0.0.1", 22, "ssh", "OpenSSH", "9.2p1", evidence=ssh),
                                 fp("127.0.0.1", 2222, "ssh", "OpenSSH", "9.2p1", evidence=ssh)],
    })["127.0.0.1"].os
    assert len(two["evidence"]) == 2 and two["confidence"] == round(os_guess["confidence"] + 0.03, 2)


def test_os_from_ttl_alone_is_low_confidence_and_windows_from_iis():
    profiles = run_profiler({
        "discovered_hosts": [Host("127.0.0.2", ttl=128), Host("127.0.0.3", ttl=64)],
        "service_fingerprints": [fp("127.0.0.2", 80, "http", "Microsoft IIS", "10.0",
                                    evidence="Server: Microsoft-IIS/10.0"),
                                 fp("127.0.0.3", 21, "ftp")],
    })
    assert profiles["127.0.0.2"].os["family"] == "Windows"
    assert profiles["127.0.0.3"].os == {"family": "Linux/Unix", "distribution": None, "release": None,
                                        "confidence": 0.4, "evidence": ["ttl 64"]}
    assert profiles["127.0.0.3"].tags == ["file-transfer"]


class Finder(Module):
    """Emits findings one by one, slowly, so the report can be read mid-scan."""

    module_type = "finder"
    produces = ("open_ports",)
    seen_mid_scan: list[int] = []

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        found = []
        for port in (22, 80):
            record = Port("127.0.0.1", port, method="test")
            ctx.emit(record)
            found.append(record)
            gevent.sleep(FLUSH_AFTER + 0.05)  # a written line reaches the file within FLUSH_AFTER
            path = Path(ctx.vars["output"])  # written as .NAME.XXXXXXXX.partial until the scan ends
            [partial] = path.parent.glob(f".{path.name}.*.partial")
            Finder.seen_mid_scan.append(len(partial.read_text().splitlines()))
        ctx.set("open_ports", found)


class Boom(Module):
    module_type = "boom"
    requires = ("open_ports",)

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        raise RuntimeError("fingerprinter exploded")


class Plugin:
    from pentora import hookimpl

    @hookimpl
    def pentora_register_modules(self, registry):
        registry.register(Finder)
        registry.register(Boom)


def test_json_reporter_streams_lines_as_found_and_records_failures(tmp_path: Path):
    out = tmp_path / "report.jsonl"
    Finder.seen_mid_scan.clear()
    dag = (DagBuilder().vars(output=str(out)).engine(fail_fast=False)
           .add_node("scan", "finder").add_node("fp", "boom", ["scan"])
           .add_node("report", "json_reporter", ["fp"], {"output": "${output}"}).build())
    orch = Orchestrator(plugins=[Plugin(), pentora_plugins.output], autoload=False)
    orch.load_dag(dag)
    result = orch.execute()
    assert Finder.seen_mid_scan == [1, 2]  # each port was on disk before the next was found
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["port", "port", "node", "node", "node", "scan"]
    assert all(list(line)[0] == "kind" for line in lines)
    failed = [line for line in lines if line["kind"] == "node" and line["node"] == "fp"][0]
    assert failed["status"] == "failed" and failed["error"] == "fingerprinter exploded"
    assert "RuntimeError" in failed["stack_trace"] and failed["timestamp"]
    report = [line for line in lines if line["kind"] == "node" and line["node"] == "report"][0]
    assert report["status"] == "completed"
    scan = lines[-1]
    assert scan["status"] == "completed" and scan["ok"] is False and scan["counts"]["failed"] == 1
    assert result.context.get("report:report")["lines"] == 4  # lines before its own
    assert list(tmp_path.glob(".*.partial")) == []  # renamed into place


def test_summary_table_neutralises_control_characters():
    dag = (DagBuilder().add_node("seed", "set", config={"values": {
        "open_ports": [Port("127.0.0.1", 80)],
        "service_fingerprints": [fp("127.0.0.1", 80, "http", "evil\x1b[31mred\x07", "1.0\r\n")]}})
        .build())
    orch = Orchestrator(plugins=[pentora_plugins.engine], autoload=False)
    orch.load_dag(dag)
    result = orch.execute()
    stream = io.StringIO()
    output_table.SummaryWriter(stream).close(result)
    text = stream.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "evil\\x1b[31mred\\x07" in text and "127.0.0.1  80/tcp" in text


def test_summary_lists_findings_worst_first_cleaned_and_capped():
    from pentora_plugins.kit.records import Vulnerability

    vulns = [Vulnerability("127.0.0.1", 80, "LOW-1", "low one", "low", 2.0),
             Vulnerability("127.0.0.1", 22, "CRIT-1", "evil\x1b]0;title\x07", "critical", 9.8),
             Vulnerability("127.0.0.2", None, "MED-1", "host-wide", "medium", 5.0)]
    vulns += [Vulnerability("127.0.0.3", 443, f"INFO-{i:02}", "noise", "info") for i in range(45)]
    dag = DagBuilder().add_node("seed", "set", config={"values": {"vulnerabilities": vulns}}).build()
    orch = Orchestrator(plugins=[pentora_plugins.engine], autoload=False)
    orch.load_dag(dag)
    stream = io.StringIO()
    output_table.SummaryWriter(stream).close(orch.execute())
    lines = stream.getvalue().splitlines()
    assert lines[0] == "48 finding(s): 1 critical, 1 medium, 1 low, 45 info"
    assert [line.split()[:3] for line in lines[2:5]] == [
        ["CRITICAL", "127.0.0.1:22", "CRIT-1"], ["MEDIUM", "127.0.0.2", "MED-1"],
        ["LOW", "127.0.0.1:80", "LOW-1"]]
    assert "\x1b" not in stream.getvalue() and "\x07" not in stream.getvalue()
    assert sum(1 for line in lines if line.startswith("INFO")) == 40 - 3
    assert "... and 8 more" in stream.getvalue()


def test_summary_on_a_terminal_is_coloured_and_still_neutralises_control_characters(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    from pentora_plugins.kit.records import Vulnerability

    dag = (DagBuilder().add_node("given", "set", config={"values": {
        "open_ports": [Port("127.0.0.1", 80)],
        # [bold red] would be markup to rich: a target's text must stay text
        "service_fingerprints": [fp("127.0.0.1", 80, "http", "evil\x1b[31mred\x07[bold red]x", "1.0\r\n")],
        "vulnerabilities": [Vulnerability("127.0.0.1", 80, "CRIT-1", "t\x1b]0;pwned\x07\u202e",
                                          "critical", 9.8)]}})
        .build())
    orch = Orchestrator(plugins=[pentora_plugins.engine], autoload=False)
    orch.load_dag(dag)
    stream = Tty()
    output_table.SummaryWriter(stream).close(orch.execute())
    text = stream.getvalue()
    assert "\x1b[1mHOST" in text and "\x1b[1;31mCRITICAL" in text  # bold header, severity in red
    escapes = set(re.findall(r"\x1b[^m]*m?", text))
    assert all(re.fullmatch(r"\x1b\[[0-9;]*m", e) for e in escapes), escapes  # colour only, from rich
    for raw in ("\x07", "\r", "\u202e", "\x1b[31m", "\x1b]"):
        assert raw not in text
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "evil\\x1b[31mred\\x07[bold red]x" in plain and "t\\x1b]0;pwned\\x07\\u202e" in plain
