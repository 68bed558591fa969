"""Real daemons from Debian's packages, each started on 127.0.0.1 with a config of its own.

Used by ``tests/integration/test_real_daemons.py``, ``test_patched_daemons.py`` (with Exim and
Apache httpd too) and ``tests/benchmarks/bench_service_scan.py``::

    reason = ensure_packages()          # None, or why the daemons cannot run here
    with all_daemons() as daemons:      # each a Daemon: name, port, expected service/product/version
        ...

The packaged configuration is never used (pentora talks to loopback only): packages are
installed with service start-up forbidden (a ``policy-rc.d`` that exits 101), and each
context manager writes its own config into a fresh temporary directory, starts the daemon
in the foreground bound to 127.0.0.1 on a port the kernel just handed out, waits until the
port accepts, yields, then stops the daemon and removes the directory. No daemon resolves
names: reverse lookups are off wherever the daemon has them.

Everything here needs root (sshd's privilege separation, vsftpd's chroot, running
PostgreSQL, Exim and Apache's workers as their own users); :func:`ensure_packages` says so
when it is not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pentora.testing import free_port

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
SERVICE_SCAN_MODULES = ("banner_grabber", "fingerprint_parser", "asset_profiler", "json_reporter")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

# Debian package -> a file that shows it is installed (any package providing it will do;
# the version expected of a scan is that of the package owning the binary, ``dpkg -S``).
PACKAGES = {
    "openssh-server": "/usr/sbin/sshd",
    "nginx": "/usr/sbin/nginx",
    "redis-server": "/usr/bin/redis-server",
    "vsftpd": "/usr/sbin/vsftpd",
    "postgresql": "/usr/lib/postgresql/*/bin/postgres",
    "exim4-daemon-light": "/usr/sbin/exim4",
    "apache2": "/usr/sbin/apache2",
}
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")

_apt_updated = False


class DaemonError(RuntimeError):
    """A daemon did not start; the message carries the tail of its log."""


@dataclass(frozen=True)
class Daemon:
    """A running daemon and what a scan of its port should name."""

    name: str
    port: int
    service: str
    product: str
    package: str
    package_version: str
    reveals_version: bool
    log: Path
    tls_port: int | None = None  # nginx started with ``tls=``: its HTTPS port

    @property
    def upstream_version(self) -> str:
        return upstream_version(self.package_version)

    @property
    def expected_version(self) -> str | None:
        """The version a scanner should report, or None where the daemon does not reveal it."""
        return self.upstream_version if self.reveals_version else None

    def judge(self, service: str | None, product: str | None,
              version: str | None) -> tuple[bool, bool, bool | None]:
        """Whether a scanner named the service, the product and the version right.

        The product is right when the expected name is one of the reported words
        (nmap's ``PostgreSQL DB`` names PostgreSQL); the version when its first word is
        the package's upstream version (nmap's ``9.2p1 Debian 2+deb12u3``). The version
        verdict is None where the daemon does not reveal it, unless a version was
        reported anyway: then it must be right.
        """
        service_ok = (service or "").lower() == self.service
        product_ok = self.product.lower() in re.findall(r"[\w.+-]+", (product or "").lower())
        if self.expected_version is None and not version:
            return service_ok, product_ok, None
        version_ok = (version or "").split()[:1] == [self.upstream_version]
        return service_ok, product_ok, version_ok


# -- packages ---------------------------------------------------------------------------------


def _installed(marker: str) -> bool:
    return bool(glob.glob(marker))


def missing_packages() -> list[str]:
    return [pkg for pkg, marker in PACKAGES.items() if not _installed(marker)]


def ensure_packages() -> str | None:
    """Install the daemons' packages if needed; None when ready, else why not.

    Needs root (for installing and for running the daemons) and apt-get (only when
    something is missing). Writes a ``policy-rc.d`` that exits 101 first, so that no
    package starts its service with the packaged configuration.
    """
    global _apt_updated
    if os.geteuid() != 0:
        return "needs root: installs Debian packages and runs sshd, vsftpd and PostgreSQL as root"
    missing = missing_packages()
    if not missing:
        return None
    if shutil.which("apt-get") is None:
        return f"no apt-get to install Debian packages {' '.join(missing)}"
    POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
    POLICY_RC_D.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        done = subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return f"apt-get update failed: {done.stderr.strip()[-300:]}"
        _apt_updated = True
    for pkg in missing:
        error = _apt_install(pkg, env)
        if error:
            return error
    still = missing_packages()
    return f"installed, but still missing: {' '.join(still)}" if still else None


def _apt_install(pkg: str, env: dict[str, str]) -> str | None:
    argv = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", pkg]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return f"apt-get install {pkg} failed: {done.stderr.strip()[-300:]}"
    return None


def package_of(path: str) -> str:
    """The Debian package that installed ``path`` (``dpkg -S``)."""
    out = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].split(":", 1)[0].strip()


def package_version(pkg: str) -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def upstream_version(debian_version: str) -> str:
    """``1:9.2p1-2+deb12u3`` -> ``9.2p1``; ``5:7.0.15-1~deb12u1`` -> ``7.0.15``.

    Drops the epoch, the Debian revision and repacking suffixes (``+dfsg``, ``~rc``).
    """
    version = debian_version.split(":", 1)[-1]
    version = version.rsplit("-", 1)[0] if "-" in version else version
    return re.split(r"[+~]", version)[0]


def _binary(marker: str) -> str:
    found = sorted(glob.glob(marker), key=lambda p: [int(n) for n in re.findall(r"\d+", p)])
    if not found:
        raise DaemonError(f"{marker} is not installed: run ensure_packages() (as root, with apt-get)")
    return found[-1]


# -- running ------------------------------------------------------------------------------------


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Return once 127.0.0.1:port accepts a connection; raise if the process exits first."""
    name = Path(str(proc.args[0] if isinstance(proc.args, list) else proc.args)).name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DaemonError(f"{name} exited with {proc.returncode} before listening on "
                              f"{HOST}:{port}:\n{_tail(log)}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise DaemonError(f"{name} did not listen on {HOST}:{port} within {timeout:.0f}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Stop the daemon with its own shutdown signal, then anything left in its session."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Children (nginx workers, sshd/vsftpd per-connection processes) share the session.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def _run(argv: list[str], *, port: int, log: Path, stop_signal: int = signal.SIGTERM,
         user: str | None = None, errors_on_stdin: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        stdin = out if errors_on_stdin else subprocess.DEVNULL
        proc = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, user=user, group=user)
    try:
        wait_for_port(port, proc, log, START_TIMEOUT)
        yield proc
    finally:
        _stop(proc, stop_signal)


