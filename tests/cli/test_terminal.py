"""What a person sees on a terminal: the CLI run in a pseudo-terminal, its output read
back through a terminal emulator (pyte) where what stays on the screen matters.

--progress on a terminal, log lines printed above the bar, and the colour rules
(NO_COLOR, --no-color) for the progress bar, the logs and the summary table.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
import pytest

ROOT = Path(__file__).resolve().parents[2]
HELLO = str(ROOT / "dags" / "examples" / "hello.yaml")
COLS, ROWS = 160, 48
SGR = re.compile(r"\x1b\[[0-9;]*m")  # a colour (or bold) escape
WARNING_HOOKS = '''
import pentora
from loguru import logger

said = []


@pentora.hookimpl
def pentora_node_progress(node, done, total):
    # Once, in the middle of the port scan: while the progress bar is live.
    if node.instance_id == "port_scan" and total and done >= total // 3 and not said:
        said.append(done)
        logger.warning("disk almost full: keep-me-whole")
'''


def run_in_pty(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    """``pentora ARGS`` with stdin, stdout and stderr on one pseudo-terminal of COLS × ROWS;
    its exit status and everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS")}
    full_env.update({"TERM": "xterm-256color", **(env or {})})
    proc = subprocess.Popen([sys.executable, "-m", "pentora", *args], stdin=slave, stdout=slave,
                            stderr=slave, env=full_env, close_fds=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout  # a hang guard, not a measurement
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            pytest.fail(f"pentora {' '.join(args)} did not end within {timeout}s")
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, out.decode("utf-8", errors="replace")


def screen_of(text: str) -> list[str]:
    """The lines the terminal shows once ``text`` was written to it."""
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.Stream(screen)
    stream.feed(text.replace("\n", "\r\n").replace("\r\r\n", "\r\n"))
    return [line.rstrip() for line in screen.display]


def frames(text: str) -> list[str]:
    """Every state of the redrawn progress line, colour escapes removed."""
    return [SGR.sub("", f).replace("\x1b[2K", "") for f in re.split(r"\r", text)]


def test_progress_on_a_terminal_counts_items_with_rate_and_eta_and_keeps_a_warning(
        tcp_server, tmp_path: Path) -> None:
    server = tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1\r\n")
    hooks = tmp_path / "warn.py"
    hooks.write_text(WARNING_HOOKS)
    # About 2 s of scanning at 1500 ports a second: long enough for several redraws.
    ports = f"1-2999,{server.port}" if server.port > 2999 else "1-3000"
    code, out = run_in_pty("scan", "--profile", "port-scan", "--targets", "127.0.0.1", "--ports", ports,
                           "--set", "rate=1500", "--progress", "--no-store", "--hooks", str(hooks))
    assert code == 0, out
    running = [f for f in frames(out) if "running: port_scan " in f]
    assert running, out[-2000:]
    m = None
    for frame in running:  # a frame in the middle of the port scan: items, rate, elapsed, ETA
        m = re.search(r"(\d+)% .* (\d+)/(\d+) items\s+([\d,]+)/s\s+\d+:\d\d\s+eta (\d+):(\d\d)\s+"
                      r"nodes \d+/\d+ running: port_scan (\d+)/3000", frame)
        if m and 0 < int(m.group(1)) < 100 and int(m.group(7)) > 0:
            break
    assert m, running[-3:]
    assert int(m.group(3)) >= 3000, "the planned items include the port scan's 3000 probes"
    assert int(m.group(4).replace(",", "")) > 0
    shown = screen_of(out)
    warned = [i for i, line in enumerate(shown) if "keep-me-whole" in line]
    assert len(warned) == 1, shown
    line = shown[warned[0]]
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} WARNING .*disk almost full: keep-me-whole", line), line
    # every item and node of the profile done, however many it has
    bar = [i for i, line in enumerate(shown) if re.search(r"100% .* (\d+)/\1 items .* nodes (\d+)/\2", line)]
    assert bar and bar[0] > warned[0], shown  # the bar went on below the warning
    assert any(line.startswith("scan ") and " completed in " in line for line in shown), shown


def colour_run(*args: str, env: dict[str, str] | None = None, before: tuple[str, ...] = ()) -> str:
    code, out = run_in_pty(*before, "dag", "run", HELLO, "--log-level", "info", *args, env=env)
    assert code == 0, out
    assert "Node execution completed" in out  # the logs were there to colour
    return out


def test_a_terminal_gets_colour_in_logs_and_progress() -> None:
    out = colour_run("--progress")
    assert SGR.search(out)
    out = colour_run("--progress", env={"NO_COLOR": ""})  # an empty NO_COLOR does not count
    assert SGR.search(out)


@pytest.mark.parametrize("how", [{"env": {"NO_COLOR": "1"}}, {"flag": ("--no-color",)},
                                 {"before": ("--no-color",)}],
                         ids=["NO_COLOR", "--no-color", "--no-color before the command"])
def test_no_color_means_no_colour_escapes_on_a_terminal(how: dict) -> None:
    kw = {"env": how.get("env"), "before": how.get("before", ())}
    out = colour_run(*how.get("flag", ()), **kw)
    assert "\x1b" not in out, repr(out[:500])  # no progress: nothing to redraw, no escape at all
    out = colour_run("--progress", *how.get("flag", ()), **kw)
    assert not SGR.search(out), repr(SGR.search(out))
    assert "\r\x1b[2K" in out and re.search(r"100% .* nodes 5/5", out)  # still redrawn in place


def scan_summary(port: int, *args: str, env: dict[str, str] | None = None) -> str:
    code, out = run_in_pty("scan", "--profile", "port-scan", "--targets", "127.0.0.1", "--ports",
                           str(port), "--no-store", *args, env=env)
    assert code == 0, out
    return out


def test_summary_on_a_terminal_is_coloured_unless_told_not_to(tcp_server) -> None:
    port = tcp_server(banner=b"hello\r\n").port
    out = scan_summary(port)
    assert "\x1b[1mHOST" in out and "\x1b[32mopen" in out  # bold header, open in green
    rows = [line for line in screen_of(out) if f"{port}/tcp" in line]
    assert len(rows) == 1 and re.fullmatch(rf"127\.0\.0\.1  {port}/tcp  open", rows[0]), rows
    for plain in (scan_summary(port, env={"NO_COLOR": "yes"}), scan_summary(port, "--no-color")):
        assert "\x1b" not in plain
        assert re.search(rf"^127\.0\.0\.1  {port}/tcp  open\s*$", plain.replace("\r", ""), re.M), plain
