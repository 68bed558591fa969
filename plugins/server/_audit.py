"""The audit log, ``STATE/audit.log``: one JSON line per action that changes something.

A line names the token (never the token itself), the client address, the action, the
scan and its targets. Appended with one ``write`` per line (O_APPEND), so lines of
concurrent requests never interleave.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pentora import iso_time


class AuditLog:
    def __init__(self, state: Path) -> None:
        self.path = state / "audit.log"

    def write(self, action: str, who: str | None, client: str | None, scan_id: str | None = None,
              targets: Any = None, **extra: Any) -> None:
        entry = {"time": iso_time(time.time()), "token": who, "client": client, "action": action,
                 "scan_id": scan_id, "targets": targets, **extra}
        line = (json.dumps(entry, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