@contextlib.contextmanager
def _workdir(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"pentora-{name}-") as tmp:
        yield Path(tmp)


def _daemon(name: str, marker: str, port: int, log: Path, *, service: str, product: str,
            reveals_version: bool = True) -> Daemon:
    binary = _binary(marker)
    package = package_of(binary)  # not its target: /usr/bin/redis-server links into redis-tools
    return Daemon(name=name, port=port, service=service, product=product, package=package,
                  package_version=package_version(package), reveals_version=reveals_version, log=log)


# -- the daemons --------------------------------------------------------------------------------


@contextlib.contextmanager
def sshd(extra_config: str = "") -> Iterator[Daemon]:
    """OpenSSH's sshd: a generated ed25519 host key, no logins, ``UseDNS no``; ``extra_config``
    lines are appended (e.g. ``KexAlgorithms +diffie-hellman-group1-sha1``)."""
    binary = _binary(PACKAGES["openssh-server"])
    with _workdir("sshd") as tmp:
        port, key, log = free_port(), tmp / "ssh_host_ed25519_key", tmp / "sshd.log"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        config = tmp / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress {HOST}\nHostKey {key}\nPidFile {tmp}/sshd.pid\n"
            "UseDNS no\nUsePAM no\nPermitRootLogin no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nAuthorizedKeysFile none\nLogLevel INFO\n" + extra_config)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation chroot
        with _run([binary, "-D", "-e", "-f", str(config)], port=port, log=log):
            yield _daemon("sshd", PACKAGES["openssh-server"], port, log, service="ssh", product="OpenSSH")


