"""One SSH login of ``package_inventory``: the host key checked against a known_hosts
file (trust on first use), key or password authentication, and only the read-only
commands of ``COMMANDS``, their output bounded in bytes, lines and time.

paramiko does the protocol. Under the CLI's ``gevent.monkey.patch_all()`` its socket waits
and its transport thread are greenlets and it runs in the node's pool like any module
code; where the standard library is not patched (a library caller, a test process), its
blocking reads and its thread would stall the event loop, so ``run_blocking`` moves the
whole login onto gevent's thread pool.

Secrets (the password, the key file's text) are read when the login needs them and never
put in a message: every error is rewritten here (``LoginError``), and what a server or
paramiko said is passed through ``Scrubber`` first. paramiko's own logger is silenced
(its transport thread logs server messages and tracebacks), its errors being reported
here, cleaned.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gevent
from gevent import monkey

from pentora import clean_text

T = TypeVar("T")

OS_RELEASE = "cat /etc/os-release"
DPKG_QUERY = ("dpkg-query -W -f '${Package}\\t${Version}\\t${source:Package}\\t${source:Version}"
              "\\t${Architecture}\\t${db:Status-Abbrev}\\n'")
RPM_QUERY = "rpm -qa --qf '%{NAME}\\t%{EPOCH}\\t%{VERSION}-%{RELEASE}\\t%{SOURCERPM}\\t%{ARCH}\\n'"
APK_LIST = "apk list --installed"
# The only commands a login may run: each reads, none writes, none takes an argument
# from a target or a config.
COMMANDS = {"os-release": OS_RELEASE, "dpkg": DPKG_QUERY, "rpm": RPM_QUERY, "apk": APK_LIST}
SHORT = {OS_RELEASE: OS_RELEASE, DPKG_QUERY: "dpkg-query -W", RPM_QUERY: "rpm -qa", APK_LIST: APK_LIST}
_ALLOWED = frozenset(COMMANDS.values())
NOT_FOUND = 127  # the shell's exit status for a command it cannot find

MAX_STDERR = 4096  # bytes of a command's stderr kept for its error message
_SLICE = 0.25  # seconds: a read waits at most this long before the deadline is checked
# A recorded host key type → the host key algorithms that prove it (RFC 8332).
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


class LoginError(Exception):
    """A host could not be inventoried; the message is clean (no secret, no terminal
    escape) and says what to do."""


class CommandNotAllowedError(LoginError):
    """A command outside ``COMMANDS``: it is never sent."""


class OutputRefusedError(LoginError):
    """A command's output went past a bound, or did not end in time."""


@dataclass(frozen=True)
class Limits:
    timeout: float  # connect, handshake, authentication, each wait for data
    command_time: float  # the whole of one command
    max_bytes: int
    max_lines: int


