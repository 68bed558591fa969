"""The web pipeline against Debian's nginx, plain and with TLS, on 127.0.0.1.

nginx is started by ``daemons.nginx`` with its own config (a "Welcome to nginx!" page on
the plain port, HTTPS with a self-signed certificate generated here on the TLS port) and
scanned once through the CLI::

    python -m pentora scan --dag web.yaml --targets 127.0.0.1 -p PLAIN,TLS -o OUT.jsonl

with target_parser → connect_scanner → banner_grabber → fingerprint_parser →
http_scanner → webapp_fingerprinter → http_checks. The version nginx shows must be the
installed package's upstream version (``dpkg-query``). Without root or apt-get the test
skips with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ..plugins._httpd import self_signed
from . import daemons

pytestmark = pytest.mark.integration

DAG = """\
name: web-daemons
vars: {targets: "127.0.0.1", ports: "80"}
engine: {fail_fast: false}
nodes:
  - {instance_id: targets, module_type: target_parser, config: {targets: "${targets}"}}
  - {instance_id: ports, module_type: connect_scanner, depends_on: [targets],
     config: {ports: "${ports}", input: targets}}
  - {instance_id: banners, module_type: banner_grabber, depends_on: [ports]}
  - {instance_id: fingerprint, module_type: fingerprint_parser, depends_on: [banners]}
  - {instance_id: http, module_type: http_scanner, depends_on: [fingerprint]}
  - {instance_id: webapps, module_type: webapp_fingerprinter, depends_on: [http]}
  - {instance_id: checks, module_type: http_checks, depends_on: [http]}
"""


@dataclass
class Scan:
    nginx: daemons.Daemon
    done: subprocess.CompletedProcess[str]
    lines: list[dict[str, Any]]

    def of(self, kind: str, port: int) -> list[dict[str, Any]]:
        return [r for r in self.lines if r["kind"] == kind and r.get("port") == port]


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scan]:
    reason = daemons.ensure_packages()
    if reason:
        pytest.skip(f"real daemons unavailable: {reason}")
    tmp = tmp_path_factory.mktemp("web-daemons")
    cert, key = self_signed(tmp)
    (tmp / "web.yaml").write_text(DAG)
    out = tmp / "scan.jsonl"
    with daemons.nginx(tls=(str(cert), str(key))) as nginx:
        assert nginx.tls_port is not None
        argv = [sys.executable, "-m", "pentora", "scan", "--dag", str(tmp / "web.yaml"),
                "--targets", daemons.HOST, "-p", f"{nginx.port},{nginx.tls_port}", "-o", str(out)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=daemons.ROOT, timeout=300)
    lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    yield Scan(nginx, done, lines)


def test_scan_succeeds(scan: Scan) -> None:
    assert scan.done.returncode == 0, f"exit {scan.done.returncode}\n{scan.done.stderr[-3000:]}"


def test_plain_port_is_read_over_http(scan: Scan) -> None:
    (r,) = scan.of("http", scan.nginx.port)
    assert (r["tls"], r["status"], r["title"]) == (False, 200, "Welcome to nginx!")
    assert r["server"] == f"nginx/{scan.nginx.upstream_version}"
    assert r["statuses"]["HEAD"] == 200 and r["error"] is None


def test_tls_port_is_read_over_tls(scan: Scan) -> None:
    (r,) = scan.of("http", scan.nginx.tls_port)
    assert (r["tls"], r["status"], r["body"]) == (True, 200, "tls\n")
    assert r["url"] == f"https://{daemons.HOST}:{scan.nginx.tls_port}/"
    assert "strict-transport-security" in r["security_headers_missing"]


def test_nginx_and_its_version_are_named_on_both_ports(scan: Scan) -> None:
    for port in (scan.nginx.port, scan.nginx.tls_port):
        names = {(t["name"], t["version"]) for t in scan.of("webtech", port)}
        assert ("nginx", scan.nginx.upstream_version) in names, names
        nginx = next(t for t in scan.of("webtech", port) if t["name"] == "nginx")
        assert nginx["cpe"] == f"cpe:2.3:a:f5:nginx:{scan.nginx.upstream_version}:*:*:*:*:*:*:*"


def test_default_page_and_missing_headers_are_reported(scan: Scan) -> None:
    plain = {v["id"]: v for v in scan.of("vulnerability", scan.nginx.port)}
    assert {"PENTORA-HTTP-DEFAULT-PAGE", "PENTORA-HTTP-MISSING-HEADERS"} <= set(plain)
    assert plain["PENTORA-HTTP-DEFAULT-PAGE"]["severity"] == "low"
    tls = {v["id"] for v in scan.of("vulnerability", scan.nginx.tls_port)}
    assert "PENTORA-HTTP-MISSING-HEADERS" in tls and "PENTORA-HTTP-DEFAULT-PAGE" not in tls
