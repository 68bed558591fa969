"""The example DAGs of ``dags/examples/`` validate and run as written, with ``pentora`` on
the command line, each against listeners the test starts (``_example_servers.py``: Python's
HTTP server, HTTPS with a self-signed certificate, services that speak first).

Each scan runs inside a network namespace the test creates, so the well-known ports (22,
80, 443, 8080, 8443) are free and nothing leaves it: its loopback, and 198.18.0.1 for the
pipeline, whose blocklist keeps loopback out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import NetNs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "dags" / "examples"
SERVERS = Path(__file__).with_name("_example_servers.py")
PENTORA = Path(sys.executable).with_name("pentora")
FRAGMENTS = {"discovery-subdag.yaml"}  # included by main-dag.yaml: not a DAG of its own
SSH = "SSH-2.0-OpenSSH_9.2p1\r\n"


@contextmanager
def listening(ns: NetNs, **spec: Any) -> Iterator[None]:
    """The listeners of ``spec`` inside ``ns``, until the block ends."""
    proc = ns.popen(sys.executable, str(SERVERS), json.dumps(spec), stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", \
            "the example servers did not start"
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def pentora(ns: NetNs, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return ns.run(str(PENTORA), *args, cwd=cwd, check=False, timeout=180)


def records(path: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        out.setdefault(record["kind"], []).append(record)
    return out


def nodes(found: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {r["node"]: r for r in found["node"]}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml") if p.name not in FRAGMENTS))
def test_every_example_dag_validates(name: str, tmp_path: Path) -> None:
    done = subprocess.run([str(PENTORA), "dag", "validate", str(EXAMPLES / name)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stdout


def test_the_examples_are_all_tested() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == {
        "hello.yaml", "pipeline.yaml", "custom-scan.yaml", "discovery-subdag.yaml", "main-dag.yaml",
        "conditional.yaml", "web-application-scan.yaml"}, "a new example: run it in a test here"


def test_the_dag_format_example_is_the_file_it_names() -> None:
    page = (ROOT / "docs" / "dag-format.md").read_text(encoding="utf-8")
    text = (EXAMPLES / "web-application-scan.yaml").read_text(encoding="utf-8")
    assert f"```yaml\n{text}```" in page, "docs/dag-format.md's first example differs from its file"


def test_pipeline_example_scans_a_lab_address_and_keeps_loopback_out(netns: NetNs, tmp_path: Path) -> None:
    netns.run("ip", "addr", "add", "198.18.0.1/32", "dev", "lo")
    with listening(netns, address="198.18.0.1", http=[80], banner={"22": SSH}), \
            listening(netns, address="127.0.0.1", http=[80]):
        done = pentora(netns, tmp_path, "scan", "--dag", str(EXAMPLES / "pipeline.yaml"),
                       "--targets", "198.18.0.1,127.0.0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    found = records(tmp_path / "results.jsonl")  # the json_reporter's output, as configured
    assert all(r["status"] == "completed" for r in nodes(found).values()), nodes(found)
    assert [h["address"] for h in found["host"]] == ["198.18.0.1"]  # 127.0.0.0/8 is blocked
    assert {(p["host"], p["port"]) for p in found["port"]} == {("198.18.0.1", 22), ("198.18.0.1", 80)}
    services = {s["port"]: s for s in found["service"]}
    assert (services[22]["service"], services[22]["product"], services[22]["version"]) == \
        ("ssh", "OpenSSH", "9.2p1")
    assert services[80]["service"] == "http"
    assert not [r for kind in found.values() for r in kind if str(r.get("host", "")).startswith("127.")]


def test_web_application_example_requests_web_ports_without_fingerprints(netns: NetNs,
                                                                        tmp_path: Path) -> None:
    # 8443 stays closed: a port only guessed from a live host is left out when it refuses
    with listening(netns, address="127.0.0.1", http=[80, 8080], https=[443]):
        done = pentora(netns, tmp_path, "scan", "--targets", "127.0.0.1", "--dag",
                       str(EXAMPLES / "custom-scan.yaml"), "-o", "out.jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    found = records(tmp_path / "out.jsonl")
    assert set(nodes(found)) == {"targets", "discover", "http_scan", "ssl_scan", "webapp_fingerprint",
                                 "report"}
    assert all(r["status"] == "completed" for r in nodes(found).values())
    http = {r["port"]: r for r in found["http"]}
    assert {port: r["tls"] for port, r in http.items()} == {80: False, 8080: False, 443: True}
    for r in http.values():
        assert r["status"] == 200 and r["title"] == "Example page"
        assert set(r["statuses"]) == {"GET", "HEAD", "OPTIONS"}  # the methods configured
    tls = found["tls"]
    assert [r["port"] for r in tls] == [443]
    assert tls[0]["self_signed"] is True and tls[0]["subject"] == "CN=pentora-example"
    assert tls[0]["protocols"]["TLSv1.2"] and tls[0]["ciphers"]  # check_ciphers: true
    assert {(r["port"], r["name"]) for r in found["webtech"]} >= {(80, "Python"), (443, "Python")}


def test_main_dag_example_includes_the_discovery_subdag(netns: NetNs, tmp_path: Path) -> None:
    with listening(netns, address="127.0.0.1", http=[80], banner={"22": SSH}):
        done = pentora(netns, tmp_path, "scan", "--targets", "127.0.0.1", "--dag",
                       str(EXAMPLES / "main-dag.yaml"), "-o", "out.jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    found = records(tmp_path / "out.jsonl")
    ran = nodes(found)
    assert {n: (r["module_type"], r["status"]) for n, r in ran.items()} == {
        "targets": ("target_parser", "completed"),
        "discover.icmp": ("icmp_discovery", "completed"),
        "discover.arp": ("arp_discovery", "completed"),
        "discover.merge": ("discovery_merger", "completed"),
        "scan": ("port_scanner", "completed"),
    }
    assert [(h["address"], h["method"]) for h in found["host"]] == [("127.0.0.1", "icmp")]
    assert {p["port"] for p in found["port"] if p["state"] == "open"} >= {22, 80}
    # the namespace's own loopback address: nothing to ask on a link
    assert "arp_discovery: skipped 1 host(s): an address of this host" in done.stderr


@pytest.mark.parametrize("enabled", [True, False])
def test_conditional_example_runs_vuln_check_only_when_enabled(netns: NetNs, tmp_path: Path,
                                                               enabled: bool) -> None:
    with listening(netns, address="127.0.0.1", banner={"22": SSH}):
        done = pentora(netns, tmp_path, "scan", "--targets", "127.0.0.1", "--dag",
                       str(EXAMPLES / "conditional.yaml"), "-o", "out.jsonl",
                       "--set", f"vuln_enabled={str(enabled).lower()}")
    assert done.returncode == 0, done.stdout + done.stderr
    found = records(tmp_path / "out.jsonl")
    vuln_check = nodes(found)["vuln_check"]
    assert [(s["port"], s["product"]) for s in found["service"]] == [(22, "OpenSSH")]
    if enabled:
        assert vuln_check["status"] == "completed"
        assert "CVE-2023-48795" in {v["id"] for v in found["vulnerability"]}  # Terrapin: < 9.6p1
    else:
        assert vuln_check["status"] == "skipped"
        assert vuln_check["reason"] == "condition '${vuln_enabled}' is false"
        assert "vulnerability" not in found