@contextlib.contextmanager
def nginx(tls: tuple[str, str] | None = None, tls_directives: str = "") -> Iterator[Daemon]:
    """nginx with a tmp prefix, one worker, ``server_tokens on`` (its version in ``Server:``).

    With ``tls`` (certificate chain file, key file) a second server block serves HTTPS on
    ``Daemon.tls_port``; ``tls_directives`` go into it (``ssl_protocols``, ``ssl_ciphers``).
    """
    binary = _binary(PACKAGES["nginx"])
    with _workdir("nginx") as tmp:
        port, log = free_port(), tmp / "error.log"
        tls_port = free_port() if tls else None
        https = (f"  server {{\n    listen {HOST}:{tls_port} ssl;\n    server_name localhost;\n"
                 f"    ssl_certificate {tls[0]};\n    ssl_certificate_key {tls[1]};\n    {tls_directives}\n"
                 "    location / { return 200 \"tls\\n\"; }\n  }\n") if tls else ""
        temps = "\n".join(f"  {kind}_temp_path {tmp}/{kind};"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        config = tmp / "nginx.conf"
        config.write_text(
            f"worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {log} info;\n"
            "events { worker_connections 64; }\n"
            "http {\n  access_log off;\n  server_tokens on;\n" + temps + "\n"
            f"  server {{\n    listen {HOST}:{port};\n    server_name localhost;\n"
            "    location / {\n      default_type text/html;\n"
            '      return 200 "<html><head><title>Welcome to nginx!</title></head>'
            '<body><h1>Welcome to nginx!</h1></body></html>\\n";\n'
            "    }\n  }\n" + https + "}\n")
        argv = [binary, "-p", str(tmp), "-c", str(config), "-e", str(log), "-g", "daemon off;"]
        with _run(argv, port=port, log=tmp / "nginx.out", stop_signal=signal.SIGQUIT):
            # nginx binds every listen socket before it serves: the plain port up means both are.
            daemon = _daemon("nginx", PACKAGES["nginx"], port, log, service="http", product="nginx")
            yield dataclasses.replace(daemon, tls_port=tls_port)


@contextlib.contextmanager
def redis() -> Iterator[Daemon]:
    """redis-server in the foreground: no persistence, protected mode, tmp working dir."""
    binary = _binary(PACKAGES["redis-server"])
    with _workdir("redis") as tmp:
        port, log = free_port(), tmp / "redis.log"
        argv = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--protected-mode", "yes", "--dir", str(tmp), "--logfile", str(log)]
        with _run(argv, port=port, log=log):
            yield _daemon("redis", PACKAGES["redis-server"], port, log, service="redis", product="Redis")


@contextlib.contextmanager
def vsftpd(anonymous: bool = False) -> Iterator[Daemon]:
    """vsftpd in standalone mode, local logins through PAM as Debian's default, no lookups;
    with ``anonymous``, read-only anonymous logins too (an empty, root-owned ``anon_root``)."""
    binary = _binary(PACKAGES["vsftpd"])
    with _workdir("vsftpd") as tmp:
        port, log = free_port(), tmp / "vsftpd.log"
        empty, anon = tmp / "empty", tmp / "anon"
        empty.mkdir(mode=0o755)
        anon.mkdir(mode=0o755)
        anon_config = f"anonymous_enable=YES\nanon_root={anon}\nno_anon_password=NO\n" if anonymous \
            else "anonymous_enable=NO\n"
        config = tmp / "vsftpd.conf"
        # Debian's vsftpd has no reverse_lookup_enable (a Red Hat patch, an unknown option
        # here): it never resolves clients' names unless tcp_wrappers is on, so that is off.
        # isolate/seccomp: the per-session network namespace and seccomp filter can fail in
        # containers ("500 OOPS"); they change nothing a scanner sees.
        config.write_text(
            f"listen=YES\nlisten_ipv6=NO\nlisten_address={HOST}\nlisten_port={port}\nbackground=NO\n"
            "tcp_wrappers=NO\n" + anon_config + "local_enable=YES\nwrite_enable=NO\n"
            f"pam_service_name=vsftpd\nsecure_chroot_dir={empty}\nxferlog_enable=NO\n"
            f"vsftpd_log_file={log}\nisolate=NO\nisolate_network=NO\nseccomp_sandbox=NO\n")
        config.chmod(0o600)
        # vsftpd writes its start-up errors ("500 OOPS: ...") to fd 0, the socket under inetd.
        with _run([binary, str(config)], port=port, log=tmp / "vsftpd.out", errors_on_stdin=True):
            yield _daemon("vsftpd", PACKAGES["vsftpd"], port, tmp / "vsftpd.out", service="ftp",
                          product="vsftpd")


@contextlib.contextmanager
def postgresql() -> Iterator[Daemon]:
    """PostgreSQL: a fresh cluster (initdb, as the ``postgres`` user) with Debian's usual auth.

    Host connections need a SCRAM password, as in a packaged cluster, so the server says
    nothing of its version before authentication.
    """
    binary = _binary(PACKAGES["postgresql"])
    bindir = Path(binary).parent
    with _workdir("postgresql") as tmp:
        shutil.chown(tmp, "postgres", "postgres")
        port, data, log = free_port(), tmp / "data", tmp / "postgres.log"
        log.touch()
        shutil.chown(log, "postgres", "postgres")
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "--auth-local=peer", "--auth-host=scram-sha-256", "--no-sync"]
        done = subprocess.run(initdb, capture_output=True, text=True, user="postgres", group="postgres",
                              cwd=tmp)
        if done.returncode != 0:
            raise DaemonError(f"initdb failed: {done.stderr.strip()[-500:]}")
        argv = [binary, "-D", str(data), "-k", str(tmp), "-p", str(port),
                "-c", f"listen_addresses={HOST}", "-c", "log_hostname=off", "-c", "fsync=off",
                "-c", "logging_collector=off", "-c", "shared_buffers=16MB"]
        with _run(argv, port=port, log=log, stop_signal=signal.SIGINT, user="postgres"):
            yield _daemon("postgresql", PACKAGES["postgresql"], port, log, service="postgresql",
                          product="PostgreSQL", reveals_version=False)


