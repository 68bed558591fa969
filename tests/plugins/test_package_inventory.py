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
    if NEEDS is not None:
        pytest.skip(NEEDS)
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


def _error(result: Any) -> str:
    record = result.nodes["inventory"]
    assert record.status == "failed", f"expected a failure, got {record.status}"
    return str(record.error)


def test_host_key_is_recorded_then_enforced_and_a_changed_one_fails_the_host(
        work: Path, user: User, log_messages: list[str]) -> None:
    known = work / "known_tofu"
    config = {"user": user.name, "key": str(user.key), "known_hosts": str(known)}
    port = free_port()
    with sshd(work, user, port=port) as (_, first_key):
        result, _ = run_inventory([port], config)
        assert result.ok, result.nodes["inventory"].error
        lines = known.read_text().splitlines()
        public = Path(f"{first_key}.pub").read_text().split()[:2]
        assert lines == [f"[{HOST}]:{port} {public[0]} {public[1]}"]
        assert any("recorded the host key" in m and fingerprint_of(first_key) in m for m in log_messages)
        result, _ = run_inventory([port], config)  # known now: logged into, nothing added
        assert result.ok and known.read_text().splitlines() == lines
    other = _keygen(Path(tempfile.mkdtemp(dir=work)) / "other_host_key")
    with sshd(work, user, port=port, host_key=other):
        result, _ = run_inventory([port], config)
    error = _error(result)
    print(error)
    assert f"the host key of {HOST}:{port} has changed" in error
    assert fingerprint_of(first_key) in error and fingerprint_of(other) in error
    assert "ssh-keygen -R" in error
    assert result.context.get("packages") == []
    assert known.read_text().splitlines() == lines  # the recorded key stays


def test_without_trust_on_first_use_an_unknown_host_is_refused(server: int, user: User, work: Path) -> None:
    known = work / "known_strict"
    result, _ = run_inventory([server], {"user": user.name, "key": str(user.key),
                                         "known_hosts": str(known), "trust_on_first_use": False})
    error = _error(result)
    assert f"the host key of {HOST}:{server}" in error and "is not in" in error
    assert "trust_on_first_use" in error and not known.exists()


def test_password_from_the_environment_logs_in_and_a_wrong_one_is_refused_without_showing_it(
        server: int, user: User, work: Path, monkeypatch: pytest.MonkeyPatch,
        log_messages: list[str]) -> None:
    config = {"user": user.name, "password_env": "INVENTORY_PASSWORD", "known_hosts": str(work / "known_pw")}
    monkeypatch.setenv("INVENTORY_PASSWORD", user.password)
    result, _ = run_inventory([server], config)
    assert result.ok, result.nodes["inventory"].error
    (record,) = result.context.get("packages")
    assert record.packages == local_packages()
    wrong = "wrong-" + secrets.token_urlsafe(12)
    monkeypatch.setenv("INVENTORY_PASSWORD", wrong)
    result, _ = run_inventory([server], config)
    error = _error(result)
    assert f"logging in as '{user.name}' with the password in $INVENTORY_PASSWORD was refused" in error
    seen = "\n".join([*log_messages, error, repr(result.nodes["inventory"].to_dict())])
    assert user.password not in seen and wrong not in seen


def test_a_key_the_server_refuses_fails_with_the_key_path_only(server: int, user: User, work: Path) -> None:
    stranger = _keygen(Path(tempfile.mkdtemp(dir=work)) / "stranger")
    result, _ = run_inventory([server], {"user": user.name, "key": str(stranger),
                                         "known_hosts": str(work / "known_stranger")})
    error = _error(result)
    assert f"with the key {stranger} was refused" in error
    for line in stranger.read_text().splitlines()[1:-1]:
        assert line not in error


def test_only_allow_listed_commands_run(server: int, user: User, work: Path) -> None:
    marker = work / "marker"
    auth, scrub = load_auth({"user": user.name, "key": str(user.key), "password_env": ""})
    known = KnownHosts(work / "known_runner", True)
    limits = Limits(10, 30, 1 << 20, 10000)
    with _ssh_session.login(HOST, server, auth, known, limits, scrub, []) as session:
        for command in (f"touch {marker}", "cat /etc/os-release; touch " + str(marker),
                        "cat /etc/shadow", "dpkg-query -W", " cat /etc/os-release"):
            with pytest.raises(CommandRefused, match="is not one of the read-only commands"):
                session.run(command)
        status, text, _ = session.run(_ssh_session.OS_RELEASE)
    assert status == 0 and text == Path("/etc/os-release").read_text()
    assert not marker.exists()


def test_the_runner_refuses_before_sending_anything() -> None:
    # No transport at all: a refused command never reaches one.
    session = _ssh_session.Session(None, "nowhere", Limits(1, 1, 1, 1), Scrubber([]))
    with pytest.raises(CommandRefused):
        session.run("rm -rf /")


# -- hostile hosts: a ForceCommand answers every command -----------------------------------------


def _forced(work: Path, name: str, script: str) -> str:
    path = work / name
    path.write_text(script)
    path.chmod(0o755)
    return f"ForceCommand {path}\n"


def test_a_host_printing_garbage_gets_its_good_lines_kept_and_the_rest_refused(
        work: Path, user: User, log_messages: list[str]) -> None:
    with sshd(work, user, extra=_forced(work, "garbage.sh", GARBAGE_SHELL)) as (port, _):
        result, _ = run_inventory([port], {"user": user.name, "key": str(user.key),
                                           "known_hosts": str(work / "known_garbage")})
    assert result.ok, result.nodes["inventory"].error
    (record,) = result.context.get("packages")
    assert (record.distribution, record.release, record.codename) == ("debian", "12", "bookworm")
    assert record.packages == [{"name": "bash", "version": "5.2.15-2+b7", "source": "bash",
                                "source_version": "5.2.15-2", "arch": "amd64"}]
    (warning,) = [m for m in log_messages if "were refused" in m]
    print(warning)
    assert warning.startswith("WARNING") and "4 lines of the dpkg package list were refused" in warning
    assert "\x1b" not in warning and "\\x1b" in warning  # the escape shown, not sent to the terminal
    assert "'$(reboot)' is not a deb version" in warning
    assert "listed twice" in warning


@pytest.mark.parametrize(("name", "script", "config", "expected"), [
    ("flood.sh", FLOOD_SHELL, {"max_output": "256KB"}, "'cat /etc/os-release' passed 256000 bytes (max_output)"),
    ("flood_lines.sh", FLOOD_SHELL, {"max_lines": 100}, "passed 100 lines (max_lines)"),
    ("slow.sh", SLOW_SHELL, {"command_timeout": "1s"}, "did not finish within 1s"),
    ("binary.sh", BINARY_SHELL, {}, "the dpkg package list is refused: none of its"),
])
def test_hostile_output_is_refused_cleanly(work: Path, user: User, name: str, script: str,
                                           config: dict[str, Any], expected: str) -> None:
    with sshd(work, user, extra=_forced(work, name, script)) as (port, _):
        result, _ = run_inventory([port], {"user": user.name, "key": str(user.key),
                                           "known_hosts": str(work / f"known_{name}"), **config})
    error = _error(result)
    print(error)
    assert f"{HOST}:{port}" in error and expected in error
    assert "Traceback" not in error and "\x1b" not in error
