"""``service_checks``: safe misconfiguration checks of FTP, Redis and memcached.

Reads ``service_fingerprints`` and, for each port fingerprinted as one of these services,
has one short conversation with it; findings go to ``vulnerabilities`` (source
``check:services``):

- ``PENTORA-FTP-ANONYMOUS``: ``USER anonymous`` / ``PASS <email-like string>`` is
  answered ``230`` (logged in); then ``QUIT``. Nothing is listed, read or written.
- ``PENTORA-REDIS-NOAUTH``: ``PING`` and ``INFO server`` are answered without ``NOAUTH``
  (nor protected mode's ``DENIED``); then ``QUIT``.
- ``PENTORA-MEMCACHED-OPEN``: ``version`` or ``stats`` is answered; then ``quit``.

The checks are safe: read-only commands, no password but the anonymous-FTP convention,
one connection per port, every read bounded by ``timeout`` and ``MAX_BYTES``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import voluptuous as vol
from gevent import socket
from pentora_plugins.kit.cvss import base_score
from pentora_plugins.kit.findings import add_vulnerabilities, severity_of
from pentora_plugins.kit.net.fds import open_socket
from pentora_plugins.kit.net.grab import Conn, tls_context
from pentora_plugins.kit.quality import ACTIVE, QUALITY
from pentora_plugins.kit.records import Vulnerability, address_key
from pentora_plugins.kit.records import field_of as _get
from voluptuous import Optional

from pentora import Module, NodeContext
from pentora.schema import Duration

SOURCE = "check:services"
MAX_BYTES = 65536
IDLE = 0.3  # seconds of silence after a partial answer before giving up on the rest
_FTP_REPLY = re.compile(rb"(?:\A|\n)(\d{3}) [^\r\n]*\r?\n")
_RESP_LINE = re.compile(rb"\r\n")


@dataclass(frozen=True)
class Check:
    id: str
    service: str
    title: str
    vector: str
    references: tuple[str, ...]

    @property
    def cvss(self) -> float:
        return base_score(self.vector)


CHECKS = {
    "ftp_anonymous": Check(
        "PENTORA-FTP-ANONYMOUS", "ftp", "FTP server accepts anonymous logins",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N",
        ("https://www.rfc-editor.org/rfc/rfc1635", "https://cwe.mitre.org/data/definitions/284.html")),
    "redis_noauth": Check(
        "PENTORA-REDIS-NOAUTH", "redis", "Redis answers commands without authentication",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        ("https://redis.io/docs/latest/operate/oss_and_stack/management/security/",
         "https://cwe.mitre.org/data/definitions/306.html")),
    "memcached_open": Check(
        "PENTORA-MEMCACHED-OPEN", "memcached", "memcached answers without authentication",
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:L/A:L",
        ("https://github.com/memcached/memcached/wiki/SASLHowto",
         "https://cwe.mitre.org/data/definitions/306.html")),
}


class Session:
    """One bounded conversation with a port (plain TCP, or TLS when fingerprinted so)."""

    def __init__(self, host: str, port: int, tls: bool, timeout: float) -> None:
        self.timeout = timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = open_socket(family)  # waits out EMFILE: a busy process is not the service's fault
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
            if tls:
                sock = tls_context().wrap_socket(sock)
        except (OSError, ValueError):
            sock.close()
            raise
        self.conn = Conn(sock)

    def ask(self, data: bytes, until: re.Pattern[bytes] | None) -> bytes:
        if data and not self.conn.send(data):
            return b""
        return self.conn.read(self.timeout, IDLE, MAX_BYTES, until)

    def close(self) -> None:
        self.conn.close()


def ftp_reply(data: bytes) -> tuple[int | None, str]:
    """The code and the text of the last complete FTP reply in ``data``."""
    found = list(_FTP_REPLY.finditer(data))
    if not found:
        return None, ""
    m = found[-1]
    return int(m.group(1)), m.group(0).decode("latin-1").strip()


def check_ftp(s: Session, password: str) -> str | None:
    code, greeting = ftp_reply(s.ask(b"", _FTP_REPLY))
    if code != 220:
        return None
    code, user = ftp_reply(s.ask(b"USER anonymous\r\n", _FTP_REPLY))
    said = [f"USER anonymous → {user}"]
    if code == 331:
        code, text = ftp_reply(s.ask(f"PASS {password}\r\n".encode(), _FTP_REPLY))
        said.append(f"PASS {password} → {text}")
    s.ask(b"QUIT\r\n", _FTP_REPLY)
    return "; ".join(said) if code == 230 else None


def _redis_refused(answer: bytes) -> bool:
    return answer.startswith((b"-NOAUTH", b"-DENIED", b"-WRONGPASS")) or not answer


def check_redis(s: Session, _: str) -> str | None:
    pong = s.ask(b"*1\r\n$4\r\nPING\r\n", _RESP_LINE)
    if _redis_refused(pong) or not pong.startswith(b"+PONG"):
        return None
    info = s.ask(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n", re.compile(rb"\r\n\r\n\Z|\A-[^\r]*\r\n"))
    s.ask(b"*1\r\n$4\r\nQUIT\r\n", _RESP_LINE)
    if _redis_refused(info):
        return None
    version = re.search(rb"redis_version:([\w.]+)", info)
    shown = f" (redis_version:{version.group(1).decode()})" if version else ""
    return f"PING → +PONG; INFO server answered{shown} without authentication"


def check_memcached(s: Session, _: str) -> str | None:
    said = []
    version = s.ask(b"version\r\n", _RESP_LINE)
    if version.startswith(b"VERSION "):
        said.append(f"version → {version.decode('latin-1').strip()}")
    stats = s.ask(b"stats\r\n", re.compile(rb"(?:\A|\n)(?:END|ERROR|CLIENT_ERROR[^\r]*)\r\n"))
    if stats.startswith(b"STAT "):
        items = re.search(rb"STAT curr_items (\d+)", stats)
        said.append("stats answered" + (f" (curr_items {items.group(1).decode()})" if items else ""))
    s.conn.send(b"quit\r\n")  # the server hangs up: nothing to wait for
    return "; ".join(said) or None


RUNNERS: dict[str, Callable[[Session, str], str | None]] = {
    "ftp_anonymous": check_ftp, "redis_noauth": check_redis, "memcached_open": check_memcached,
}


def run_check(name: str, target: Any, timeout: float, password: str) -> Vulnerability | None:
    """Run one check against one fingerprinted port; a finding, or None."""
    check = CHECKS[name]
    try:
        session = Session(target.host, target.port, bool(target.tls), timeout)
    except (OSError, ValueError):
        return None
    try:
        evidence = RUNNERS[name](session, password)
    except OSError:
        evidence = None
    finally:
        session.close()
    if evidence is None:
        return None
    return Vulnerability(host=target.host, port=target.port, id=check.id, title=check.title,
                         severity=severity_of(check.cvss), cvss=check.cvss,
                         evidence=f"{evidence} [{check.vector}]",
                         references=list(check.references), source=SOURCE,
                         method=ACTIVE, quality=QUALITY[ACTIVE])


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    tls: bool


def _targets(records: Any, checks: list[str]) -> list[tuple[str, Target]]:
    """(check, port) pairs for the fingerprints of the checks' services, sorted, once each."""
    wanted = {CHECKS[c].service: c for c in checks}
    out: dict[tuple[str, str, int], tuple[str, Target]] = {}
    for r in records or ():
        name = wanted.get(str(_get(r, "service") or ""))
        host, port = _get(r, "host"), _get(r, "port")
        if name and host and port and (_get(r, "protocol") or "tcp") == "tcp":
            target = Target(str(host), int(port), bool(_get(r, "tls")))
            out.setdefault((name, target.host, target.port), (name, target))
    return [out[k] for k in sorted(out, key=lambda k: (address_key(k[1]), k[2], k[0]))]


