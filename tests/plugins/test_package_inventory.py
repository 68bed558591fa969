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
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import pentora_plugins.checks
import pentora_plugins.engine
import pytest
from pentora_plugins.checks import _packages, _ssh_login
from pentora_plugins.checks._ssh_login import CommandNotAllowedError, KnownHosts, Limits, Scrubber
from pentora_plugins.checks.package_inventory import load_auth
from pentora_plugins.kit.records import InstalledPackages, ServiceFingerprint

from pentora import DagBuilder, Orchestrator
from pentora.testing import RecordCollector, free_port

from ..integration import daemons

HOST = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
GARBAGE_SHELL = r"""#!/bin/sh
# Answers every command as a hostile host would: a plausible os-release (slowly: a login
# that blocked the event loop meanwhile would be named by the watchdog), then a package
# list mixing good lines with lies, terminal escapes and shell metacharacters.
case "$SSH_ORIGINAL_COMMAND" in
  "cat /etc/os-release")
    sleep 2
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


def test_inventory_over_ssh_equals_the_local_dpkg_database(server: int, user: User, work: Path,
                                                            log_messages: list[str]) -> None:
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
    # This process is not monkey-patched: the login ran on a thread, the loop kept running.
    assert any("logins run on gevent's thread pool" in m for m in log_messages)


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
    # Another type of key (it no longer has an Ed25519 one): the same refusal, both named.
    ecdsa = Path(tempfile.mkdtemp(dir=work)) / "ecdsa_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-C", "", "-f", str(ecdsa)], check=True)
    with sshd(work, user, port=port, host_key=ecdsa):
        result, _ = run_inventory([port], config)
    error = _error(result)
    assert f"the host key of {HOST}:{port} has changed" in error
    assert fingerprint_of(first_key) in error and fingerprint_of(ecdsa) in error
    assert known.read_text().splitlines() == lines


def test_without_trust_on_first_use_an_unknown_host_is_refused(server: int, user: User, work: Path) -> None:
    known = work / "known_strict"
    result, _ = run_inventory([server], {"user": user.name, "key": str(user.key),
                                         "known_hosts": str(known), "trust_on_first_use": False})
    error = _error(result)
    assert f"the host key of {HOST}:{server}" in error and "is not in" in error
    assert "trust_on_first_use" in error and not known.exists()


def test_a_known_hosts_file_that_cannot_be_used_stops_the_login(server: int, user: User, work: Path) -> None:
    not_a_folder = work / "known_is_a_file"
    not_a_folder.write_text("")
    unreadable = str(not_a_folder / "known_hosts")
    result, _ = run_inventory([server], {"user": user.name, "key": str(user.key), "known_hosts": unreadable})
    error = _error(result)
    assert f"cannot read the known_hosts file {unreadable}: Not a directory" in error
    assert "choose a readable file (known_hosts)" in error
    # /sys takes no new files, even from root: the key cannot be recorded, so no login
    result, _ = run_inventory([server], {"user": user.name, "key": str(user.key),
                                         "known_hosts": "/sys/pentora_known_hosts"})
    error = _error(result)
    assert f"cannot record the host key of {HOST}:{server} in /sys/pentora_known_hosts" in error
    assert "choose a writable file (known_hosts)" in error


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
    with _ssh_login.login(HOST, server, auth, known, limits, scrub, []) as runner:
        for command in (f"touch {marker}", "cat /etc/os-release; touch " + str(marker),
                        "cat /etc/shadow", "dpkg-query -W", " cat /etc/os-release"):
            with pytest.raises(CommandNotAllowedError, match="is not one of the read-only commands"):
                runner.run(command)
        status, text, _ = runner.run(_ssh_login.OS_RELEASE)
    assert status == 0 and text == Path("/etc/os-release").read_text()
    assert not marker.exists()


def test_the_runner_refuses_before_sending_anything() -> None:
    # No transport at all: a refused command never reaches one.
    runner = _ssh_login.Runner(None, "nowhere", Limits(1, 1, 1, 1), Scrubber([]))
    with pytest.raises(CommandNotAllowedError):
        runner.run("rm -rf /")


# -- hostile hosts: a ForceCommand answers every command -----------------------------------------


def _forced(work: Path, name: str, script: str) -> str:
    path = work / name
    path.write_text(script)
    path.chmod(0o755)
    return f"ForceCommand {path}\n"


def run_ticking(ports: list[int], config: dict[str, Any]) -> tuple[Any, int]:
    """``run_inventory``, and how many turns a greenlet ticking every 50 ms got meanwhile."""
    ticks = [0]

    def tick() -> None:
        while True:
            gevent.sleep(0.05)
            ticks[0] += 1

    ticker = gevent.spawn(tick)
    try:
        result, _ = run_inventory(ports, config)
    finally:
        ticker.kill()
    return result, ticks[0]


BASH = [{"name": "bash", "version": "5.2.15-2+b7", "source": "bash", "source_version": "5.2.15-2",
         "arch": "amd64"}]


def test_a_host_printing_garbage_gets_its_good_lines_kept_and_the_rest_refused(
        work: Path, user: User, log_messages: list[str]) -> None:
    with sshd(work, user, extra=_forced(work, "garbage.sh", GARBAGE_SHELL)) as (port, _):
        result, ticks = run_ticking([port], {"user": user.name, "key": str(user.key),
                                             "known_hosts": str(work / "known_garbage")})
    assert result.ok, result.nodes["inventory"].error
    (record,) = result.context.get("packages")
    assert (record.distribution, record.release, record.codename) == ("debian", "12", "bookworm")
    assert record.packages == BASH
    (warning,) = [m for m in log_messages if "were refused" in m]
    print(warning)
    assert warning.startswith("WARNING") and "4 lines of the dpkg package list were refused" in warning
    assert "\x1b" not in warning and "\\x1b" in warning  # the escape shown, not sent to the terminal
    assert "'$(reboot)' is not a deb version" in warning
    assert "listed twice" in warning
    # The login waited 2 s for the host on the thread pool: the event loop ran meanwhile.
    assert ticks >= 5, f"the event loop ran {ticks} times while the host was slow"


PATCHED = """
import json, sys
from gevent import monkey
monkey.patch_all()  # as the CLI does, before anything else is imported
from pentora_plugins.checks._ssh_login import cooperative
from tests.plugins.test_package_inventory import run_ticking
result, ticks = run_ticking([int(sys.argv[1])], json.loads(sys.argv[2]))
print(json.dumps({"error": result.nodes["inventory"].error, "ticks": ticks, "cooperative": cooperative(),
                  "packages": [r.packages for r in result.context.get("packages", [])]}))
