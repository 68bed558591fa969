"""What the server's tests share: ending a process they started, a port that never talks."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM (a server's own way out: it cancels its scans), SIGKILL after ``grace`` s."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def silent_port() -> Iterator[int]:
    """A port of 127.0.0.1 that accepts and never answers: a banner read with a long
    timeout keeps the scan reading it running until it is cancelled."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: [held.append(listener.accept()[0]) for _ in range(16)],
                     daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def slow_dag(port: int) -> dict[str, object]:
    """A scan that stays running: a banner read, with a 60 s timeout, from ``port`` (a
    ``silent_port``)."""
    return {"name": "slow", "vars": {"targets": "127.0.0.1"}, "nodes": [
        {"instance_id": "targets", "module_type": "target_parser", "config": {"targets": "${targets}"}},
        {"instance_id": "p", "module_type": "connect_scanner", "depends_on": ["targets"],
         "config": {"ports": str(port), "input": "targets"}},
        {"instance_id": "b", "module_type": "banner_grabber", "depends_on": ["p"],
         "config": {"timeout": "60s", "race_probes": False}}]}