@contextlib.contextmanager
def exim() -> Iterator[Daemon]:
    """Exim 4 as Debian builds it, in the foreground: no lookups (names, ident), no TLS, every
    recipient refused, spool and logs in a tmp dir owned by ``Debian-exim``."""
    binary = _binary(PACKAGES["exim4-daemon-light"])
    with _workdir("exim") as tmp:
        port, spool, logs = free_port(), tmp / "spool", tmp / "log"
        tmp.chmod(0o711)  # Exim works as Debian-exim: it must reach its spool and logs
        for folder in (spool, logs):
            folder.mkdir()
            shutil.chown(folder, "Debian-exim", "Debian-exim")
        config = tmp / "exim.conf"
        # A fixed primary_hostname: Exim would otherwise look its own name up. Root may name
        # its own config with -C; Exim still drops to exim_user for each connection.
        config.write_text(
            f"primary_hostname = mail.pentora.test\ndaemon_smtp_ports = {port}\n"
            f"local_interfaces = {HOST}\nexim_user = Debian-exim\nexim_group = Debian-exim\n"
            "never_users = root\nkeep_environment =\nhost_lookup =\nrfc1413_hosts =\n"
            f"tls_advertise_hosts =\nspool_directory = {spool}\nlog_file_path = {logs}/%slog\n"
            f"pid_file_path = {tmp}/exim.pid\nacl_smtp_rcpt = refuse\n"
            "begin acl\nrefuse:\n  deny message = relay not permitted\n")
        with _run([binary, "-bdf", "-C", str(config)], port=port, log=tmp / "exim.out"):
            yield _daemon("exim", PACKAGES["exim4-daemon-light"], port, logs / "mainlog",
                          service="smtp", product="Exim")


