"""Every built-in profile and the demo, run by a real unprivileged user, exit 0 and find
the open ports root finds; ICMP uses the datagram socket where ``ping_group_range`` allows
the user's group and is skipped with one warning where it does not.

The scans run inside a network namespace each test creates, against listeners started
there, so that ``net.ipv4.ping_group_range`` (a per-namespace sysctl) can be set both ways
without touching the host's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pentora.testing import NetNs, network_namespace
from tests.unprivileged import UnprivilegedUser, run_as_unprivileged

FORBIDDEN = "1 0"  # Debian's default: no group may open an ICMP datagram socket
ALLOWED = "0 2147483647"
SSH_PORT, HTTP_PORT, CLOSED_PORT = 2222, 8080, 9
PORTS = f"{SSH_PORT},{HTTP_PORT},{CLOSED_PORT}"
PROFILES = ["discovery-only", "port-scan", "service-scan", "standard", "vuln-scan", "web-scan"]
ICMP_SKIPPED = "icmp_discovery: ICMP echo skipped"
FALLBACK = "falling back to a TCP connect scan"

# An SSH greeting and an HTTP server on 127.0.0.1 of the namespace; "ready" once bound,
# gone when its stdin closes.
LISTENERS = r"""
import socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Page(BaseHTTPRequestHandler):
    server_version = "nginx/1.22.1"
    sys_version = ""
    def do_GET(self):
        body = b"<html><title>hello</title></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_HEAD = do_GET
    def log_message(self, *args):
        pass

def ssh(listener):
    while True:
        conn, _ = listener.accept()
        try:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            conn.settimeout(2)
            conn.recv(256)
        except OSError:
            pass
        conn.close()