"""


def test_monkey_patched_logins_run_in_greenlets_and_leave_the_loop_running(work: Path, user: User) -> None:
    import json

    config = {"user": user.name, "key": str(user.key), "known_hosts": str(work / "known_patched")}
    with sshd(work, user, extra=_forced(work, "garbage_patched.sh", GARBAGE_SHELL)) as (port, _):
        done = subprocess.run([sys.executable, "-c", PATCHED, str(port), json.dumps(config)],
                              cwd=daemons.ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["error"] is None and out["packages"] == [BASH]
    assert out["cooperative"]  # paramiko ran in the node's greenlets, not on the thread pool
    assert out["ticks"] >= 5, f"the event loop ran {out['ticks']} times while the host was slow"


@pytest.mark.parametrize(("name", "script", "config", "expected"), [
    ("flood.sh", FLOOD_SHELL, {"max_output": "256KB"},
     "'cat /etc/os-release' passed 256000 bytes (max_output)"),
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


# -- the real engine: `pentora scan`, monkey-patched, with the store and the JSONL ---------------


def scan_cli(port: int, home: Path, out: Path, *args: str, env: dict[str, str] | None = None,
             profile: str = "standard") -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "HOME": str(home), "PENTORA_STORE": str(home / "store" / "scans.db"),
            **(env or {})}
    return subprocess.run([sys.executable, "-m", "pentora", "scan", "--log-level", "DEBUG",
                           "--profile", profile, "--targets", HOST, "-p", str(port), "-o", str(out),
                           *args], capture_output=True, text=True, env=full, timeout=240)


def jsonl(path: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


def node_status(lines: list[dict[str, Any]], node: str) -> str:
    (found,) = [r for r in lines if r["kind"] == "node" and r.get("node") == node]
    return str(found["status"])


def test_a_scan_with_credentials_reads_the_packages_and_leaks_none_of_them(
        server: int, user: User, work: Path) -> None:
    home = work / "cli-home"
    home.mkdir()
    wrong = "wrong-" + secrets.token_urlsafe(12)
    runs = {
        "key": scan_cli(server, home, home / "key.jsonl", "--ssh-user", user.name,
                        "--ssh-key", str(user.key)),
        "password": scan_cli(server, home, home / "password.jsonl", "--ssh-user", user.name,
                             "--ssh-password-env", "SCAN_PW", env={"SCAN_PW": user.password},
                             profile="vuln-scan"),
        "wrong": scan_cli(server, home, home / "wrong.jsonl", "--ssh-user", user.name,
                          "--ssh-password-env", "SCAN_PW", env={"SCAN_PW": wrong}),
    }
    for name, done in runs.items():
        print(name, done.returncode, done.stderr[-3000:])
    for name in ("key", "password"):
        lines = jsonl(home / f"{name}.jsonl")
        (record,) = [r for r in lines if r["kind"] == "packages"]
        assert record["packages"] == local_packages() and record["port"] == server
        assert node_status(lines, "package_inventory") == "completed"
        assert node_status(lines, "cve") == "completed"
    wrong_lines = jsonl(home / "wrong.jsonl")
    assert node_status(wrong_lines, "package_inventory") == "failed"
    assert node_status(wrong_lines, "cve") == "completed"  # the banners are still matched
    assert runs["wrong"].returncode == 3
    # The CLI monkey-patches: paramiko ran in the scan's greenlets, not on threads.
    assert "logins run in the node's greenlets (monkey-patched)" in runs["key"].stderr
    assert "was refused" in runs["wrong"].stderr
    # The known_hosts file of the user running the scan got the server's key, once.
    assert len((home / ".config" / "pentora" / "known_hosts").read_text().splitlines()) == 1

    haystack = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    haystack += "".join(d.stdout + d.stderr for d in runs.values()).encode()
    assert any(p.name.startswith("scans.db") for p in (home / "store").iterdir())
    key_lines = [line for line in user.key.read_text().splitlines() if "PRIVATE KEY" not in line]
    assert key_lines
    for secret in [user.password, wrong, *key_lines]:
        assert secret.encode() not in haystack, "a credential was written to a log, the JSONL or the store"
    assert user.name.encode() in haystack  # the user name is not secret: the haystack is real
    assert_exact_findings(jsonl(home / "key.jsonl"), server)


def assert_exact_findings(lines: list[dict[str, Any]], ssh_port: int) -> None:
    """A credentialed scan is exact: the sshd's CVEs are judged by the installed package
    (method ``package``), and no finding is a CVE that the package's own changelog marks
    fixed at or below the installed version (the changelogs are the truth, read apart)."""
    from ..integration.changelog import fixed_cves

    vulns = [r for r in lines if r["kind"] == "vulnerability" and r["id"].startswith("CVE-")]
    print("\n".join(f"{v['port']} {v['id']} {v['method']} {v['quality']} {v['evidence'][:120]}"
                    for v in vulns))
    on_sshd = [v for v in vulns if v["port"] == ssh_port]
    assert all(v["method"] == "package" for v in on_sshd), on_sshd
    binaries: dict[str, list[tuple[str, str]]] = {}
    for p in local_packages():
        binaries.setdefault(p["source"], []).append((p["name"], p["version"]))
    for v in vulns:
        m = re.search(r"debian 12 (\S+) (\S+?):? (?:is older than|no fix released)", v["evidence"])
        assert v["method"] == "package" and m, v
        source = m.group(1)
        for binary, installed in binaries.get(source, []):
            with contextlib.suppress(FileNotFoundError):  # a binary shipping no changelog of its own
                fixed = fixed_cves(binary, installed)
                assert v["id"] not in fixed, \
                    f"{v['id']} is reported, but {binary} {installed}'s changelog fixed it in " \
                    f"{fixed[v['id']]}"


def test_without_credentials_the_inventory_is_skipped_and_the_banners_still_matched(
        server: int, work: Path) -> None:
    home = work / "cli-nocreds"
    home.mkdir()
    done = scan_cli(server, home, home / "out.jsonl")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = jsonl(home / "out.jsonl")
    assert node_status(lines, "package_inventory") == "skipped"
    assert node_status(lines, "cve") == "completed"
    assert not [r for r in lines if r["kind"] == "packages"]
    assert not (home / ".config").exists()  # nothing logged into, no known_hosts made


# -- what the host says, parsed as hostile text (no network) ------------------------------------

OS_RELEASES = [
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
     'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n', ("debian", "12", "bookworm", "dpkg")),
    ('NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=jammy\n',
     ("ubuntu", "22.04", "jammy", "dpkg")),
    ('NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'
     'VERSION_ID="9.3"\n', ("rocky", "9", None, "rpm")),
    ('NAME="AlmaLinux"\nID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="8.9"\n',
     ("alma", "8", None, "rpm")),
    ('NAME="Red Hat Enterprise Linux"\nID="rhel"\nVERSION_ID="9.4"\n', ("rhel", "9", None, "rpm")),
    ('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\n', ("alpine", "3.19", None, "apk")),
    # a derivative: the family is known, its own release numbers are not the family's
    ('NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="21.3"\n'
     'VERSION_CODENAME=virginia\n', ("ubuntu", None, "virginia", "dpkg")),
    ('ID=plan9\nVERSION_ID=4\n', (None, None, None, None)),
    # hostile: quotes left open, injected words, escapes, a huge value
    ('ID="debian\nVERSION_ID=12; rm -rf /\nVERSION_CODENAME="\x1b[2J"\n', (None, None, None, None)),
    ("ID=debian\nVERSION_ID=" + "1" * 5000 + "\n", ("debian", None, None, "dpkg")),
]


@pytest.mark.parametrize(("text", "expected"), OS_RELEASES)
def test_os_release_names_the_distribution_as_kit_distro_does(text: str, expected: tuple[Any, ...]) -> None:
    system = _packages.system_of(_packages.parse_os_release(text))
    assert (system.distribution, system.release, system.codename, system.manager) == expected


def test_rpm_lines_from_a_real_rpm_query() -> None:
    lines = ["openssh-server\t(none)\t8.7p1-38.el9_4.1\topenssh-8.7p1-38.el9_4.1.src.rpm\tx86_64",
             "nginx\t2\t1.20.1-14.el9_2.1\tnginx-1.20.1-14.el9_2.1.src.rpm\tx86_64",
             "gpg-pubkey\t(none)\t350d275d-6279464b\t(none)\t(none)",
             "bash\t(none)\t5.1.8-9.el9\tnot-a-source-rpm\tx86_64",
             "evil name\t(none)\t1.0-1\tevil-1.0-1.src.rpm\tx86_64"]
    parsed = _packages.parse_rpm(lines)
    assert parsed.packages == [
        {"name": "openssh-server", "version": "8.7p1-38.el9_4.1", "source": "openssh",
         "source_version": "8.7p1-38.el9_4.1", "arch": "x86_64"},
        {"name": "nginx", "version": "2:1.20.1-14.el9_2.1", "source": "nginx",
         "source_version": "2:1.20.1-14.el9_2.1", "arch": "x86_64"}]
    assert parsed.refused == 2 and "is not NAME-VERSION-RELEASE.src.rpm" in parsed.reasons[0]


def test_apk_lines_from_a_real_apk_list() -> None:
    lines = ["musl-1.2.4_git20230717-r4 x86_64 {musl} (MIT) [installed]",
             "openssh-server-9.6_p1-r0 x86_64 {openssh} (SSH-OpenSSH) [installed]",
             "libcrypto3-3.1.4-r5 x86_64 {openssl} (Apache-2.0) [installed]",
             "py3-setuptools-68.0.0-r0 noarch {py3-setuptools} (MIT AND (Apache-2.0 OR BSD)) [installed]",
             "WARNING: opening from cache https://dl-cdn.alpinelinux.org: No such file",
             "busybox-1.36.1-r15 x86_64 {busybox} (GPL-2.0-only) [upgradable from: busybox-1.36.1-r14]"]
    parsed = _packages.parse_apk(lines)
    assert [(p["name"], p["version"], p["source"]) for p in parsed.packages] == [
        ("musl", "1.2.4_git20230717-r4", "musl"), ("openssh-server", "9.6_p1-r0", "openssh"),
        ("libcrypto3", "3.1.4-r5", "openssl"), ("py3-setuptools", "68.0.0-r0", "py3-setuptools")]
    assert parsed.refused == 2


def test_dpkg_lines_keep_installed_packages_and_refuse_the_rest() -> None:
    lines = ["libc6\t2.36-9+deb12u9\tglibc\t2.36-9+deb12u9\tamd64\tii ",
             "libc6\t2.36-9+deb12u9\tglibc\t2.36-9+deb12u9\ti386\tii ",
             "gone\t1.0-1\tgone\t1.0-1\tamd64\trc ",  # removed, its configuration kept
             "held\t1.0-1\theld\t1.0-1\tamd64\thi ",
             "Upper\t1.0-1\tupper\t1.0-1\tamd64\tii ",
             "x" * 5000]
    parsed = _packages.parse_dpkg(lines)
    assert [(p["name"], p["arch"]) for p in parsed.packages] == [("libc6", "amd64"), ("libc6", "i386"),
                                                                  ("held", "amd64")]
    assert parsed.packages[0]["source"] == "glibc" and parsed.refused == 2


def test_credentials_that_cannot_be_used_are_named_without_their_content(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pentora import ModuleError

    encrypted = tmp_path / "encrypted"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(encrypted)],
                   check=True)
    not_a_key = tmp_path / "not_a_key"
    not_a_key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LW1hdGVyaWFsLWxpbmU=\n"
                         "-----END OPENSSH PRIVATE KEY-----\n")
    monkeypatch.delenv("NO_SUCH_PASSWORD_VAR", raising=False)
    cases = [({"key": str(tmp_path / "missing")}, "cannot read the key file"),
             ({"key": str(encrypted)}, "is encrypted"),
             ({"key": str(not_a_key)}, "is not a private key paramiko reads"),
             ({"password_env": "NO_SUCH_PASSWORD_VAR"}, "NO_SUCH_PASSWORD_VAR (password_env) is not set"),
             ({}, "needs a credential")]
    for given, expected in cases:
        config = {"user": "someone", "key": "", "password_env": "", **given}
        with pytest.raises(ModuleError, match=re.escape(expected)) as e:
            load_auth(config)
        assert "c2VjcmV0" not in str(e.value)
    with pytest.raises(ModuleError, match="needs a user"):
        load_auth({"user": "", "key": str(encrypted), "password_env": ""})


def test_scrubber_takes_secrets_out_and_escapes_the_rest() -> None:
    scrub = Scrubber(["hunter2-password", "AAAAC3NzaC1lZDI1NTE5"])
    assert scrub("bad auth hunter2-password \x1b[2J AAAAC3NzaC1lZDI1NTE5xyz") == \
        "bad auth [secret] \\x1b[2J [secret]xyz"


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["--ssh-key", "/etc/hostname"], {}, "--ssh-key and --ssh-password-env need --ssh-user USER"),
    (["--ssh-user", "u"], {}, "--ssh-user needs a credential"),
    (["--ssh-user", "u", "--ssh-key", "/nonexistent/key"], {},
     "--ssh-key /nonexistent/key: no readable file"),
    (["--ssh-user", "u", "--ssh-password-env", "UNSET_PW_VAR"], {},
     "UNSET_PW_VAR: that environment variable is not set"),
    (["--ssh-user", "u", "--ssh-password-env", "p@ss w0rd!"], {},
     "takes the NAME of an environment variable"),
    (["--ssh-user", "u", "--ssh-key", "/etc/hostname", "--profile", "port-scan"], {},
     "DAG 'port-scan' declares no 'ssh_user' var"),
])
def test_cli_misuse_is_a_usage_error_before_anything_runs(run_cli: Any, args: list[str],
                                                          env: dict[str, str], expected: str) -> None:
    done = run_cli("scan", "--targets", HOST, *args, env=env)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert "p@ss w0rd!" not in done.stderr
