"""Shared fixtures. Core tests build a fresh plugin manager with autoload off and
register only test-only modules: the core needs no built-in plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pentora
from pentora import Module, Orchestrator, RetryPolicy, hookimpl

TESTS = Path(__file__).parent
ROOT = TESTS.parent


class ModulesPlugin:
    """Registers the given module classes (and test retry policies) as one plugin."""

    def __init__(self, *modules: type[Module], policies: tuple[RetryPolicy, ...] = ()) -> None:
        self.modules = modules
        self.policies = policies

    @hookimpl
    def pentora_register_modules(self, registry: Any) -> None:
        for m in self.modules:
            registry.register(m)

    @hookimpl
    def pentora_register_retry_policies(self, registry: Any) -> None:
        for p in self.policies:
            registry.register_retry_policy(p)


def make_orch(*modules: type[Module], plugins: tuple[Any, ...] = (), **kw: Any) -> Orchestrator:
    kw.setdefault("autoload", False)
    return Orchestrator(plugins=(ModulesPlugin(*modules, policies=kw.pop("policies", ())), *plugins),
                        **kw)


def pytest_configure(config: pytest.Config) -> None:
    # Every scan is recorded in the scan store, by default ~/.local/share/pentora/scans.db:
    # the tests (and the CLI processes they start, which inherit the environment) use a
    # private one instead of the home directory's.
    if "PENTORA_STORE" not in os.environ:
        os.environ["PENTORA_STORE"] = str(Path(tempfile.mkdtemp(prefix="pentora-tests-")) / "scans.db")
    # The plugin manifest cache too (~/.cache/pentora otherwise): the tests' own, warmed
    # by the first run that loads the plugins and used by the others, as a user's is.
    if "PENTORA_CACHE_DIR" not in os.environ:
        os.environ["PENTORA_CACHE_DIR"] = tempfile.mkdtemp(prefix="pentora-tests-cache-")


@pytest.fixture
def run_cli():
    """Run ``pentora`` in a subprocess; returns CompletedProcess with text output."""
    import subprocess

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None,
            cwd: str | Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        import os
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run([sys.executable, "-m", "pentora", *args], capture_output=True,
                              text=True, input=input, env=full_env, cwd=cwd, timeout=timeout)

    return run


def mounted_tmpfs(folder: Path, options: str, why: str) -> Iterator[Path]:
    """A tmpfs mounted on ``folder`` with ``options`` for the test, unmounted after it
    (root only: skipped, saying ``why`` it needs one, otherwise)."""
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip(f"mounting a tmpfs {why} needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 4 KB tmpfs, full after a few lines (root only)."""
    yield from mounted_tmpfs(tmp_path / "tiny", "size=4k", "to fill")


@pytest.fixture
def unprivileged():
    """The system user ``pentora-test`` (made when missing) with a fresh home of its own,
    removed after the test; run pentora as it with ``tests.unprivileged.run_as_unprivileged``
    (root only: skipped, saying why, otherwise)."""
    import shutil

    from tests.unprivileged import unprivileged_user

    user = unprivileged_user()
    yield user
    shutil.rmtree(user.home, ignore_errors=True)


__all__ = ["ModulesPlugin", "make_orch", "pentora"]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A private redis-server (Debian's) on 127.0.0.1 for the tests of one module."""
    import shutil

    from tests.integration.daemons import PACKAGES, redis

    if not shutil.which("redis-server") and not Path(PACKAGES["redis-server"]).exists():
        pytest.skip("redis-server is not installed (.ci/setup installs Debian's redis-server)")
    with redis() as daemon:
        yield f"redis://127.0.0.1:{daemon.port}/0"


@pytest.fixture
def broker(redis_url: str) -> str:
    """The private redis-server, emptied: no shard of an earlier test is left queued."""
    import redis as redis_client

    redis_client.Redis.from_url(redis_url).flushdb()
    return redis_url
