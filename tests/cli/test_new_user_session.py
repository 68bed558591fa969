"""A new user's first session, replayed end to end, the way someone coming from nmap types it.

pentora is installed (not editable) into a fresh virtual environment; two services listen
on 127.0.0.1 at ports of the top 100; then, from a folder holding ``hosts.txt``:

- ``pentora scan -iL hosts.txt -Pn -sV --top-ports 100 -oA out``: nmap's three files;
- the same scan with ``-o - --format jsonl`` piped into ``python -m json.tool --json-lines``;
- the same scan as an unprivileged user: exit 0, the same ports.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pentora.testing import TcpServer
from tests.cli.test_thirdparty_install import ROOT, assert_no_traceback, clean_copy, clean_env, pip
from tests.plugins._formats_scan import validate_nmap_xml
from tests.unprivileged import UnprivilegedUser, run_as_unprivileged

pytestmark = pytest.mark.slow

# Ports of pentora's top 100 (plugins/data/top_ports.txt) that a test machine rarely uses;
# the first two free ones on 127.0.0.1 are taken.
CANDIDATES = (2222, 8081, 8888, 9090, 8088, 8008, 3000, 5000, 9001, 10000)
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
HTTP_ANSWER = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n"
               b"Content-Length: 13\r\nConnection: close\r\n\r\n<html></html>")
SCAN = ["scan", "-iL", "hosts.txt", "-Pn", "-sV", "--top-ports", "100"]


@dataclass
class Session:
    pentora: Path  # the fresh environment's console script
    work: Path  # the user's folder: hosts.txt, the outputs
    ssh: int
    http: int

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.pentora), *args], capture_output=True, text=True,
                              cwd=self.work, env=clean_env(HOME=str(self.work)), timeout=timeout)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pentora installed from a clean copy into a fresh virtual environment."""
    base = tmp_path_factory.mktemp("newuser")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    pip("--python", str(venv / "bin" / "python"), "install", "--quiet",
        str(clean_copy(ROOT, base / "src")))
    yield venv / "bin" / "pentora"
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture
def session(installed: Path, tcp_server: Callable[..., TcpServer], tmp_path: Path) -> Session:
    ports = [p for p in CANDIDATES if _free(p)][:2]
    if len(ports) < 2:
        pytest.skip(f"fewer than two of the top-100 ports {CANDIDATES} are free on 127.0.0.1")
    tcp_server(port=ports[0], banner=SSH_BANNER)
    tcp_server(port=ports[1], respond=lambda data: HTTP_ANSWER if b"\r\n\r\n" in data else b"")
    (tmp_path / "hosts.txt").write_text("# the lab\n127.0.0.1\n", encoding="utf-8")
    return Session(installed, tmp_path, *ports)


def _open_ports_gnmap(text: str) -> dict[int, str]:
    """port -> service, from the grepable lines that list ports."""
    found = {}
    for line in text.splitlines():
        if "\tPorts: " not in line:
            continue
        for field in line.split("\tPorts: ", 1)[1].split("\t", 1)[0].split(", "):
            parts = field.split("/")
            if parts[1] == "open":
                found[int(parts[0])] = parts[4]
    return found


def test_dash_oa_writes_nmaps_three_files_with_the_services(session: Session) -> None:
    done = session.run(*SCAN, "-oA", "out")
    assert done.returncode == 0, done.stderr
    assert_no_traceback(done)
    nmap, xml, gnmap = (session.work / f"out.{ext}" for ext in ("nmap", "xml", "gnmap"))
    validate_nmap_xml(xml)
    assert "pentora scan -iL hosts.txt -Pn -sV --top-ports 100 -oA out" in xml.read_text()
    services = _open_ports_gnmap(gnmap.read_text())
    assert services == {session.ssh: "ssh", session.http: "http"}, gnmap.read_text()
    normal = nmap.read_text()
    assert f"{session.ssh}/tcp" in normal and "OpenSSH" in normal and "nginx" in normal, normal
    # the summary for the person at the terminal names the services too
    assert "OpenSSH" in done.stdout and "nginx" in done.stdout


def test_jsonl_on_stdout_reads_with_json_tool(session: Session) -> None:
    cmd = (f"set -o pipefail; {session.pentora} {' '.join(SCAN)} -o - --format jsonl "
           f"| {sys.executable} -m json.tool --json-lines --compact")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=session.work,
                          env=clean_env(HOME=str(session.work)), timeout=180)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert records[-1]["kind"] == "scan"
    ports = {r["port"] for r in records if r["kind"] == "port"}
    assert ports == {session.ssh, session.http}
    hosts = [r for r in records if r["kind"] == "host"]
    assert [h["address"] for h in hosts] == ["127.0.0.1"]  # one host record, not one per method
    assert f"{session.ssh}/tcp" in done.stderr  # the summary went to stderr


def test_the_same_scan_as_an_unprivileged_user_exits_0(session: Session,
                                                       unprivileged: UnprivilegedUser) -> None:
    (unprivileged.home / "hosts.txt").write_text("127.0.0.1\n", encoding="utf-8")
    done = run_as_unprivileged([*SCAN, "-oA", "out"], unprivileged)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "ERROR" not in done.stderr, done.stderr
    services = _open_ports_gnmap((unprivileged.home / "out.gnmap").read_text())
    assert services == {session.ssh: "ssh", session.http: "http"}
