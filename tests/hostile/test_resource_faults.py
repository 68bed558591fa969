"""Resource faults: out of file descriptors, DNS down.

Out of descriptors: the real pipeline (connect_scanner → banner_grabber →
fingerprint_parser) in a subprocess whose RLIMIT_NOFILE is lowered and nearly used up,
with a greenlet now and then taking every free descriptor: it slows down, does not
crash and loses no port, no banner and no fingerprint against the same scan run with
descriptors to spare. (connect_scanner alone is covered in tests/plugins/test_connect_scan.py.)

DNS down: a hostname target with a resolver that refuses, or never answers, inside a
network namespace whose /etc/resolv.conf (``ip netns exec`` mounts
/etc/netns/NAME/resolv.conf over it) names a closed or silent port on the namespace's
loopback: the failed lookup is recorded with a clear message, the scan of the other
targets completes.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import NetNs
from tests.conftest import ROOT
from tests.hostile import servers

HTTP_PORTS = 30
SSH_PORTS = 50


def probe(ports: list[int], **starve: Any) -> dict[str, Any]:
    spec = {"ports": ports, **starve}
    out = subprocess.run([sys.executable, "-m", "tests.hostile._fd_probe", json.dumps(spec)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return dict(json.loads(out.stdout.splitlines()[-1]))


def test_out_of_file_descriptors_slows_the_banner_grabber_but_loses_nothing(
        tcp_server: Callable[..., Any]) -> None:
    ssh = [tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1 fd-%d\r\n" % i) for i in range(SSH_PORTS)]
    http = [tcp_server(respond=lambda _: servers.HTTP_OK) for _ in range(HTTP_PORTS)]
    ports = sorted(s.port for s in ssh + http)
    baseline = probe(ports)
    starved = probe(ports, nofile=128, free_fds=12, hog=True)
    print(f"\nHOSTILE out_of_fds: baseline {baseline['elapsed']:.2f}s, starved {starved['elapsed']:.2f}s "
          f"({len(ports)} ports, RLIMIT_NOFILE 128, 12 descriptors free, a hog taking them)")
    assert set(starved["statuses"].values()) == {"completed"}, starved["errors"]
    assert starved["open"] == baseline["open"] == ports
    assert len(baseline["services"]) == len(ports)
    assert starved["banners"] == baseline["banners"]
    assert starved["services"] == baseline["services"]


# -- DNS down ------------------------------------------------------------------------------------

NAME = "down.pentora-hostile.test"
# Inside the namespace: an SSH-like listener, and (for "silent") a DNS port that never answers.
NS_SERVERS = """
import socket, sys, time
tcp = socket.create_server(("127.0.0.1", 2222))
if sys.argv[1] in ("silent", "hung"):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("127.0.0.1", 53))
print("ready", flush=True)
while True:
    conn, _ = tcp.accept(); conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\\r\\n"); conn.close()
"""
FAST = "options timeout:1 attempts:1"
RESOLVERS = {  # mode: resolv.conf, what the lookup error says
    "refused": (f"nameserver 127.0.0.1\n{FAST}", "Temporary failure in name resolution"),  # nothing on 53
    "silent": (f"nameserver 127.0.0.1\n{FAST}", "Temporary failure in name resolution"),  # never answers
    "unroutable": (f"nameserver 198.18.0.53\n{FAST}", "Temporary failure in name resolution"),  # no route
    # the C library would wait 60 s: target_parser's resolve_timeout (5 s) gives up first
    "hung": ("nameserver 127.0.0.1\noptions timeout:30 attempts:2", "lookup timed out after 5s"),
}


@contextlib.contextmanager
def private_resolver(ns: NetNs, nameserver: str) -> Iterator[None]:
    """``ip netns exec`` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf."""
    directory = Path("/etc/netns") / ns.name
    directory.mkdir(parents=True)
    try:
        (directory / "resolv.conf").write_text(nameserver + "\n")
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("mode", sorted(RESOLVERS))
def test_dns_down_records_the_failed_lookup_and_scans_the_rest(mode: str, netns: NetNs,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "scan.jsonl"
    resolv, reason = RESOLVERS[mode]
    with private_resolver(netns, resolv):
        assert resolv in netns.run("cat", "/etc/resolv.conf").stdout
        servers_proc = netns.popen(sys.executable, "-c", NS_SERVERS, mode, stdout=subprocess.PIPE, text=True)
        try:
            assert servers_proc.stdout is not None and servers_proc.stdout.readline() == "ready\n"
            start = time.monotonic()
            scan = netns.run(sys.executable, "-m", "pentora", "scan", "--targets", f"127.0.0.1 {NAME}",
                             "--profile", "service-scan", "-p", "2222", "-o", str(out),
                             check=False, cwd=ROOT, timeout=120)
            elapsed = time.monotonic() - start
        finally:
            servers_proc.kill()
            servers_proc.wait()
    print(f"\nHOSTILE dns_down_{mode:10} scan {elapsed:5.2f}s  resolve_timeout 5s  "
          f"{scan.stderr.strip().splitlines()[:1]}")
    assert scan.returncode == 0, scan.stderr
    assert f"cannot resolve '{NAME}': {reason}" in scan.stderr
    assert "Traceback" not in scan.stderr + scan.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    [error] = [r for r in lines if r["kind"] == "target_error"]
    assert (error["spec"], error["error"]) == (NAME, f"cannot resolve '{NAME}': {reason}")
    assert [(r["host"], r["port"]) for r in lines if r["kind"] == "port"] == [("127.0.0.1", 2222)]
    assert [(r["service"], r["product"]) for r in lines if r["kind"] == "service"] == [("ssh", "OpenSSH")]
    assert lines[-1]["kind"] == "scan" and lines[-1]["status"] == "completed"
