"""Run ``pentora`` as a real unprivileged user: what a scan does for someone who is not root.

Root is needed to make the user and to drop to it, so everything here skips (saying why)
when the tests do not run as root::

    from tests.unprivileged import run_as_unprivileged, unprivileged_user

    def test_scan(tmp_path):
        user = unprivileged_user()                       # skips without root or setpriv
        done = run_as_unprivileged(["scan", "-t", "127.0.0.1", "-p", "22"], user)
        assert done.returncode == 0, done.stderr

The process runs with the user's uid and group only: no supplementary groups, no
capabilities (not even in its bounding set), ``HOME`` and ``PENTORA_STORE`` in a directory
of its own (``user.home``, made for each call of ``unprivileged_user``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from pentora.testing import NetNs

USER = "pentora-test"


@dataclass(frozen=True)
class UnprivilegedUser:
    """A system user without privilege and a working directory that it owns."""

    name: str
    uid: int
    gid: int
    home: Path


def unprivileged_unavailable() -> str | None:
    """Why these tests cannot drop to another user here, or None if they can."""
    if os.geteuid() != 0:
        return "creating a user and dropping to it needs root; not running as root"
    for tool, package in (("setpriv", "util-linux"), ("useradd", "passwd")):
        if shutil.which(tool) is None:
            return f"'{tool}' (Debian's {package}) is not installed"
    return None


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    made = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                           "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True)
    try:  # another test process may have made it meanwhile (useradd then fails)
        return pwd.getpwnam(name)
    except KeyError:
        pytest.skip(f"cannot create the system user '{name}': {made.stderr.strip()}")


def unprivileged_user(name: str = USER) -> UnprivilegedUser:
    """The system user ``name`` (created when missing) with a fresh directory of its own.

    Skips with the reason when not root, or when the user cannot run this checkout's
    Python (the checkout or its virtualenv is not readable by other users).
    """
    reason = unprivileged_unavailable()
    if reason:
        pytest.skip(reason)
    entry = _ensure_user(name)
    # Under the temporary directory, not pytest's tmp_path: /tmp/pytest-of-root is 0700.
    home = Path(tempfile.mkdtemp(prefix="pentora-unprivileged-"))
    os.chown(home, entry.pw_uid, entry.pw_gid)
    user = UnprivilegedUser(name, entry.pw_uid, entry.pw_gid, home)
    probe = subprocess.run(_drop(user) + [sys.executable, "-c", "import pentora, pentora_plugins"],
                           capture_output=True, text=True, cwd=home, env=_env(user), timeout=60)
    if probe.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        last = (probe.stderr.strip().splitlines() or ["(no message)"])[-1]
        pytest.skip(f"user '{name}' cannot run {sys.executable} with pentora: {last}; "
                    "the checkout and its .venv must be readable by other users")
    return user


def _drop(user: UnprivilegedUser) -> list[str]:
    # setpriv keeps its own capabilities until it executes the program (it needs them to
    # clear the inheritable and bounding sets), so the interpreter's path is resolved as
    # root: an interpreter behind a 0700 directory (pyenv in root's home) still starts. The
    # program itself runs with none, and may read only what the user may.
    return ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--"]


def _env(user: UnprivilegedUser, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(user.home),
           "PENTORA_STORE": str(user.home / "scans.db"), "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


def run_as_unprivileged(argv: list[str], user: UnprivilegedUser, *, netns: NetNs | None = None,
                        env: dict[str, str] | None = None, cwd: Path | None = None,
                        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``pentora ARGV`` as ``user`` (inside ``netns`` if given), in ``cwd`` (default: its home).

    Relative paths in ``argv`` (``-iL hosts.txt``, ``-oA out``) are taken from ``cwd``,
    which the user must be able to write to for outputs.
    """
    cmd = _drop(user) + [sys.executable, "-m", "pentora", *argv]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns.name, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd or user.home,
                          env=_env(user, env), timeout=timeout)
