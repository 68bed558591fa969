"""API tokens: created once, kept hashed in ``STATE/tokens.json``, checked in constant time.

SHA-256 and no salt or key stretching, as GitHub keeps its tokens: a token is 32 random
bytes, so no dictionary nor brute force reaches it, and a fast hash costs each request
nothing. The file is written atomically with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pentora import iso_time
from pentora.cli import EXIT_INVALID, EXIT_USAGE, CliError

PREFIX = "pnt_"
SCOPES = ("read", "scan", "admin")  # each includes those before it
LAST_USED_EVERY = 60.0  # seconds: how often a token's use is written down at most


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's (or session's) name and scope."""

    name: str
    scope: str

    def allows(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, state: Path) -> None:
        self.path = state / "tokens.json"
        self._lock = threading.Lock()

    def _read(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            raise CliError(f"{self.path}: cannot read the tokens ({e}); move it away and create "
                           "tokens again", EXIT_INVALID) from None
        return list(data.get("tokens", []))

    def _write(self, tokens: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(f".tokens.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"tokens": tokens}, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def create(self, scope: str, name: str | None = None) -> tuple[str, str]:
        """(name, token): the token itself is shown this once and never kept."""
        if scope not in SCOPES:
            raise CliError(f"--scope {scope}: one of {', '.join(SCOPES)}", EXIT_USAGE)
        with self._lock:
            tokens = self._read()
            taken = {t["name"] for t in tokens}
            if name is None:
                name = next(f"{scope}-{n}" for n in range(1, len(tokens) + 2)
                            if f"{scope}-{n}" not in taken)
            elif name in taken:
                raise CliError(f"--name {name}: a token has that name; revoke it first or choose "
                               "another", EXIT_USAGE)
            if not name or not name.isprintable() or len(name) > 64:
                raise CliError("--name: 1 to 64 printable characters", EXIT_USAGE)
            token = PREFIX + secrets.token_urlsafe(32)
            tokens.append({"name": name, "scope": scope, "sha256": _digest(token),
                           "created": time.time(), "last_used": None})
            self._write(tokens)
        return name, token

    def list(self) -> list[dict[str, Any]]:
        return [{"name": t["name"], "scope": t["scope"], "created": iso_time(t["created"]),
                 "last_used": iso_time(t["last_used"])} for t in self._read()]

    def revoke(self, name: str) -> None:
        with self._lock:
            tokens = self._read()
            kept = [t for t in tokens if t["name"] != name]
            if len(kept) == len(tokens):
                raise CliError(f"no token named '{name}'; see `pentora server token list`",
                               EXIT_INVALID)
            self._write(kept)

    def __bool__(self) -> bool:
        return bool(self._read())

    def check(self, token: str) -> Principal | None:
        """The token's principal, or None. Every stored digest is compared (in constant
        time), so the answer's timing says nothing of which one was near."""
        digest = _digest(token)
        found = None
        tokens = self._read()
        for t in tokens:
            if hmac.compare_digest(digest, str(t.get("sha256", ""))):
                found = t
        if found is None:
            return None
        now = time.time()
        if (found.get("last_used") or 0) < now - LAST_USED_EVERY:
            with self._lock:
                fresh = self._read()
                for t in fresh:
                    if t["name"] == found["name"]:
                        t["last_used"] = now
                self._write(fresh)
        return Principal(found["name"], found["scope"])