class ServiceChecks(Module):
    """Safe checks for anonymous FTP, unauthenticated Redis and open memcached."""

    module_type = "service_checks"
    description = "anonymous FTP, Redis without authentication, memcached open (safe checks)"
    requires = ("service_fingerprints",)
    produces = ("vulnerabilities",)
    config_schema = {
        Optional("checks", default=list(CHECKS),
                 description=f"checks to run, among {', '.join(CHECKS)}"): [vol.In(list(CHECKS))],
        Optional("timeout", default="5s",
                 description="connect timeout, and the wait for each answer"): Duration(),
        Optional("anonymous_password", default="anonymous@example.com",
                 description="the email-like string anonymous FTP is given as password"):
            vol.All(str, vol.Match(r"^[^\s@]+@[^\s@]+$", msg="expected an email-like string")),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        targets = _targets(ctx.get("service_fingerprints"), config["checks"])
        done = 0

        def one(item: tuple[str, Target]) -> Vulnerability | None:
            nonlocal done
            found = run_check(item[0], item[1], config["timeout"], config["anonymous_password"])
            done += 1
            ctx.progress(done, len(targets))
            return found

        ctx.progress(0, len(targets))  # the planned checks, before the first ends (--progress)
        found = [v for v in ctx.map(one, targets) if v is not None]
        add_vulnerabilities(ctx, found)
