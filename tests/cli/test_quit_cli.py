"""The end of a ``pentora`` process: it skips the interpreter's teardown, and loses nothing.

Each case runs the real console script path (``python -m pentora``) on a scan of a
listener on 127.0.0.1, with a hooks file (``--hooks FILE``) doing what a plugin might at
the end of a scan: leave a file open with its data still in Python's buffer, start a
thread that writes later, register an exit handler.
"""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def scan(run_cli, tmp_path: Path, port: int, hooks: str, *extra: str):
    hooks_file = tmp_path / "hooks.py"
    hooks_file.write_text("import pentora\n" + textwrap.dedent(hooks))
    return run_cli("scan", "-t", "127.0.0.1", "-p", str(port), "-sT", "-Pn", "--no-store",
                   "--hooks", str(hooks_file), *extra, cwd=tmp_path)


def test_a_file_a_plugin_left_open_is_flushed(run_cli, tmp_path: Path, port: int) -> None:
    proc = scan(run_cli, tmp_path, port, """
        KEEP = []

        @pentora.hookimpl
        def pentora_scan_complete(scan, result):
            f = open("left-open.txt", "w")  # never closed: the data sits in its buffer
            f.write("written at the end\\n" * 100)
            KEEP.append(f)
    """)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "left-open.txt").read_text() == "written at the end\n" * 100


def test_the_exit_waits_for_a_thread_that_is_not_a_daemon(run_cli, tmp_path: Path, port: int) -> None:
    proc = scan(run_cli, tmp_path, port, """
        import threading, time

        def late():
            time.sleep(0.5)
            with open("late.txt", "w") as f:
                f.write("done")

        @pentora.hookimpl
        def pentora_scan_complete(scan, result):
            threading.Thread(target=late).start()
    """)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "late.txt").read_text() == "done"


def test_exit_handlers_run_and_the_exit_code_is_kept(run_cli, tmp_path: Path, port: int) -> None:
    proc = scan(run_cli, tmp_path, port, """
        import atexit, sys

        @pentora.hookimpl
        def pentora_scan_complete(scan, result):
            # stdout is a pipe, block-buffered: only a flush after the handlers shows it
            atexit.register(lambda: sys.stdout.write("printed by an exit handler"))

        @pentora.hookimpl
        def pentora_cli_scan_exit(args, result):
            return 3
    """)
    assert proc.stdout.endswith("printed by an exit handler")
    assert proc.returncode == 3, proc.stderr


def test_records_on_a_pipe_are_all_there(run_cli, tmp_path: Path, port: int) -> None:
    proc = run_cli("scan", "-t", "127.0.0.1", "-p", str(port), "-sT", "-Pn", "--no-store",
                   "-o", "-", "--format", "jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert proc.stdout.endswith("\n") and f'"port": {port}' in proc.stdout
    assert '"kind": "scan"' in lines[-1]


def test_the_console_script_is_the_quick_exit() -> None:
    from importlib.metadata import entry_points

    import pentora

    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "pentora"]
    assert script.value == "pentora.cli:run"
    assert "run()" in (Path(pentora.__file__).parent / "__main__.py").read_text()
