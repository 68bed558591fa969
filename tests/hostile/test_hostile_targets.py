"""Hostile targets: each case is a server on 127.0.0.1 that misbehaves in one way, scanned
with the real modules (target_parser → connect_scanner → banner_grabber →
fingerprint_parser) in the same run as a well-behaved SSH server.

In every case: the scan completes with no node failed (the per-port ``deadline`` of the
banner grabber fired, not the node's ``timeout``), the hostile port is reported open with
what was learned from it (the bytes it sent before it stalled, reset or was cut off), and
the well-behaved server gets its full fingerprint. The same servers are then scanned with
``http_scanner`` and ``ssl_analyzer`` added (every port: ``all_ports``, ``ports: all``),
each port's record holding what was found or the error; ``cve_matcher`` meets a version
of 5,000 digits; the endless stream's peak memory is measured in a process of its own.
The time each case took is printed against its deadlines (``-s`` shows it, and
``tests/hostile/count.py --run`` tabulates it); nothing asserts on wall-clock time.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.hostile import servers
from tests.hostile.pipeline import GRAB, GRAB_DEADLINE, NODE_TIMEOUT, Run, missing_module, scan

Check = Callable[[list[Any], list[Any]], None]  # (banners, fingerprints) of the hostile port


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], servers.Handler]  # the handler, given a directory for certificates
    check: Check
    grab: dict[str, Any] | None = None


def data(banners: list[Any], probe: str) -> bytes:
    """The bytes of the first banner drawn by ``probe`` (latin-1 round trip)."""
    found = [b for b in banners if b.probe == probe]
    assert found, f"no {probe!r} banner among {[b.probe for b in banners]}"
    return str(found[0].data).encode("latin-1")


def check_silent(banners: list[Any], prints: list[Any]) -> None:
    assert banners == [] and prints == []  # open, and nothing learned but that


def check_drip(banners: list[Any], prints: list[Any]) -> None:
    heard = data(banners, "passive")
    assert heard and servers.SSH_BANNER.startswith(heard)  # the bytes before the stall


def check_endless(banners: list[Any], prints: list[Any]) -> None:
    assert sum(len(b.data) for b in banners) <= GRAB["max_bytes"]
    assert data(banners, "passive") == b"A" * GRAB["max_bytes"]
    assert [p.service for p in prints] == ["unknown"]


def check_garbage(banners: list[Any], prints: list[Any]) -> None:
    assert data(banners, "passive") == servers.GARBAGE  # every byte, unchanged
    assert [p.service for p in prints] == ["unknown"]
    json.dumps([b.to_dict() for b in banners])  # what the JSONL output writes


def check_reset(banners: list[Any], prints: list[Any]) -> None:
    assert data(banners, "passive") == servers.SSH_BANNER[:14]


def check_tls_stall(banners: list[Any], prints: list[Any]) -> None:
    assert data(banners, "tls_client_hello")[:3] == b"\x16\x03\x03"  # the ServerHello it did send
    assert not [b for b in banners if b.probe == "tls_handshake"]


def check_garbage_certificate(banners: list[Any], prints: list[Any]) -> None:
    assert servers.GARBAGE[:300] in data(banners, "tls_client_hello")
    assert not [b for b in banners if b.tls]


def check_raw_certificate(banners: list[Any], prints: list[Any]) -> None:
    assert b"malformed.pentora.test" in data(banners, "tls_client_hello")  # the certificate as sent
    assert not [b for b in banners if b.tls]  # no key exchange: no handshake to go through


def handshake(banners: list[Any]) -> dict[str, str]:
    lines = data(banners, "tls_handshake").decode().splitlines()
    return dict(line.split("=", 1) for line in lines)


def check_expired(banners: list[Any], prints: list[Any]) -> None:
    assert handshake(banners)["subject"].startswith("CN=expired.pentora.test")
    assert handshake(banners)["not_after"] < now()  # the expiry, reported as seen
    assert [(p.service, p.product, p.tls) for p in prints] == [("http", "nginx", True)]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_wrong_host(banners: list[Any], prints: list[Any]) -> None:
    assert handshake(banners)["san"] == "DNS:wrong.pentora.test"
    assert [(p.service, p.product, p.tls) for p in prints] == [("http", "nginx", True)]


def check_chain_loop(banners: list[Any], prints: list[Any]) -> None:
    facts = handshake(banners)
    assert facts["subject"].startswith("CN=loop-a") and facts["issuer"].startswith("CN=loop-b")
    assert [(p.service, p.product, p.tls) for p in prints] == [("http", "nginx", True)]


def check_huge_headers(banners: list[Any], prints: list[Any]) -> None:
    answer = data(banners, "http_get")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n")
    assert sum(len(b.data) for b in banners) <= GRAB["max_bytes"]
    assert [(p.service, p.product) for p in prints] == [("http", "nginx")]


def check_redirect_loop(banners: list[Any], prints: list[Any]) -> None:
    assert data(banners, "http_get").startswith(b"HTTP/1.1 302 Found\r\n")
    assert [(p.service, p.product) for p in prints] == [("http", "nginx")]


def chain(kind: str) -> Callable[[Path], servers.Handler]:
    return lambda d: servers.tls_server(*servers.write_chain(d, kind, kind))


CASES = [
    Case("silent", lambda d: servers.silent, check_silent),
    Case("drip", lambda d: servers.drip(), check_drip),
    Case("endless_stream", lambda d: servers.endless(), check_endless),
    Case("binary_garbage", lambda d: servers.garbage(), check_garbage),
    Case("reset_mid_banner", lambda d: servers.reset_mid_banner(), check_reset, {"idle_timeout": "1s"}),
    Case("tls_stall_after_hello", lambda d: servers.tls_stall_after_hello, check_tls_stall),
    Case("tls_garbage_certificate", lambda d: servers.tls_raw_certificate(), check_garbage_certificate),
    Case("tls_certificate_bad_version",
         lambda d: servers.tls_raw_certificate(servers.malformed_certificate("bad_version")),
         check_raw_certificate),
    Case("tls_certificate_duplicate_extension",
         lambda d: servers.tls_raw_certificate(servers.malformed_certificate("duplicate_extension")),
         check_raw_certificate),
    Case("tls_expired_certificate", chain("expired"), check_expired),
    Case("tls_wrong_host", chain("wrong_host"), check_wrong_host),
    Case("tls_chain_loop", chain("chain_loop"), check_chain_loop),
    Case("http_huge_headers", lambda d: servers.http_huge_headers(), check_huge_headers),
    Case("http_redirect_loop", lambda d: servers.http_redirect_loop, check_redirect_loop),
]


def report(case: str, run: Run, node: str, deadline: float) -> None:
    print(f"\nHOSTILE {case:35} {node:13} {run.duration(node):6.2f}s  per-port/request {deadline:g}s  "
          f"node timeout {NODE_TIMEOUT:g}s  whole scan {run.elapsed:.2f}s")


def assert_unaffected(run: Run, normal: int) -> None:
    """Every node completed, and the well-behaved SSH server got its full fingerprint."""
    failed = {n: r.error for n, r in run.result.nodes.items() if r.status != "completed"}
    assert not failed, failed
    assert [(p.service, p.product, p.version) for p in run.of_port("service_fingerprints", normal)] == [
        ("ssh", "OpenSSH", "9.2p1")]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_target(case: Case, tcp_server: Callable[..., Any], tmp_path: Path) -> None:
    hostile = tcp_server(handler=case.make(tmp_path))
    normal = tcp_server(banner=servers.SSH_BANNER)
    run = scan([hostile.port, normal.port], grab=case.grab)
    report(case.name, run, "banners", GRAB_DEADLINE)
    assert_unaffected(run, normal.port)
    assert [p.port for p in run.get("open_ports")] == sorted([hostile.port, normal.port])
    banners = run.of_port("banners", hostile.port)
    case.check(banners, run.of_port("service_fingerprints", hostile.port))
    # what was learned was also streamed as found (the JSONL output and the store see it)
    streamed = [b for b in run.emitted.of("banner") if b.port == hostile.port]
    assert sorted(map(repr, streamed)) == sorted(map(repr, banners))


# -- http_scanner and ssl_analyzer against the same servers ------------------------------------

MODULE_TIMEOUT = 3.0  # of each request (http_scanner) or handshake (ssl_analyzer)
OPTIONAL_CONFIG = {"http_scanner": {"all_ports": True, "timeout": f"{MODULE_TIMEOUT:g}s"},
                   "ssl_analyzer": {"ports": "all", "timeout": f"{MODULE_TIMEOUT:g}s"}}
TLS_CASES = {"tls_stall_after_hello", "tls_garbage_certificate", "tls_expired_certificate", "tls_wrong_host",
             "tls_chain_loop", "tls_certificate_bad_version", "tls_certificate_duplicate_extension"}
GOOD_TLS = {"tls_expired_certificate", "tls_wrong_host", "tls_chain_loop"}


def check_http(case: str, found: list[Any]) -> None:
    [response] = found  # every port scanned (all_ports) gets one record, failed or not
    if case in GOOD_TLS:
        assert (response.status, response.server, response.tls, response.error) == (
            200, "nginx/1.22.1", True, None)
    elif case == "http_redirect_loop":
        assert response.status == 302 and "redirect" in str(response.error)
        assert len(response.redirects) <= 5  # bounded by max_redirects
    else:
        assert response.status is None and response.error  # what went wrong, said
    assert len(response.body) <= 64 * 1000
    assert sum(len(k) + len(v) for k, v in response.headers.items()) <= 65536


def check_tls(case: str, found: list[Any]) -> None:
    if case not in TLS_CASES:
        assert all(r.subject is None for r in found)  # not TLS: left out, or an error
        return
    [report] = found
    if case == "tls_expired_certificate":
        assert report.expired is True and report.self_signed is True
    elif case == "tls_wrong_host":
        assert report.hostname_mismatch is True and "wrong.pentora.test" in " ".join(report.sans)
    elif case == "tls_chain_loop":
        assert len(report.chain) == 2 and "loop-b" in str(report.issuer)  # A, then B: sent as is
    elif case == "tls_certificate_bad_version":
        assert report.subject is None and "version 108" in str(report.error)
    elif case == "tls_certificate_duplicate_extension":  # read all the same, the SANs as unknown
        assert "malformed.pentora.test" in str(report.subject) and report.error is None
    elif case == "tls_stall_after_hello":  # not "no certificate": the server stopped talking
        assert report.subject is None and "timed out" in str(report.error)
    else:  # the certificate was garbage
        assert report.subject is None and "unreadable certificate" in str(report.error)


@pytest.mark.parametrize("module_type", sorted(OPTIONAL_CONFIG))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_target_against_web_and_tls_modules(case: Case, module_type: str,
                                                    tcp_server: Callable[..., Any], tmp_path: Path) -> None:
    reason = missing_module(module_type)
    if reason:
        pytest.skip(reason)
    hostile = tcp_server(handler=case.make(tmp_path))
    normal = tcp_server(banner=servers.SSH_BANNER)
    run = scan([hostile.port, normal.port], (module_type,), case.grab,
               {module_type: OPTIONAL_CONFIG[module_type]})
    report(case.name, run, module_type, MODULE_TIMEOUT)
    assert_unaffected(run, normal.port)
    if module_type == "http_scanner":
        check_http(case.name, run.of_port("http_responses", hostile.port))
    else:
        check_tls(case.name, run.of_port("tls_results", hostile.port))


SSH_CASES = {  # what follows the identification line instead of a KEXINIT packet
    "ssh_silent_after_banner": servers.ssh_then(b""),
    "ssh_huge_packet_length": servers.ssh_then(b"\xff\xff\xff\xff\x04" + b"\x00" * 64),
    "ssh_endless_packet": servers.ssh_then(b"\x00\x10\x00\x00\x04" + b"\x14" * 65536, forever=True),
    "ssh_drip_kexinit": servers.ssh_then(b"\x00\x00\x01\x00\x04\x14" + b"\x00" * 40, drip_every=1.0),
    "ssh_wrong_message": servers.ssh_then(b"\x00\x00\x00\x0c\x04\x15" + b"\x00" * 10),
}


@pytest.mark.parametrize("case", sorted(SSH_CASES))
def test_hostile_ssh_server_against_ssh_checks(case: str, tcp_server: Callable[..., Any]) -> None:
    """ssh_checks reads each SSH server's KEXINIT: a server that sends none, a bogus or
    endless one, or drips it, costs at most its timeout and leaves no finding."""
    reason = missing_module("ssh_checks")
    if reason:
        pytest.skip(reason)
    hostile = tcp_server(handler=SSH_CASES[case])
    normal = tcp_server(banner=servers.SSH_BANNER)
    run = scan([hostile.port, normal.port], ("ssh_checks",), None,
               {"ssh_checks": {"timeout": f"{MODULE_TIMEOUT:g}s"}})
    report(case, run, "ssh_checks", 2 * MODULE_TIMEOUT)
    assert_unaffected(run, normal.port)
    assert [(f.service, f.product) for f in run.of_port("service_fingerprints", hostile.port)] == [
        ("ssh", "OpenSSH")]
    assert run.of_port("vulnerabilities", hostile.port) == []


def test_a_version_the_target_chose_does_not_fail_the_vulnerability_evaluation(
        tcp_server: Callable[..., Any]) -> None:
    """The fingerprint's version is whatever the banner says: 5,000 digits are more than
    Python's int() converts by default (4,300). The evaluation must not fail on it."""
    reason = missing_module("cve_matcher")
    if reason:
        pytest.skip(reason)
    hostile = tcp_server(banner=b"SSH-2.0-OpenSSH_" + b"9" * 5000 + b"\r\n")
    normal = tcp_server(banner=servers.SSH_BANNER)
    run = scan([hostile.port, normal.port], ("cve_matcher",))
    report("huge_version", run, "cve_matcher", GRAB_DEADLINE)
    [found] = run.of_port("service_fingerprints", hostile.port)
    assert (found.product, len(found.version or "")) == ("OpenSSH", 5000)
    assert_unaffected(run, normal.port)