ssh_port, http_port = int(sys.argv[1]), int(sys.argv[2])
listener = socket.create_server(("127.0.0.1", ssh_port))
threading.Thread(target=ssh, args=(listener,), daemon=True).start()
web = ThreadingHTTPServer(("127.0.0.1", http_port), Page)
threading.Thread(target=web.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def namespace() -> Iterator[NetNs]:
    """A network namespace with the SSH and HTTP listeners running in it."""
    with network_namespace() as ns:
        servers = ns.popen(sys.executable, "-c", LISTENERS, str(SSH_PORT), str(HTTP_PORT),
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert servers.stdout is not None and servers.stdout.readline().strip() == "ready"
            yield ns
        finally:
            if servers.stdin is not None:
                servers.stdin.close()
            servers.wait(timeout=10)


def set_ping_group_range(ns: NetNs, value: str) -> None:
    ns.run("sysctl", "-w", f"net.ipv4.ping_group_range={value}")
    assert ns.run("cat", "/proc/sys/net/ipv4/ping_group_range").stdout.split() == value.split()


def scan_argv(profile: str, out: str) -> list[str]:
    ports = [] if profile == "discovery-only" else ["--ports", PORTS]
    return ["scan", "-t", "127.0.0.1", "--profile", profile, *ports, "-o", out, "-q"]


def as_root(ns: NetNs, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return ns.run(sys.executable, "-m", "pentora", *argv, check=False, cwd=cwd, timeout=120,
                  env={"PENTORA_STORE": str(cwd / "root-scans.db"), "PATH": "/usr/bin:/bin"})


def records(path: Path, kind: str) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def open_ports(path: Path) -> set[int]:
    return {r["port"] for r in records(path, "port") if r["state"] == "open"}


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_exits_0_unprivileged_and_finds_what_root_finds(profile: str, namespace: NetNs,
                                                                 unprivileged: UnprivilegedUser):
    set_ping_group_range(namespace, FORBIDDEN)
    user = run_as_unprivileged(scan_argv(profile, "user.jsonl"), unprivileged, netns=namespace)
    assert user.returncode == 0, user.stderr
    assert "Traceback" not in user.stderr and " ERROR " not in user.stderr, user.stderr
    root = as_root(namespace, scan_argv(profile, "root.jsonl"), unprivileged.home)
    assert root.returncode == 0, root.stderr
    assert FALLBACK not in root.stderr and ICMP_SKIPPED not in root.stderr

    if profile == "discovery-only":
        alive = {r["address"] for r in records(unprivileged.home / "user.jsonl", "host") if r["alive"]}
        assert alive == {"127.0.0.1"}
    else:
        assert open_ports(unprivileged.home / "user.jsonl") == {SSH_PORT, HTTP_PORT}
        assert open_ports(unprivileged.home / "root.jsonl") == {SSH_PORT, HTTP_PORT}
        assert len(lines_with(user.stderr, FALLBACK)) == 1, user.stderr
    methods = {r["method"] for r in records(unprivileged.home / "user.jsonl", "host")}
    assert "icmp" not in methods
    if profile != "web-scan":  # web-scan discovers with TCP probes alone
        [warning] = lines_with(user.stderr, ICMP_SKIPPED)
        assert "WARNING" in warning
        assert f"groups {unprivileged.gid} outside net.ipv4.ping_group_range '{FORBIDDEN}'" in warning
        assert 'sysctl -w net.ipv4.ping_group_range="0 2147483647"' in warning
        assert "CAP_NET_RAW" in warning and "run as root" in warning
        [icmp_node] = [r for r in records(unprivileged.home / "user.jsonl", "node")
                       if r["node"] == "discover.icmp"]
        assert icmp_node["status"] == "completed"


@pytest.mark.parametrize("profile", ["discovery-only", "port-scan"])
def test_icmp_uses_the_datagram_socket_where_ping_group_range_allows(
        profile: str, namespace: NetNs, unprivileged: UnprivilegedUser):
    set_ping_group_range(namespace, ALLOWED)
    done = run_as_unprivileged(scan_argv(profile, "out.jsonl"), unprivileged, netns=namespace)
    assert done.returncode == 0, done.stderr
    assert ICMP_SKIPPED not in done.stderr and "ping_group_range" not in done.stderr
    # one host record, its methods merged: ICMP answered, through the datagram socket
    hosts = records(unprivileged.home / "out.jsonl", "host")
    assert [(r["address"], r["alive"], "icmp" in r["methods"]) for r in hosts] == [("127.0.0.1", True, True)]
    assert hosts[0]["ttl"] == 64  # from IP_RECVTTL ancillary data
    if profile == "port-scan":
        assert open_ports(unprivileged.home / "out.jsonl") == {SSH_PORT, HTTP_PORT}
        assert len(lines_with(done.stderr, FALLBACK)) == 1, done.stderr


def test_demo_exits_0_unprivileged(unprivileged: UnprivilegedUser):
    done = run_as_unprivileged(["demo"], unprivileged)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines_with(done.stderr, FALLBACK)) == 1, done.stderr
    assert "Traceback" not in done.stderr and " ERROR " not in done.stderr, done.stderr
    assert "Redis    7.0.15" in done.stdout and "failed" not in done.stdout


def host_allows_ping_sockets(gid: int) -> bool:
    with open("/proc/sys/net/ipv4/ping_group_range") as f:
        low, high = map(int, f.read().split())
    return low <= gid <= high


def test_service_scan_of_a_host_list_in_the_hosts_namespace(tcp_server, unprivileged: UnprivilegedUser):
    """The shape of a new user's first scan, against a listener of the test's own process:
    a host list file in the working directory, outputs written there."""
    server = tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    (unprivileged.home / "hosts.txt").write_text("127.0.0.1\n", encoding="utf-8")
    done = run_as_unprivileged(["scan", "-t", "@hosts.txt", "--profile", "service-scan",
                                "--ports", str(server.port), "-o", "out.jsonl"], unprivileged)
    assert done.returncode == 0, done.stderr
    assert open_ports(unprivileged.home / "out.jsonl") == {server.port}
    assert "OpenSSH" in done.stdout
    # the host's own sysctl, read and never changed, decides which of the two it is
    skipped = lines_with(done.stderr, ICMP_SKIPPED)
    assert len(skipped) == (0 if host_allows_ping_sockets(unprivileged.gid) else 1), done.stderr
