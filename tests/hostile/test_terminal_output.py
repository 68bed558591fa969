"""Every command that prints, fed strings that would drive a terminal: none reaches it raw.

A hostile HTTP server (Server header, title, body), an SSH-like banner service, a DAG file
whose names carry the same strings, a hooks file whose module type and description do,
and a store holding scans of all of them. Every command that prints is run on them, in a
subprocess as users run it, with ``--log-level debug`` so log lines are part of what is
checked: stdout and stderr must hold no ESC, no C1 control, no bidi override or isolate and
no zero-width character. Each check also asserts that the hostile strings did reach the
output, in their escaped form, so that a command printing nothing cannot pass.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pentora.testing import TcpServer

# Erase the screen, write the clipboard (OSC 52), set the window title (OSC 0), the 8-bit
# CSI, a right-to-left override, zero-width space, joiner and non-joiner, an isolate, a BOM.
HOSTILE = ("\x1b[2J\x1b]52;c;cHduZWQ=\x07\x1b]0;pwned\x07\x9b31m\u202eevil\u200b\u200d\u200c"
           "\u2066x\ufeff")
# What a terminal would act on, or what hides or reorders text; lone surrogates stand for
# bytes that were not UTF-8 at all (a raw 0x9b).
FORBIDDEN = re.compile("[\x1b\x80-\x9f\u202a-\u202e\u2066-\u2069\u200b-\u200f\u2060\ufeff"
                       "\udc80-\udcff]")
ESCAPED = "\\x1b[2J"  # how clean_text shows the start of HOSTILE
JSON_ESCAPED = "\\u001b[2J"  # how JSON does
Y = HOSTILE.encode("unicode_escape").decode("ascii").replace("\\x07", "\\a")  # for YAML "..."


def pentora(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    import os

    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pentora", *args], capture_output=True, env=full,
                          timeout=timeout, cwd=cwd)


def text(proc: subprocess.CompletedProcess[bytes], what: str) -> tuple[str, str]:
    """stdout and stderr, after checking that neither holds a forbidden character."""
    out = []
    for name, raw in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        decoded = raw.decode("utf-8", "surrogateescape")
        bad = FORBIDDEN.search(decoded)
        assert bad is None, (f"{what}: {name} holds U+{ord(bad.group()):04X} at {bad.start()}: "
                             f"{decoded[max(0, bad.start() - 80):bad.start() + 40]!r}")
        if name == "stderr":  # (stdout may be a JSON report holding a failed node's trace)
            assert "Traceback" not in decoded, (what, decoded)
        out.append(decoded)
    return out[0], out[1]


# -- the hostile services ---------------------------------------------------------------------

class HttpVariant:
    """Which Server header the HTTP server sends: changed between two scans, so that
    ``scans diff`` has a changed HTTP answer to print."""

    server = "nginx/1.22.1 " + HOSTILE


def http_handler(variant: type[HttpVariant]) -> Any:
    def handle(conn: socket.socket) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[buf.index(b"\r\n\r\n") + 4:]
            hostile = HOSTILE.encode()
            body = b"<html><head><title>T" + hostile + b"</title></head><body>" + hostile + b"</body></html>"
            conn.sendall(b"HTTP/1.1 200 OK\r\nServer: " + variant.server.encode() + b"\r\n"
                         b"X-Powered-By: PHP/8.1 " + hostile + b"\r\nContent-Type: text/html\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return handle


def ssh_handler(conn: socket.socket) -> None:
    """An SSH identification line with HOSTILE in it, then HOSTILE where KEXINIT should be."""
    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 " + HOSTILE.encode() + b"\r\n")
    if conn.recv(4096):
        conn.sendall(HOSTILE.encode() * 4 + b"\r\n")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    started = [TcpServer(handler=http_handler(HttpVariant)).start(), TcpServer(handler=ssh_handler).start()]
    yield {"http": started[0].port, "ssh": started[1].port}
    for s in started:
        s.stop()


# -- the hostile files --------------------------------------------------------------------------

DAG = f"""\
name: "dag{Y}"
description: "about{Y}"
vars:
  targets: ""
engine:
  fail_fast: false
nodes:
  - instance_id: "seed{Y}"
    module_type: set
    description: "seeds{Y}"
    config:
      values:
        open_ports:
          - {{host: "127.0.0.1{Y}", port: 1, protocol: tcp, state: "open{Y}"}}
        service_fingerprints:
          - {{host: "127.0.0.1{Y}", port: 1, protocol: tcp, service: "http{Y}", product: "nginx{Y}",
              version: "1{Y}"}}
        vulnerabilities:
          - {{host: "127.0.0.1{Y}", port: 1, id: "X-1{Y}", title: "T{Y}", severity: high}}
  - instance_id: "skipped{Y}"
    module_type: sleep
    depends_on: ["seed{Y}"]
    condition: "${{targets}} == 'x{Y}'"
    config: {{duration: 5s}}
  - instance_id: "late{Y}"
    module_type: sleep
    depends_on: ["seed{Y}"]
    timeout: 50ms
    config: {{duration: 5s}}
  - instance_id: "evil{Y}"
    module_type: "evil{Y}"
    depends_on: ["seed{Y}"]
