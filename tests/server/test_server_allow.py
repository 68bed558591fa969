"""Allow-list refusals with the server inside a network namespace that leads nowhere.

The namespace has its loopback and a veth pair whose both ends it holds, with the default
routes (IPv4 and IPv6): a scan that slipped past the allow-list would have a route, send
its packets into the pair (which leads back into the namespace, so nothing leaves) and raise the
namespace's packet counters. Each refused request must answer 403, create no scan, and
leave the counters at zero; a packet sent on purpose at the end proves they count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import NetNs, free_port, network_namespace

from .helpers import stop

PENTORA = str(Path(sys.executable).with_name("pentora"))
# Runs inside the namespace: one request to the server there, its status and JSON body.
CLIENT = """
import json, sys, urllib.error, urllib.request
port, method, path, token, body = sys.argv[1:6]
req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}", method=method,
                             data=body.encode() if body else None,
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        status, text = r.status, r.read()
except urllib.error.HTTPError as e:
    status, text = e.code, e.read()
print(json.dumps({"status": status, "body": json.loads(text) if text else None}))
"""
# What a scan that got through would send: TCP connects, UDP probes, pings.
COUNTED = (("iptables", "-p tcp"), ("iptables", "-p udp"), ("iptables", "-p icmp"),
           ("ip6tables", "-p tcp"), ("ip6tables", "-p udp"),
           ("ip6tables", "-p ipv6-icmp --icmpv6-type echo-request"))


class NsServer:
    def __init__(self, ns: NetNs, tmp: Path) -> None:
        self.ns, self.state, self.port = ns, tmp / "state", free_port()
        (tmp / "server.yaml").write_text(f"store: {tmp / 'scans.db'}\n")
        self.token = subprocess.run(
            [PENTORA, "server", "token", "create", "--scope", "admin", "--name", "allow-test",
             "--state", str(self.state)], capture_output=True, text=True, check=True).stdout.strip()
        self.log = (tmp / "server.log").open("w+")
        self.proc = ns.popen(PENTORA, "server", "--bind", f"127.0.0.1:{self.port}", "--state",
                             str(self.state), "--config", str(tmp / "server.yaml"),
                             stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30  # a hang guard, not a timing assertion
        while self.call("GET", "/health")["status"] != 200:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.output()
            time.sleep(0.2)

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        proc = self.ns.python("-c", CLIENT, str(self.port), method, path, self.token,
                              "" if body is None else json.dumps(body), check=False)
        if proc.returncode:
            return {"status": None, "body": proc.stderr[-300:]}
        return dict(json.loads(proc.stdout))

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        stop(self.proc)


def _route_into_nowhere(ns: NetNs) -> None:
    # A veth pair with both ends in the namespace: its packets come back in, never out.
    ns.run("ip", "link", "add", "nowhere", "type", "veth", "peer", "name", "nowhere-end")
    ns.run("ip", "link", "set", "nowhere-end", "up")
    ns.run("ip", "addr", "add", "198.19.254.1/24", "dev", "nowhere")
    ns.run("ip", "addr", "add", "2001:2:0:fffe::1/64", "dev", "nowhere", "nodad")
    ns.run("ip", "link", "set", "nowhere", "up")
    ns.run("ip", "route", "add", "default", "dev", "nowhere")
    ns.run("ip", "-6", "route", "add", "default", "dev", "nowhere")
    for tool, rule in COUNTED:
        ns.run(tool, "-A", "OUTPUT", "!", "-o", "lo", *rule.split(), "-j", "ACCEPT")


def packets_out(ns: NetNs) -> int:
    """Packets of the counted kinds that left through any interface but lo."""
    total = 0
    for tool in ("iptables", "ip6tables"):
        listing = ns.run(tool, "-L", "OUTPUT", "-v", "-x", "-n").stdout.splitlines()[2:]
        total += sum(int(line.split()[0]) for line in listing if line.strip())
    return total


@pytest.fixture(scope="module")
def boxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NsServer]:
    with network_namespace("pentora-allow") as ns:
        _route_into_nowhere(ns)
        server = NsServer(ns, tmp_path_factory.mktemp("allow"))
        try:
            yield server
        finally:
            server.stop()


SCAN_DAG = {"name": "allow", "vars": {"targets": "127.0.0.1", "ports": "1-3"},
            "nodes": [{"instance_id": "targets", "module_type": "target_parser",
                       "config": {"targets": "${targets}"}},
                      {"instance_id": "p", "module_type": "connect_scanner",
                       "depends_on": ["targets"], "config": {"ports": "${ports}", "input": "targets"}}]}


def _dag(**changes: Any) -> dict[str, Any]:
    dag = json.loads(json.dumps(SCAN_DAG))
    dag["vars"].update(changes.pop("vars", {}))
    dag["nodes"][0]["config"].update(changes.pop("config", {}))
    dag["nodes"] += changes.pop("nodes", [])
    return dag


REFUSED = {
    "benchmark address": ({"targets": "198.18.0.1", "dag": SCAN_DAG}, "198.18.0.1"),
    "decimal 10.0.0.1": ({"targets": "167772161", "dag": SCAN_DAG}, "167772161"),
    "decimal as a JSON number": ({"targets": "127.0.0.1", "dag": SCAN_DAG,
                                  "vars": {"targets": 167772161}}, "167772161"),
    "short form": ({"targets": "10.1", "dag": SCAN_DAG}, "10.1"),
    "hex form": ({"targets": "0xa000001", "dag": SCAN_DAG}, "0xa000001"),
    "v4-mapped IPv6": ({"targets": "::ffff:10.0.0.1", "dag": SCAN_DAG}, "::ffff:10.0.0.1"),
    "IPv6 beyond ::1": ({"targets": "2001:2::1", "dag": SCAN_DAG}, "2001:2::1"),
    "IPv6 block holding ::1": ({"targets": "::/127", "dag": SCAN_DAG}, "::/127"),
    "range leaving 127/8": ({"targets": "127.255.255.255-128.0.0.1", "dag": SCAN_DAG},
                            "127.255.255.255-128.0.0.1"),
    "block holding 127/8": ({"targets": "126.0.0.0/7", "dag": SCAN_DAG}, "126.0.0.0/7"),
    "one bad in a list": ({"targets": ["127.0.0.1", "10.0.0.1"], "dag": SCAN_DAG}, "10.0.0.1"),
    "unlisted host name": ({"targets": "scanme.example", "dag": SCAN_DAG}, "scanme.example"),
    "localhost, not listed": ({"targets": "localhost", "dag": SCAN_DAG}, "localhost"),
    "localhost. (root dot)": ({"targets": "localhost.", "dag": SCAN_DAG}, "localhost."),
    "localhost.example": ({"targets": "localhost.example", "dag": SCAN_DAG}, "localhost.example"),
    "@file of targets": ({"targets": "@/etc/hosts", "dag": SCAN_DAG}, "@/etc/hosts"),
    "profile with outside targets": ({"targets": "198.18.0.1", "profile": "port-scan"},
                                     "198.18.0.1"),
    "inline DAG var used as targets": ({"targets": "127.0.0.1", "dag": _dag(
        vars={"extra": "198.18.0.7"}, nodes=[{"instance_id": "more", "module_type": "target_parser",
                                              "config": {"targets": "${extra}"}}])}, "198.18.0.7"),
    "inline DAG var, a host name used as targets": ({"targets": "127.0.0.1", "dag": _dag(
        vars={"scope": "scanme.example"}, nodes=[{"instance_id": "more",
                                                  "module_type": "target_parser",
                                                  "config": {"targets": "${scope}"}}])},
        "scanme.example"),
    "node config target list": ({"targets": "127.0.0.1", "dag": _dag(
        config={"targets": ["127.0.0.1", "198.18.0.9"]})}, "198.18.0.9"),
    "var spliced into a node's targets": ({"targets": "127.0.0.1", "dag": _dag(
        vars={"last": "5"}, config={"targets": "198.18.0.${last}"})}, "198.18.0.5"),
    "vars override (as --set)": ({"targets": "127.0.0.1", "dag": SCAN_DAG,
                                  "vars": {"targets": "198.18.0.3"}}, "198.18.0.3"),
    "vars override of a profile": ({"targets": "127.0.0.1", "profile": "port-scan",
                                    "vars": {"targets": "10.0.0.1"}}, "10.0.0.1"),
}


@pytest.mark.parametrize("body, offending", list(REFUSED.values()), ids=list(REFUSED))
def test_a_target_outside_the_allow_list_is_403_with_no_scan_and_no_packet(boxed, body, offending):
    answer = boxed.call("POST", "/scans", body)
    assert answer["status"] == 403, (answer, boxed.output()[-2000:])
    assert offending in [p.get("target") for p in answer["body"]["problems"]], answer
    assert any(offending in p["message"] for p in answer["body"]["problems"])
    listed = boxed.call("GET", "/scans")
    assert listed["status"] == 200 and listed["body"] == {"scans": [], "total": 0}
    assert packets_out(boxed.ns) == 0


def test_the_counters_would_see_a_scan_that_got_through(boxed):
    """The control: a packet a scan would send does raise the counters."""
    before = packets_out(boxed.ns)
    boxed.ns.python("-c", "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                          "s.sendto(b'x', ('198.18.0.1', 9))")
    assert packets_out(boxed.ns) == before + 1


def test_an_allowed_scan_runs_in_the_same_box(boxed):
    """The refusals are the allow-list's, not a server that refuses everything."""
    answer = boxed.call("POST", "/scans", {"targets": "127.0.0.1", "dag": SCAN_DAG})
    assert answer["status"] == 201, answer
    assert answer["body"]["status"] in ("queued", "running")