class Scrubber:
    """Takes secrets out of text that is about to be shown: the password, and every line
    of the key file long enough to be key material."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: object, limit: int = 200) -> str:
        out = str(text)
        for secret in self.secrets:
            out = out.replace(secret, "[secret]")
        return clean_text(out, limit)


@dataclass(frozen=True)
class Auth:
    """How to log in: ``key`` an already loaded paramiko key, ``password`` from the
    environment; ``how`` names them by path and variable name only."""

    user: str
    key: Any = None
    key_path: str | None = None
    password: str | None = None
    password_env: str | None = None

    def __repr__(self) -> str:  # a traceback or a debugger shows no secret
        return f"Auth(user={self.user!r}, key_path={self.key_path!r}, password_env={self.password_env!r})"

    def how(self) -> str:
        ways = [f"the key {self.key_path}"] if self.key is not None else []
        ways += [f"the password in ${self.password_env}"] if self.password is not None else []
        return " or ".join(ways)


def cooperative() -> bool:
    """Whether paramiko's sockets and transport thread are gevent's (``patch_all``)."""
    return monkey.is_module_patched("socket") and monkey.is_module_patched("threading")


def run_blocking(fn: Any) -> Any:
    """``fn()`` here when sockets and threads are cooperative, else on gevent's thread
    pool, so that the event loop runs while it waits."""
    if cooperative():
        return fn()

    def caught() -> tuple[bool, Any]:
        # The pool's hub prints a traceback for an exception escaping the thread: it is
        # carried back and raised here instead.
        try:
            return True, fn()
        except Exception as e:
            return False, e

    ok, value = gevent.get_hub().threadpool.apply(caught)
    if not ok:
        raise value
    return value


def quiet_paramiko() -> None:
    log = logging.getLogger("paramiko")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())


def fingerprint(key: Any) -> str:
    """``ssh-ed25519 SHA256:…``, as ``ssh-keygen -l`` shows a key."""
    return f"{key.get_name()} {key.fingerprint}"


class KnownHosts:
    """An OpenSSH known_hosts file: ``[HOST]:PORT TYPE KEY`` lines (``HOST`` on port 22)."""

    def __init__(self, path: Path, trust_on_first_use: bool) -> None:
        self.path = path
        self.trust_on_first_use = trust_on_first_use
        self.lock = threading.Lock()  # created when the scan runs: patched or not, as the logins

    @staticmethod
    def name(host: str, port: int) -> str:
        return host if port == 22 else f"[{host}]:{port}"

    def recorded(self, host: str, port: int) -> dict[str, Any]:
        """The keys the file holds for host:port, by type (hashed names too)."""
        import paramiko

        keys = paramiko.HostKeys()
        try:
            keys.load(str(self.path))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as e:
            raise LoginError(f"cannot read the known_hosts file {self.path}: "
                             f"{getattr(e, 'strerror', None) or e}; choose a readable file "
                             "(known_hosts)") from None
        return dict(keys.lookup(self.name(host, port)) or {})

    def check(self, host: str, port: int, key: Any) -> str | None:
        """None when the file vouches for ``key``; a note when it was recorded now;
        LoginError when it differs from the recorded one or is unknown without TOFU."""
        with self.lock:
            recorded = self.recorded(host, port)
            old = recorded.get(key.get_name())
            if old is not None and old.asbytes() == key.asbytes():
                return None
            if recorded:
                before = ", ".join(fingerprint(k) for k in recorded.values())
                raise LoginError(
                    f"the host key of {host}:{port} has changed: {self.path} holds {before}, "
                    f"the server showed {fingerprint(key)}. Someone may be intercepting the "
                    f"connection; if the host was reinstalled, remove its line with "
                    f"`ssh-keygen -R '{self.name(host, port)}' -f {self.path}` and scan again")
            if not self.trust_on_first_use:
                raise LoginError(
                    f"the host key of {host}:{port} ({fingerprint(key)}) is not in {self.path} "
                    f"and trust_on_first_use is off: add it (`ssh-keyscan -p {port} {host} >> "
                    f"{self.path}`, after checking it) or turn trust_on_first_use on")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                with self.path.open("a", encoding="ascii") as f:
                    f.write(f"{self.name(host, port)} {key.get_name()} {key.get_base64()}\n")
            except OSError as e:  # not logged in: a key that cannot be recorded cannot be enforced
                raise LoginError(f"cannot record the host key of {host}:{port} in {self.path}: "
                                 f"{e.strerror or e}; choose a writable file (known_hosts)") from None
            return f"recorded the host key of {host}:{port} ({fingerprint(key)}) in {self.path}"

    def algorithms(self, host: str, port: int) -> list[str]:
        """The host key algorithms to offer: those of the recorded keys, so that the server
        proves the key on file rather than another one it also has."""
        out: list[str] = []
        for kind in self.recorded(host, port):
            out += [a for a in _ALGORITHMS.get(kind, (kind,)) if a not in out]
        return out


class Runner:
    """A logged-in SSH connection that runs allow-listed commands only."""

    def __init__(self, transport: Any, where: str, limits: Limits, scrub: Scrubber) -> None:
        self.transport, self.where, self.limits, self.scrub = transport, where, limits, scrub

    def run(self, command: str) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of ``command``, one of ``COMMANDS``."""
        if command not in _ALLOWED:
            raise CommandNotAllowedError(f"{self.scrub(command, 80)!r} is not one of the read-only "
                                         f"commands package_inventory runs ({', '.join(sorted(COMMANDS))})")
        name = SHORT[command]
        channel = self.transport.open_session(timeout=self.limits.timeout)
        try:
            channel.settimeout(_SLICE)
            channel.exec_command(command)
            out, err = self._read(channel, name)
            status = self._status(channel, name)
        finally:
            channel.close()
        return status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def _read(self, channel: Any, name: str) -> tuple[bytes, bytes]:
        limits = self.limits
        deadline = time.monotonic() + limits.command_time
        out, err, lines = bytearray(), bytearray(), 0
        while True:
            if time.monotonic() > deadline:
                raise OutputRefusedError(f"{self.where}: '{name}' did not finish within "
                                         f"{limits.command_time:g}s; its output is refused")
            if channel.recv_stderr_ready():  # one chunk a turn: a flood of it meets the deadline
                chunk = channel.recv_stderr(4096)
                err += chunk[:max(0, MAX_STDERR - len(err))]
            try:
                chunk = channel.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return bytes(out), bytes(err)
            out += chunk
            lines += chunk.count(b"\n")
            if len(out) > limits.max_bytes:
                raise OutputRefusedError(f"{self.where}: the output of '{name}' passed "
                                         f"{limits.max_bytes} bytes (max_output); it is refused")
            if lines > limits.max_lines:
                raise OutputRefusedError(f"{self.where}: the output of '{name}' passed "
                                         f"{limits.max_lines} lines (max_lines); it is refused")

    def _status(self, channel: Any, name: str) -> int:
        if not channel.status_event.wait(self.limits.timeout):
            raise OutputRefusedError(f"{self.where}: '{name}' closed its output but gave no exit "
                                     f"status within {self.limits.timeout:g}s")
        return int(channel.exit_status)


