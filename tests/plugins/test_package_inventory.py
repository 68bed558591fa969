"""package_inventory against a real OpenSSH server on 127.0.0.1, logged into as a user the
test creates: the packages it reads must be this machine's own dpkg database; host keys
are recorded then enforced; only allow-listed commands run; a host printing garbage is
refused cleanly; the credentials never reach a log, the JSONL or the scan store.

Needs root (useradd, sshd's privilege separation); the user and every sshd are removed
when the tests end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pentora_plugins.checks
import pentora_plugins.engine
import pytest
from pentora_plugins.checks import _packages, _ssh_session
from pentora_plugins.checks._ssh_session import CommandRefused, KnownHosts, Limits, Scrubber
from pentora_plugins.checks.package_inventory import load_auth
from pentora_plugins.kit.records import InstalledPackages, ServiceFingerprint

from pentora import DagBuilder, Orchestrator
from pentora.testing import RecordCollector, free_port

from ..integration import daemons

HOST = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
GARBAGE_SHELL = r"""#!/bin/sh
# Answers every command as a hostile host would: a plausible os-release, then a package
# list mixing good lines with lies, terminal escapes and shell metacharacters.
case "$SSH_ORIGINAL_COMMAND" in
  "cat /etc/os-release")
    printf 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="\033]0;owned\007"\n' ;;
  dpkg-query*)
    printf 'bash\t5.2.15-2+b7\tbash\t5.2.15-2\tamd64\tii \n'
    printf 'evil\033[2J\t1.0-1\tevil\t1.0-1\tamd64\tii \n'
    printf 'curl\t$(reboot)\tcurl\t1.0\tamd64\tii \n'
    printf 'just one field\n'
    printf 'bash\t5.2.15-2+b7\tbash\t5.2.15-2\tamd64\tii \n'
    printf 'oldpkg\t1.0-1\toldpkg\t1.0-1\tamd64\trc \n' ;;
esac
"""
FLOOD_SHELL = "#!/bin/sh\nexec yes 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'\n"
SLOW_SHELL = "#!/bin/sh\nwhile :; do printf 'x'; sleep 0.2; done\n"
BINARY_SHELL = ("#!/bin/sh\ncase \"$SSH_ORIGINAL_COMMAND\" in\n  cat*) echo ID=debian ;;\n"
                "  *) head -c 20000 /dev/urandom ;;\nesac\n")


def _needs() -> str | None:
    if os.geteuid() != 0:
        return "needs root: creates a user and runs sshd"
    for tool in (SSHD, "useradd", "userdel", "chpasswd", "ssh-keygen", "dpkg-query"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


NEEDS = _needs()
pytestmark = pytest.mark.skipif(NEEDS is not None, reason=NEEDS or "")


@dataclass(frozen=True)
class User:
    name: str
    key: Path  # private key file
    password: str
    home: Path


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    return path


def fingerprint_of(key: Path) -> str:
    """``SHA256:…`` of a key file, as ssh-keygen says."""
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(key)], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1]


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="pentora-inventory-"))
    folder.chmod(0o755)  # sshd's StrictModes checks every folder above a home
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def user(work: Path) -> Iterator[User]:
    """A throwaway user with a generated key in its authorized_keys and a random password."""
    name = "pinv" + secrets.token_hex(4)
    home = work / name
    keys = work / "client"
    keys.mkdir(mode=0o700)
    key = _keygen(keys / "id_ed25519")
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", name], check=True)
    try:
        password = "pw-" + secrets.token_urlsafe(18)
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        (home / ".ssh").mkdir(parents=True, mode=0o700)
        shutil.copy(f"{key}.pub", home / ".ssh" / "authorized_keys")
        subprocess.run(["chown", "-R", f"{name}:{name}", str(home)], check=True)
        home.chmod(0o755)
        yield User(name, key, password, home)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)


@contextlib.contextmanager
def sshd(work: Path, user: User, *, port: int | None = None, host_key: Path | None = None,
         extra: str = "") -> Iterator[tuple[int, Path]]:
    """sshd -D on 127.0.0.1 with a config of its own: (port, host key)."""
    folder = Path(tempfile.mkdtemp(prefix="sshd-", dir=work))
    port = port or free_port()
    host_key = host_key or _keygen(folder / "host_ed25519")
    config, log = folder / "sshd_config", folder / "sshd.log"
    config.write_text(
        f"Port {port}\nListenAddress {HOST}\nHostKey {host_key}\nPidFile {folder}/sshd.pid\n"
        f"AllowUsers {user.name}\nUseDNS no\nUsePAM no\nPermitRootLogin no\n"
        "AuthorizedKeysFile .ssh/authorized_keys\nPasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\nLogLevel VERBOSE\n" + extra)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation
    with log.open("ab") as out:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        daemons.wait_for_port(port, proc, log, daemons.START_TIMEOUT)
        yield port, host_key
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=daemons.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the per-connection children


@pytest.fixture(scope="module")
def server(work: Path, user: User) -> Iterator[int]:
    with sshd(work, user) as (port, _):
        yield port


def run_inventory(ports: list[int], config: dict[str, Any]) -> tuple[Any, RecordCollector]:
    fps = [ServiceFingerprint(HOST, p, service="ssh", product="OpenSSH") for p in ports]
    fps.append(ServiceFingerprint(HOST, 1, service="http"))  # not SSH: never logged into
    dag = (DagBuilder().add_node("given", "set", config={"values": {"service_fingerprints": fps}})
           .add_node("inventory", "package_inventory", ["given"], config={"timeout": "10s", **config})
           .build())
    collector = RecordCollector()
    orch = Orchestrator(plugins=[pentora_plugins.engine, pentora_plugins.checks, collector],
                        autoload=False)
    orch.load_dag(dag)
    return orch.execute(), collector


def local_packages() -> list[dict[str, Any]]:
    """This machine's installed packages, from dpkg's ``Source`` field as dpkg-query shows
    it (``NAME`` or ``NAME (VERSION)``), not from the fields the module asks for."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\x1f${Version}\x1f${Source}\x1f"
                          "${Architecture}\x1f${Status}\n"], capture_output=True, text=True,
                         check=True).stdout
    found = []
    for line in out.splitlines():
        name, version, source, arch, status = line.split("\x1f")
        if status.split()[-1] in ("not-installed", "config-files"):
            continue
        source_name, _, rest = source.partition(" (")
        found.append({"name": name, "version": version, "source": source_name or name,
                      "source_version": rest.rstrip(")") or version, "arch": arch})
    return sorted(found, key=lambda p: (p["name"], p["arch"]))


def os_release() -> dict[str, str]:
    values = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        values[key] = value.strip('"')
    return values


# -- against the real sshd ---------------------------------------------------------------------


def test_inventory_over_ssh_equals_the_local_dpkg_database(server: int, user: User, work: Path) -> None:
    known = work / "known_truth"
    result, collector = run_inventory([server], {"user": user.name, "key": str(user.key),
                                                 "known_hosts": str(known)})
    assert result.ok, result.nodes["inventory"].error
    (record,) = result.context.get("packages")
    assert isinstance(record, InstalledPackages)
    assert collector.of("packages") == [record]  # emitted as found, for the JSONL and the store
    local = local_packages()
    assert len(local) > 50
    assert record.packages == local
    osr = os_release()
    assert (record.host, record.port, record.manager) == (HOST, server, "dpkg")
    assert record.distribution == osr["ID"]
    assert record.release == osr.get("VERSION_ID")
    assert record.codename == osr.get("VERSION_CODENAME")