@contextlib.contextmanager
def apache2() -> Iterator[Daemon]:
    """Apache httpd (Debian's apache2) in the foreground with a config of its own: the event
    MPM, one small process, ``ServerTokens OS`` as Debian ships it (``Apache/2.4.x (Debian)``),
    a static page; no name lookups."""
    binary = _binary(PACKAGES["apache2"])
    modules = Path("/usr/lib/apache2/modules")
    with _workdir("apache2") as tmp:
        port, log, docs = free_port(), tmp / "error.log", tmp / "htdocs"
        tmp.chmod(0o711)  # the workers run as www-data: they must reach the page
        docs.mkdir(mode=0o755)
        (docs / "index.html").write_text("<html><head><title>pentora test</title></head>"
                                         "<body>It works</body></html>\n")
        config = tmp / "httpd.conf"
        loads = "".join(f"LoadModule {name}_module {modules}/mod_{name}.so\n"
                        for name in ("mpm_event", "authz_core", "mime", "dir"))
        config.write_text(
            f"ServerRoot {tmp}\nServerName localhost\nListen {HOST}:{port}\nPidFile {tmp}/httpd.pid\n"
            f"DefaultRuntimeDir {tmp}\n{loads}User www-data\nGroup www-data\nErrorLog {log}\n"
            "LogLevel info\nHostnameLookups Off\nServerTokens OS\n"
            "StartServers 1\nServerLimit 2\nThreadsPerChild 25\nMaxRequestWorkers 50\n"
            "MinSpareThreads 5\nMaxSpareThreads 50\n"
            "TypesConfig /dev/null\nAddType text/html .html\n"
            f"DocumentRoot {docs}\nDirectoryIndex index.html\n"
            "<Directory />\n  Require all granted\n</Directory>\n")
        argv = [binary, "-f", str(config), "-DFOREGROUND"]
        with _run(argv, port=port, log=tmp / "apache2.out"):
            yield _daemon("apache2", PACKAGES["apache2"], port, log, service="http", product="Apache")


DAEMONS: dict[str, Callable[[], contextlib.AbstractContextManager[Daemon]]] = {
    "sshd": sshd, "nginx": nginx, "redis": redis, "vsftpd": vsftpd, "postgresql": postgresql,
}


@contextlib.contextmanager
def all_daemons() -> Iterator[list[Daemon]]:
    """Start every daemon (in DAEMONS order) and stop them all afterwards."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(start()) for start in DAEMONS.values()]


# -- scanning them with pentora -----------------------------------------------------------------


def missing_modules(python: str = sys.executable) -> list[str]:
    """Module types of the service-scan profile that ``pentora modules list`` lacks."""
    done = subprocess.run([python, "-m", "pentora", "modules", "list"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    listed = {line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()}
    return [m for m in SERVICE_SCAN_MODULES if m not in listed]


def pentora_scan(ports: list[int], out: Path, python: str = sys.executable, timeout: float = 300,
                 extra: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """``pentora scan --profile service-scan`` of 127.0.0.1 on exactly ``ports``, JSONL to ``out``.

    ``extra`` goes before the scan's own options (e.g. ``--hooks FILE``).
    """
    argv = [python, "-m", "pentora", "scan", *(extra or []), "--targets", HOST,
            "-p", ",".join(map(str, ports)), "--profile", "service-scan", "-o", str(out)]
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def jsonl_records(path: Path, kind: str) -> list[dict[str, Any]]:
    """The lines of one ``kind`` in a JSONL output file."""
    if not path.exists():
        return []
    lines = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [r for r in lines if r.get("kind") == kind]
