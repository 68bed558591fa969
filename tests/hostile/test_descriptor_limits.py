"""Descriptor starvation makes a scan slower, never wrong.

The CLI runs in a subprocess whose RLIMIT_NOFILE is lowered to 24, 16 and 12 (12 is
about the least a scan starts with: the interpreter, gevent's hub and the output file
take some) and its results are compared with the same scan run with descriptors to
spare: the same hosts, ports, banners and services, and no traceback.

- ``tcp_probe_discovery`` over 200 loopback addresses, each with a listener bound to
  that address alone: a host answered while its probe waited for a descriptor used to
  crash the node (``'NoneType' object has no attribute 'append'``).
- The standard profile against a few services on 127.0.0.1 (SSH, FTP, SMTP, HTTP,
  HTTPS): every module that opens sockets waits for a free one.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import free_port
from tests.conftest import ROOT
from tests.hostile import servers
from tests.plugins._httpd import self_signed

LISTEN = str(ROOT / "tests" / "plugins" / "_listen.py")
LIMITS = (24, 16, 12)
HOSTS = [f"127.0.1.{i}" for i in range(1, 201)]
DISCOVERY_DAG = """
name: fd-discovery
vars:
  targets: ""
nodes:
  - instance_id: targets
    module_type: target_parser
    config: {{targets: "${{targets}}"}}
  - instance_id: probe
    module_type: tcp_probe_discovery
    depends_on: [targets]
    config: {{timeout: 1s, retry: 1, ports: "{ports}"}}
"""


# kind of record → the fields compared; a host record comes from each discovery method
COMPARED = {"host": ("address", "method", "alive"), "port": ("host", "port"),
            "banner": ("port", "probe", "tls", "data"),
            "service": ("port", "service", "product", "version"), "vulnerability": ("port", "id")}


def scan(args: list[str], out: Path, nofile: int | None) -> tuple[list[dict[str, Any]], str]:
    """Run ``pentora scan ARGS -o OUT`` with at most ``nofile`` descriptors; its records."""

    def limit() -> None:
        if nofile is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    proc = subprocess.run([sys.executable, "-m", "pentora", "scan", *args, "--no-store", "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=240, preexec_fn=limit)
    where = f"ulimit -n {nofile}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout, where
    assert proc.returncode == 0, where
    return [json.loads(line) for line in out.read_text().splitlines()], where


def of(records: list[dict[str, Any]], kind: str, *fields: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(_value(r, f) for f in fields) for r in records if r["kind"] == kind)


def _value(record: dict[str, Any], field: str) -> Any:
    if field == "data" and record.get("probe") == "tls_client_hello":
        return record[field][:5]  # a ServerHello's random differs every time; its record header not
    return record[field]


@pytest.fixture
def many_hosts() -> Any:
    """A listener on each of 200 loopback addresses (port ``.port``), each bound to its
    own address, in a process of its own (its descriptors are not the test's)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, LISTEN, "--open", *[f"{h}:{port}" for h in HOSTS]],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.port = port  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=10)


def test_tcp_probe_discovery_of_200_hosts_finds_all_of_them_short_of_descriptors(
        many_hosts: Any, tmp_path: Path) -> None:
    # the listened port first: its connect is still pending when the next socket is wanted
    ports = f"{many_hosts.port},{free_port()},{free_port()}"
    dag = tmp_path / "discovery.yaml"
    dag.write_text(DISCOVERY_DAG.format(ports=ports))
    args = ["--dag", str(dag), "-t", f"{HOSTS[0]}-{HOSTS[-1]}"]
    baseline, _ = scan(args, tmp_path / "baseline.jsonl", None)
    up = of(baseline, "host", "address", "alive")
    assert up == sorted((h, True) for h in HOSTS)
    for nofile in LIMITS:
        starved, where = scan(args, tmp_path / f"starved{nofile}.jsonl", nofile)
        assert of(starved, "host", "address", "alive") == up, where
        assert [r["status"] for r in starved if r["kind"] == "node"] == ["completed"] * 2, where


@pytest.fixture
def services(tcp_server: Callable[..., Any], tmp_path: Path) -> list[int]:
    """SSH, FTP, SMTP, HTTP and HTTPS look-alikes on 127.0.0.1 that answer the same
    bytes every time (no Date header), so two scans' banners can be compared."""
    cert, key = self_signed(tmp_path)
    started = [
        tcp_server(banner=servers.SSH_BANNER),
        tcp_server(banner=b"220 (vsFTPd 3.0.3)\r\n"),
        tcp_server(banner=b"220 mail.pentora.test ESMTP Postfix (Debian/GNU)\r\n"),
        tcp_server(respond=lambda _: servers.HTTP_OK),
        tcp_server(handler=servers.tls_server(str(cert), str(key))),
    ]
    return sorted(s.port for s in started)


def test_standard_profile_short_of_descriptors_finds_what_it_finds_with_plenty(
        services: list[int], tmp_path: Path) -> None:
    args = ["--profile", "standard", "-t", "127.0.0.1", "-p", ",".join(map(str, services))]
    baseline, _ = scan(args, tmp_path / "baseline.jsonl", None)
    assert of(baseline, "port", "host", "port") == [("127.0.0.1", p) for p in services]
    assert {s[0] for s in of(baseline, "service", "port")} == set(services)
    for nofile in LIMITS:
        starved, where = scan(args, tmp_path / f"starved{nofile}.jsonl", nofile)
        for kind, fields in COMPARED.items():
            assert of(starved, kind, *fields) == of(baseline, kind, *fields), f"{kind}s differ; {where}"
        failed = [(r["node"], r["error"]) for r in starved
                  if r["kind"] == "node" and r["status"] not in ("completed", "skipped")]
        assert failed == [], where
        # what is skipped (the credentialed inventory, without credentials) is what plenty skips
        assert of(starved, "node", "node", "status") == of(baseline, "node", "node", "status"), where