# -- memory ------------------------------------------------------------------------------------

MEMORY_BOUND = 64 * 2**20  # over the process's baseline: generous, the stream itself is endless


@pytest.mark.parametrize(("max_bytes", "extra"), [(GRAB["max_bytes"], ()), (4 * 2**20, ()),
                                                  (GRAB["max_bytes"], ("http_scanner", "ssl_analyzer"))])
def test_endless_stream_memory_stays_bounded(max_bytes: int, extra: tuple[str, ...],
                                             tcp_server: Callable[..., Any]) -> None:
    """In a process of its own (peak RSS and tracemalloc): an endless streamer costs what
    ``max_bytes`` (and http_scanner's caps) allow, not what the server sends."""
    reasons = [r for r in map(missing_module, extra) if r]
    if reasons:
        pytest.skip("; ".join(reasons))
    stream = tcp_server(handler=servers.endless())
    warmup = tcp_server(banner=servers.SSH_BANNER)
    spec = {"port": stream.port, "warmup_port": warmup.port, "max_bytes": max_bytes, "extra": list(extra),
            "configs": OPTIONAL_CONFIG}
    out = subprocess.run([sys.executable, "-m", "tests.hostile._memory_probe", json.dumps(spec)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.splitlines()[-1])
    modules = "+".join(extra) or "banners"
    print(f"\nHOSTILE endless_stream memory (max_bytes {max_bytes}, {modules}): RSS peak over baseline "
          f"{max(0, probe['rss_peak_over_baseline']) / 2**20:.1f} MiB, tracemalloc peak "
          f"{probe['tracemalloc_peak'] / 2**20:.1f} MiB, baseline {probe['baseline_rss'] / 2**20:.1f} MiB, "
          f"scan {probe['elapsed']:.2f}s")
    assert set(probe["statuses"].values()) == {"completed"}, probe["statuses"]
    assert probe["open_ports"] == [stream.port]
    assert probe["banner_bytes"] == max_bytes  # read up to the cap, then stopped
    assert probe["rss_peak_over_baseline"] < MEMORY_BOUND
    assert probe["tracemalloc_peak"] < MEMORY_BOUND