"""

# Names no DAG may have, for the error messages that quote them.
BAD_DAG = f"""\
name: "bad{Y}"
nodes:
  - instance_id: "a{Y}"
    module_type: "nosuch{Y}"
    depends_on: ["ghost{Y}"]
    config: {{"k{Y}": 1}}
  - instance_id: "b{Y}"
    module_type: sleep
    config: {{duration: "5{Y}s"}}
"""

HOOKS = f"""\
import voluptuous as vol

import pentora

H = {HOSTILE!r}


class Evil(pentora.Module):
    __doc__ = f"Evil module {{H}} described"
    module_type = f"evil{{H}}"
    config_schema = {{vol.Optional(f"k{{H}}", default=f"v{{H}}", description=f"d{{H}}"): str}}

    def run(self, ctx, config):
        raise pentora.ModuleError(f"failed with {{H}}")


@pentora.hookimpl
def pentora_register_modules(registry):
    registry.register(Evil)
"""


class World:
    """The files, the store and the scans every test here reads."""

    def __init__(self, root: Path, ports: dict[str, int]) -> None:
        self.root, self.ports = root, ports
        self.dag, self.bad_dag, self.raw_dag = root / "hostile.yaml", root / "bad.yaml", root / "raw.yaml"
        self.hooks, self.store = root / "evil_hooks.py", root / "scans.db"
        self.dag.write_text(DAG, encoding="utf-8")
        self.bad_dag.write_text(BAD_DAG, encoding="utf-8")
        # YAML refuses a raw ESC: the parse error must not print it raw either.
        self.raw_dag.write_bytes(b'nodes:\n  - instance_id: "a' + HOSTILE.encode()
                                 + b'"\n    module_type: noop\n')
        self.hooks.write_text(HOOKS, encoding="utf-8")
        self.runs: dict[str, subprocess.CompletedProcess[bytes]] = {}
        self.ids: dict[str, str] = {}

    @property
    def port_list(self) -> str:
        return f"{self.ports['http']},{self.ports['ssh']}"

    def run(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
        return pentora(*args, "--log-level", "debug", env={"PENTORA_STORE": str(self.store)},
                       cwd=self.root, **kw)


@pytest.fixture(scope="module")
def world(servers: dict[str, int], tmp_path_factory: pytest.TempPathFactory) -> World:
    w = World(tmp_path_factory.mktemp("terminal"), servers)
    for name, server in (("web1", "nginx/1.22.1 " + HOSTILE), ("web2", "nginx/1.22.2 " + HOSTILE[::-1])):
        HttpVariant.server = server
        w.runs[name] = w.run("scan", "--profile", "web-scan", "--targets", "127.0.0.1", "-p", w.port_list,
                             "-o", str(w.root / f"{name}.jsonl"))
        assert w.runs[name].returncode == 0, w.runs[name].stderr.decode(errors="replace")
    w.runs["dag"] = w.run("scan", "--dag", str(w.dag), "--targets", "127.0.0.1", "--hooks", str(w.hooks),
                          "--progress", "-o", str(w.root / "dag.jsonl"))
    assert w.runs["dag"].returncode == 3, w.runs["dag"].stderr.decode(errors="replace")  # nodes failed
    for name in ("web1", "web2", "dag"):
        w.ids[name] = json.loads((w.root / f"{name}.jsonl").read_text().splitlines()[-1])["scan_id"]
    return w


# -- scans ----------------------------------------------------------------------------------------

def test_scan_summary_of_the_web_profile_and_of_a_hostile_dag_is_clean(world: World) -> None:
    for name in ("web1", "web2"):
        out, err = text(world.runs[name], f"scan web-scan ({name})")
        assert f"{world.ports['http']}/tcp" in out and "DEBUG" in err
    # The hostile server's answers did reach the scan (and its store): the terminal is clean
    # because they were cleaned, not because they were lost.
    http = [json.loads(line) for line in (world.root / "web1.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "http" and r["server"] == "nginx/1.22.1 " + HOSTILE for r in http)
    out, err = text(world.runs["dag"], "scan --dag hostile.yaml")
    for shown in ("nginx" + ESCAPED, "X-1" + ESCAPED, "T" + ESCAPED, "node late" + ESCAPED):
        assert shown in out, (shown, out)
    assert "running: " in err and "seed" + ESCAPED in err  # --progress names nodes, cleaned
    assert "\\u202e" in out and "\\x9b31m" in out and "\\u200b" in out


def test_every_built_in_profile_prints_a_clean_summary_and_log(world: World) -> None:
    proc = world.run("profiles")
    out, _ = text(proc, "profiles")
    profiles = out.split()
    assert "web-scan" in profiles and "standard" in profiles, profiles
    read_hostile = []
    for profile in profiles:
        jsonl = world.root / f"profile-{profile}.jsonl"
        ports = () if profile == "discovery-only" else ("-p", world.port_list)  # it has no ports var
        proc = world.run("scan", "--profile", profile, "--targets", "127.0.0.1", *ports,
                         "--no-store", "-o", str(jsonl), timeout=180)
        out, err = text(proc, f"scan --profile {profile}")
        assert proc.returncode in (0, 3), (profile, err)
        assert "scan " in out and "DEBUG" in err, (profile, out, err)
        if JSON_ESCAPED in jsonl.read_text():
            read_hostile.append(profile)
    # The profiles that grab banners did read the hostile strings.
    assert {"service-scan", "standard", "vuln-scan", "web-scan"} <= set(read_hostile), read_hostile


def test_scan_machine_output_to_stdout_keeps_its_own_escaping(world: World) -> None:
    proc = world.run("scan", "--profile", "web-scan", "--targets", "127.0.0.1", "-p", world.port_list,
                     "--no-store", "-q", "-o", "-", "--format", "jsonl")
    out, _ = text(proc, "scan -o - --format jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert any(r["kind"] == "http" and r["server"] == HttpVariant.server for r in records)
    assert JSON_ESCAPED in out


def test_json_logs_are_clean(world: World) -> None:
    proc = pentora("dag", "run", str(world.dag), "--hooks", str(world.hooks), "--log-level", "debug",
                   "--log-format", "json")
    _, err = text(proc, "dag run --log-format json")
    lines = [json.loads(line) for line in err.splitlines()]
    assert any(HOSTILE in str(line.get("node")) for line in lines)  # JSON's own escapes, decoded


# -- the store ------------------------------------------------------------------------------------

def test_scans_list_show_diff(world: World) -> None:
    out, _ = text(world.run("scans", "list"), "scans list")
    assert "dag" + ESCAPED in out and world.ids["dag"] in out
    out, _ = text(world.run("scans", "show", world.ids["dag"]), "scans show")
    assert "seed" + ESCAPED in out and "late" + ESCAPED in out and "dag" + ESCAPED in out
    assert "evil" + ESCAPED in out and "failed with " + ESCAPED in out
    out, _ = text(world.run("scans", "show", world.ids["web1"]), "scans show web")
    assert f"{world.ports['ssh']}/tcp" in out
    out, _ = text(world.run("scans", "diff", world.ids["web1"], world.ids["web2"]), "scans diff")
    assert "nginx/1.22.1 " + ESCAPED in out and "~ " in out, out
    for args in (("list",), ("show", world.ids["dag"]), ("diff", world.ids["web1"], world.ids["web2"])):
        out, _ = text(world.run("scans", *args, "--format", "json"), f"scans {args[0]} --format json")
        assert JSON_ESCAPED in out or "\\u202e" in out, (args, out[:300])
        json.loads(out)


# -- DAG files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, shown", [
    (("validate",), None),
    (("validate", "--format", "json"), None),
    (("plan",), "seed" + ESCAPED),
    (("plan", "--format", "json"), "seed" + JSON_ESCAPED),
    (("graph",), "seed\\" + ESCAPED),  # DOT doubles the backslash of the escape
    (("graph", "--format", "mermaid"), "seed" + ESCAPED),
    (("run",), "late" + ESCAPED),
    (("run", "--format", "json"), "late" + JSON_ESCAPED),
])
def test_dag_commands_on_a_hostile_dag(world: World, args: tuple[str, ...], shown: str | None) -> None:
    proc = world.run("dag", args[0], str(world.dag), *args[1:], "--hooks", str(world.hooks))
    out, err = text(proc, f"dag {' '.join(args)}")
    assert proc.returncode == (3 if args[0] == "run" else 0), err
    if shown is not None:
        assert shown in out, out
    if args == ("run",):
        assert "evil" + ESCAPED in out and "failed with " + ESCAPED in out
        assert "[seed" + ESCAPED in err and "DEBUG" in err  # node ids in log lines


@pytest.mark.parametrize("args, shown", [
    (("dag", "validate", "{bad}"), "nosuch" + ESCAPED),
    (("dag", "validate", "{bad}", "--format", "json"), "nosuch" + JSON_ESCAPED),
    (("dag", "plan", "{bad}"), "ghost" + ESCAPED),
    (("dag", "run", "{bad}"), "5" + ESCAPED),
    (("dag", "validate", "{raw}"), "#x001b"),
    (("dag", "validate", f"nosuch{HOSTILE}"), "nosuch" + ESCAPED),
    (("dag", "plan", "{dag}", "--format", f"x{HOSTILE}"), "x" + ESCAPED),
    (("scan", "--profile", f"nosuch{HOSTILE}", "--targets", "127.0.0.1"), "nosuch" + ESCAPED),
    (("scan", "--targets", f"nosuch{HOSTILE}", "--profile", "port-scan"), "nosuch" + ESCAPED),
    (("modules", "show", f"nosuch{HOSTILE}"), "nosuch" + ESCAPED),
    (("scans", "show", f"nosuch{HOSTILE}"), "nosuch" + ESCAPED),
    (("report", f"nosuch{HOSTILE}.jsonl", "--format", "md"), "nosuch" + ESCAPED),
    (("plugins", "list", "--hooks", "{broken}"), "broken " + ESCAPED),
])
def test_error_messages_quoting_hostile_input(world: World, args: tuple[str, ...], shown: str) -> None:
    broken = world.root / "broken_hooks.py"
    broken.write_text(f"raise RuntimeError({'broken ' + HOSTILE!r})\n", encoding="utf-8")
    paths = {"bad": world.bad_dag, "raw": world.raw_dag, "dag": world.dag, "broken": broken}
    proc = world.run(*(a.format(**paths) if "{" in a else a for a in args))
    out, err = text(proc, " ".join(args))
    assert proc.returncode in (1, 2), (args, err)
    assert shown in out + err, (args, out, err)


# -- modules and plugins ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("modules", "list"), ("modules", "list", "--format", "json"),
    ("modules", "show", f"evil{HOSTILE}"), ("modules", "show", f"evil{HOSTILE}", "--format", "markdown"),
    ("modules", "show", f"evil{HOSTILE}", "--format", "json"),
    ("plugins", "list"), ("plugins", "list", "--format", "json"),
])
def test_modules_and_plugins_of_a_hostile_plugin(world: World, args: tuple[str, ...]) -> None:
    out, _ = text(world.run(*args, "--hooks", str(world.hooks)), " ".join(args))
    if args[0] == "modules":
        assert ("evil" + ESCAPED in out) or ("evil" + JSON_ESCAPED in out), out[:500]
    else:
        assert "register_modules" in out


# -- reports ----------------------------------------------------------------------------------------

TEXT_FORMATS = ("md", "nmap", "gnmap", "summary")  # for reading: controls shown as \\xNN
MACHINE_FORMATS = ("jsonl", "json", "csv", "csv-findings", "xml", "html")  # each escapes by its own rules


@pytest.fixture(scope="module")
def hostile_jsonl(world: World) -> Path:
    """The web scan's JSONL, with the hostile DAG's node lines, a service whose product
    and version are hostile (no real fingerprint would take them) and an unverified finding
    quoting them (shown apart, and in csv-findings), before its scan line."""
    lines = (world.root / "web1.jsonl").read_text().splitlines()
    dag_nodes = [line for line in (world.root / "dag.jsonl").read_text().splitlines()
                 if json.loads(line)["kind"] == "node"]
    service = next(json.loads(line) for line in lines if json.loads(line)["kind"] == "service")
    service.update(product="nginx" + HOSTILE, version="1" + HOSTILE)
    finding = {"kind": "vulnerability", "host": service["host"], "port": service["port"],
               "id": "CVE-0000-0001", "severity": "high", "title": "nginx" + HOSTILE,
               "evidence": "nginx" + HOSTILE, "quality": 30, "method": "banner-backport-prone"}
    path = world.root / "hostile-report.jsonl"
    path.write_text("\n".join([*lines[:-1], *dag_nodes, json.dumps(service), json.dumps(finding),
                               lines[-1]]) + "\n")
    return path


@pytest.mark.parametrize("fmt", TEXT_FORMATS + MACHINE_FORMATS)
def test_report_to_stdout_in_each_format(world: World, hostile_jsonl: Path, fmt: str) -> None:
    proc = world.run("report", str(hostile_jsonl), "--format", fmt)
    out, _ = text(proc, f"report --format {fmt}")
    assert proc.returncode == 0
    if fmt in ("json", "jsonl"):
        assert JSON_ESCAPED in out
        return
    # md backslashes backslashes and brackets, XML and HTML keep them, CSV keeps them
    assert ("nginx" + ESCAPED.replace("\\", "\\\\").replace("[", "\\[") in out if fmt == "md"
            else "nginx" + ESCAPED in out), out[:2000]


def test_every_registered_report_format_is_checked() -> None:
    from pentora import Orchestrator

    formats = set(Orchestrator().registry.output_formats)
    assert formats == set(TEXT_FORMATS + MACHINE_FORMATS)
