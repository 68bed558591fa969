"""A scan killed, interrupted or dying mid-way, with ``-o`` files that held an earlier
scan's results: SIGKILL leaves them byte for byte, the records streamed so far in the
``.partial`` file beside them; SIGINT renames the partial results into place, the scan
line marked cancelled; a run that dies of an error, or a format that fails, replaces
nothing and names the file holding what was written. A real scan of a server on
127.0.0.1, in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.plugins._formats_scan import CONNECT_NODES

OLD_JSONL = b'{"kind": "scan", "scan_id": "earlier", "status": "completed"}\n'
OLD_HTML = b"<!doctype html><title>the earlier report</title>\n"

# connect_scanner (no privilege needed), then a node that waits for the signal
SLOW = """
name: slow-scan
vars: {targets: "", ports: ""}
nodes:""" + CONNECT_NODES + """\
  - {instance_id: wait, module_type: sleep, depends_on: [port_scan], config: {duration: 60s, steps: 60}}
  - {instance_id: report, module_type: json_reporter, depends_on: [wait], config: {output: node.jsonl}}
"""


def connect_dag(folder: Path) -> str:
    """The scan of SLOW without its waiting node and json_reporter: it ends at once."""
    (folder / "connect.yaml").write_text(SLOW.split("  - {instance_id: wait")[0])
    return str(folder / "connect.yaml")


def partials(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f".{name}.*.partial"))


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(check: Callable[[], bool], what: str, proc: subprocess.Popen[str], limit: float = 60) -> None:
    """Poll ``check``; a hang guard, not a timing assertion."""
    deadline = time.monotonic() + limit
    while not check():
        if proc.poll() is not None:
            pytest.fail(f"pentora ended (exit {proc.returncode}) before {what}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


class SlowScan:
    """``pentora scan`` of one open port, then a 60 s node: stopped from outside."""

    def __init__(self, folder: Path, port: int, *extra: str) -> None:
        self.dir, self.port = folder, port
        (folder / "slow.yaml").write_text(SLOW)
        self.jsonl, self.html, self.log = folder / "old.jsonl", folder / "old.html", folder / "log.txt"
        self.node_jsonl = folder / "node.jsonl"  # json_reporter's file, not an -o
        for path in (self.jsonl, self.node_jsonl):
            path.write_bytes(OLD_JSONL)
        self.html.write_bytes(OLD_HTML)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pentora", "scan", "-t", "127.0.0.1", "-p", str(port), "--dag",
             "slow.yaml", "--no-store", "-o", "old.jsonl", "-o", "old.html", "--log-level", "INFO",
             "--log-file", str(self.log), *extra],
            cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def partial(self) -> Path:
        found = partials(self.dir, "old.jsonl")
        assert len(found) == 1, found
        return found[0]

    def wait_for_the_port(self) -> Path:
        """The partial JSONL, once it holds the open port (and the wait node runs)."""

        def streamed() -> bool:
            found = partials(self.dir, "old.jsonl")
            return bool(found) and '"kind": "port"' in found[0].read_text()

        wait_for(streamed, "the port line in the partial JSONL", self.proc)
        return self.partial()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=60)


@pytest.fixture
def slow_scan(tmp_path: Path, tcp_server) -> Iterator[Callable[..., SlowScan]]:
    started: list[SlowScan] = []

    def start(*extra: str) -> SlowScan:
        started.append(SlowScan(tmp_path, tcp_server().port, *extra))
        return started[-1]

    yield start
    for scan in started:
        scan.stop()


def test_sigkill_leaves_the_old_files_and_the_streamed_records(slow_scan, run_cli):
    scan = slow_scan()
    partial = scan.wait_for_the_port()
    # the log says where the lines go while the scan runs, for `tail -f`
    assert f"old.jsonl: written as {partial} until the run ends (follow it with tail -f)" \
        in scan.log.read_text()
    scan.proc.send_signal(signal.SIGKILL)
    assert scan.proc.wait(timeout=60) == -signal.SIGKILL
    assert scan.jsonl.read_bytes() == OLD_JSONL and scan.html.read_bytes() == OLD_HTML
    streamed = lines(partial)  # every line whole: flushed record by record
    assert [r["node"] for r in streamed if r["kind"] == "node"] == ["targets", "discover", "port_scan"]
    assert [(r["host"], r["port"]) for r in streamed if r["kind"] == "port"] == [("127.0.0.1", scan.port)]
    assert all(r["kind"] != "scan" for r in streamed)
    assert scan.node_jsonl.read_bytes() == OLD_JSONL
    [node_partial] = partials(scan.dir, "node.jsonl")
    assert any(r["kind"] == "port" for r in lines(node_partial))
    # nothing found is lost: the partial file renders like any other JSONL
    proc = run_cli("report", str(partial), "-o", str(scan.dir / "recovered.md"))
    assert proc.returncode == 0, proc.stderr
    assert f"| 127.0.0.1 | {scan.port}/tcp |" in (scan.dir / "recovered.md").read_text()


def test_sigint_renames_the_partial_results_into_place(slow_scan):
    scan = slow_scan()
    scan.wait_for_the_port()
    scan.proc.send_signal(signal.SIGINT)
    stdout, stderr = scan.proc.communicate(timeout=60)
    assert scan.proc.returncode == 3, stderr
    assert "results written to old.jsonl" in stderr and "Traceback" not in stderr
    written = lines(scan.jsonl)
    assert written[-1]["kind"] == "scan" and written[-1]["status"] == "cancelled"
    assert written[-1]["error"] == "interrupted by SIGINT"
    assert [(r["host"], r["port"]) for r in written if r["kind"] == "port"] == [("127.0.0.1", scan.port)]
    html = scan.html.read_text()
    assert html != OLD_HTML.decode() and f">{scan.port}<" in html
    assert lines(scan.node_jsonl)[-1]["status"] == "cancelled"  # json_reporter always runs
    assert [p.name for p in scan.dir.iterdir() if p.name.endswith(".partial")] == []


DIES = '''
from pentora import hookimpl


@hookimpl
def pentora_scan_execute(orch, args, variables, options):
    orch.execute(vars=variables, options=options)
    raise RuntimeError("the run died after scanning")
'''


def test_a_run_that_dies_replaces_nothing_and_names_what_it_kept(run_cli, tmp_path, tcp_server):
    server = tcp_server()
    (tmp_path / "dies.py").write_text(DIES)
    (tmp_path / "old.jsonl").write_bytes(OLD_JSONL)
    (tmp_path / "old.html").write_bytes(OLD_HTML)
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", str(server.port), "--dag", connect_dag(tmp_path),
                   "--no-store", "--hooks", "dies.py", "-o", "old.jsonl", "-o", "old.html", cwd=tmp_path)
    assert proc.returncode == 1 and "internal error: RuntimeError: the run died" in proc.stderr
    assert (tmp_path / "old.jsonl").read_bytes() == OLD_JSONL
    assert (tmp_path / "old.html").read_bytes() == OLD_HTML
    for name in ("old.jsonl", "old.html"):
        [kept] = partials(tmp_path, name)
        assert f"the run did not finish; {name} was left as it was, what was written is kept in " \
               f"{kept}" in proc.stderr
    [kept] = partials(tmp_path, "old.jsonl")
    assert any(r["kind"] == "port" and r["port"] == server.port for r in lines(kept))
    assert f">{server.port}<" in partials(tmp_path, "old.html")[0].read_text()  # rendered so far


BROKEN_FORMAT = '''
from pentora import OutputFormat, hookimpl


class Broken:
    def __init__(self, stream):
        self.stream = stream

    def record(self, kind, data):
        self.stream.write(kind + "\\n")

    def close(self, result):
        raise ValueError("cannot render this")


@hookimpl
def pentora_register_output_formats(registry):
    registry.register_output_format(OutputFormat("broken", "fails at the end", open=Broken,
                                                 extensions=(".broken",), takes_stream=True))
'''


def test_a_format_that_fails_keeps_its_partial_file_and_the_others_are_written(run_cli, tmp_path,
                                                                                tcp_server):
    server = tcp_server()
    (tmp_path / "broken.py").write_text(BROKEN_FORMAT)
    old = tmp_path / "old.broken"
    old.write_bytes(b"earlier\n")
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", str(server.port), "--dag", connect_dag(tmp_path),
                   "--no-store", "--hooks", "broken.py", "-o", "old.broken", "-o", "new.jsonl", cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    [kept] = partials(tmp_path, "old.broken")
    assert ("the broken output to 'old.broken' failed: ValueError: cannot render this; old.broken was "
            f"left as it was, what was written is kept in {kept}") in proc.stderr
    assert old.read_bytes() == b"earlier\n" and "port\n" in kept.read_text()
    assert lines(tmp_path / "new.jsonl")[-1]["status"] == "completed"
    assert f"{server.port}/tcp" in proc.stdout  # the summary first, then the error
