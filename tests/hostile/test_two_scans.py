"""Two scans in one process (a scan server): the event-loop watchdog's signal handler and
wakeup fd are the process's, shared by the scans that run at once (``two_scans.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("two_scans.py")


def test_a_scan_ending_while_another_runs_leaves_it_watched_and_restores_the_process() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=60)  # a hang guard
    assert proc.returncode == 0, proc.stderr  # it used to end with EBADF, a closed pipe put back
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["a"] == {"nap": {"status": "completed", "error": None}}
    blocker = out["b"]["blocker"]
    # A ended before B's node blocked: B's watchdog still got the pokes and timed it out
    assert blocker["status"] == "failed" and "blocked the event loop" in blocker["error"]
    assert out["handler_restored"] and out["wakeup_restored"]
