"""One real scan, shared by the report-format tests: hostile loopback servers scanned
through the CLI, written in every format at once (``-o`` once per format).

The servers (pentora.testing's threaded TcpServer, on 127.0.0.1) send banners carrying
``<script>``, ANSI escapes, an OSC window-title sequence, Markdown and a spreadsheet
formula. A hooks file adds two test modules: ``test_findings`` turns every fingerprint
into a finding whose title and evidence quote the banner (so findings of several
severities exist, hostile text included), and ``explode`` fails (a red DAG node).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import TcpServer

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "plugins" / "data" / "pentora-records.schema.json"
FORMATS = ("jsonl", "json", "csv", "md", "xml", "html", "nmap", "gnmap")
NMAP_DTD = Path("/usr/share/nmap/nmap.dtd")
TARGETS = "127.0.0.1,nosuch.invalid"

HOSTILE_SSH = (b"SSH-2.0-OpenSSH_9.2p1 <script>alert('ssh')</script> \x1b[31mRED\x1b[0m"
               b"\x1b]0;owned\x07 **bold** | pipe\r\n")
HTTP_BODY = b"<html><head><title></title><script>alert('title')</script></head><body>x</body></html>"
HOSTILE_HTTP = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: "
                + str(len(HTTP_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + HTTP_BODY)
FORMULA = b"=cmd|' /C calc'!A0 \x9b31m\r\n"

# The front of a DAG that finds open ports without privilege (connect_scanner): the same
# scan as root or not. Other tests add their own nodes after it.
CONNECT_NODES = """
  - {instance_id: targets, module_type: target_parser, config: {targets: "${targets}"}}
  - instance_id: discover
    module_type: tcp_probe_discovery
    depends_on: [targets]
    config: {ports: "${ports}", timeout: 2s}
  - instance_id: port_scan
    module_type: connect_scanner
    depends_on: [discover]
    config: {ports: "${ports}"}
"""

DAG = """
name: formats-e2e
vars: {targets: "", ports: ""}
engine: {fail_fast: false, max_parallel_targets: 32}
nodes:""" + CONNECT_NODES.rstrip("\n") + """
  - instance_id: banner_grab
    module_type: banner_grabber
    depends_on: [port_scan]
    config: {passive_timeout: 1s}
  - {instance_id: fingerprint, module_type: fingerprint_parser, depends_on: [banner_grab]}
  - {instance_id: asset_profile, module_type: asset_profiler, depends_on: [fingerprint]}
  - {instance_id: findings, module_type: test_findings, depends_on: [fingerprint]}
  - {instance_id: explode, module_type: explode, depends_on: [port_scan]}
"""

HOOKS = '''
from pentora import Module, ModuleError, hookimpl
from pentora_plugins.kit.records import Vulnerability

SEVERITY = {"ssh": "high", "http": "medium"}


class TestFindings(Module):
    module_type = "test_findings"
    requires = ("service_fingerprints", "banners")
    produces = ("vulnerabilities",)

    def run(self, ctx, config):
        banners = {(b.host, b.port): b.data for b in ctx.get("banners")}
        found = []
        for fp in ctx.get("service_fingerprints"):
            banner = banners.get((fp.host, fp.port), "")
            found.append(Vulnerability(
                host=fp.host, port=fp.port, id=f"TEST-{fp.service}", title="banner: " + banner[:60],
                severity=SEVERITY.get(fp.service, "low"), cvss={"high": 8.1}.get(SEVERITY.get(fp.service)),
                evidence=banner[:200], references=["https://example.invalid/<b>ref</b>"], source="test"))
        found.append(Vulnerability(host="127.0.0.1", port=None, id="TEST-HOST", title="host-wide <i>",
                                   severity="info"))
        for v in found:
            ctx.emit(v)
        ctx.set("vulnerabilities", found)


class Explode(Module):
    module_type = "explode"

    def run(self, ctx, config):
        raise ModuleError("exploded on purpose: <b>bold</b> \\x1b[31mred", ctx.node_id)


@hookimpl
def pentora_register_modules(registry):
    registry.register(TestFindings)
    registry.register(Explode)
'''


@dataclass
class Scan:
    dir: Path
    proc: subprocess.CompletedProcess[str]
    ports: dict[str, int]
    hooks: Path

    def out(self, fmt: str) -> Path:
        return self.dir / f"scan.{fmt}"

    def jsonl(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out("jsonl").read_text().splitlines()]


def pentora(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pentora", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def run_scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    """The body of each test module's ``scan`` fixture (module scope: one scan per module)::

        @pytest.fixture(scope="module")
        def scan(tmp_path_factory):
            yield from run_scan(tmp_path_factory)
    """
    directory = tmp_path_factory.mktemp("formats")
    servers = {"ssh": TcpServer(banner=HOSTILE_SSH).start(),
               "http": TcpServer(respond=lambda data: HOSTILE_HTTP).start(),
               "formula": TcpServer(banner=FORMULA).start()}
    try:
        (directory / "scan.yaml").write_text(DAG)
        hooks = directory / "hooks.py"
        hooks.write_text(HOOKS)
        ports = {name: s.port for name, s in servers.items()}
        outputs = [arg for fmt in FORMATS for arg in ("-o", str(directory / f"scan.{fmt}"))]
        # nosuch.invalid never resolves (RFC 6761, answered locally): a target_error record
        proc = pentora("scan", "--targets", TARGETS, "-p", ",".join(map(str, ports.values())),
                       "--dag", str(directory / "scan.yaml"), "--hooks", str(hooks), *outputs,
                       cwd=directory)
        yield Scan(directory, proc, ports, hooks)
    finally:
        for s in servers.values():
            s.stop()


def schema_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (the test extra) is not installed")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator
    return validator(schema, format_checker=validator.FORMAT_CHECKER)


def schema_errors(instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in schema_validator().iter_errors(instance)]


def validate_nmap_xml(path_or_text: Path | str) -> None:
    """Assert that an nmap XML file (a path) or text is valid against Debian nmap's DTD."""
    if not NMAP_DTD.is_file():
        pytest.skip(f"{NMAP_DTD} is absent: install Debian's nmap package (.ci/setup does)")
    etree = pytest.importorskip("lxml.etree", reason="lxml (the test extra) is not installed")
    dtd = etree.DTD(str(NMAP_DTD))
    doc = etree.parse(str(path_or_text)) if not isinstance(path_or_text, str) else etree.fromstring(
        path_or_text.encode())
    assert dtd.validate(doc), dtd.error_log.filter_from_errors()