@contextmanager
def login(host: str, port: int, auth: Auth, known: KnownHosts, limits: Limits,
          scrub: Scrubber, notes: list[tuple[str, str]]) -> Iterator[Runner]:
    """A runner on host:port, its host key checked, authenticated; LoginError otherwise.
    A note (a recorded host key) is appended to ``notes``."""
    import paramiko

    where = f"{host}:{port}"
    transport = None
    try:
        sock = socket.create_connection((host, port), timeout=limits.timeout)
        transport = paramiko.Transport(sock)
        transport.banner_timeout = transport.handshake_timeout = limits.timeout
        transport.auth_timeout = limits.timeout
        offered = known.algorithms(host, port)
        if offered:
            options = transport.get_security_options()
            options.key_types = [k for k in options.key_types if k in offered] or offered
        try:
            transport.start_client(timeout=limits.timeout)
        except paramiko.SSHException as e:
            if offered and "host key" in str(e):
                # It has none of the recorded key types any more: ask for any key, so that
                # the refusal names the one it now shows beside the recorded one.
                known.check(host, port, _any_host_key(host, port, limits))
            raise
        note = known.check(host, port, transport.get_remote_server_key())
        if note:
            notes.append(("info", note))
        _authenticate(transport, auth, where)
        yield Runner(transport, where, limits, scrub)
    except LoginError:
        raise
    except Exception as e:  # paramiko's and the socket's: rewritten, cleaned of secrets
        raise LoginError(f"{where}: {_why(e, auth, scrub, limits)}") from None
    finally:
        if transport is not None:
            transport.close()


def _any_host_key(host: str, port: int, limits: Limits) -> Any:
    """The host key the server proves when offered every type paramiko knows (no login)."""
    import paramiko

    sock = socket.create_connection((host, port), timeout=limits.timeout)
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = transport.handshake_timeout = limits.timeout
        transport.start_client(timeout=limits.timeout)
        return transport.get_remote_server_key()
    finally:
        transport.close()


def _authenticate(transport: Any, auth: Auth, where: str) -> None:
    import paramiko

    failed: Exception | None = None
    if auth.key is not None:
        try:
            transport.auth_publickey(auth.user, auth.key)
        except paramiko.AuthenticationException as e:
            failed = e
    if not transport.is_authenticated() and auth.password is not None:
        transport.auth_password(auth.user, auth.password)
    elif failed is not None:
        raise failed
    if not transport.is_authenticated():
        raise LoginError(f"{where}: the server asks for more than {auth.how()} to log in "
                         f"as '{clean_text(auth.user)}' (several authentication steps)")


def _why(e: Exception, auth: Auth, scrub: Scrubber, limits: Limits) -> str:
    import paramiko

    user = clean_text(auth.user)
    if isinstance(e, paramiko.BadAuthenticationType):
        allowed = ", ".join(scrub(t, 40) for t in (e.allowed_types or [])[:8]) or "none"
        return (f"the server does not accept {auth.how()} for '{user}' (it accepts: {allowed}); "
                "give --ssh-key or --ssh-password-env accordingly")
    if isinstance(e, paramiko.AuthenticationException):
        return f"logging in as '{user}' with {auth.how()} was refused: check the user and the credential"
    if isinstance(e, (TimeoutError, socket.timeout)):
        return f"no answer within {limits.timeout:g}s (timeout)"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, EOFError):
        return "the server closed the connection"
    if isinstance(e, OSError):
        return f"cannot connect: {scrub(e.strerror or e)}"
    if isinstance(e, paramiko.SSHException):
        return f"SSH error: {scrub(e)}"
    return f"{type(e).__name__}: {scrub(e)}"
