"""service_checks against protocol servers on 127.0.0.1: anonymous FTP, Redis with and
without authentication, memcached. Each server records what it was sent, so the tests also
show that the checks only log in anonymously, ask read-only questions and say goodbye."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pentora_plugins.checks
import pentora_plugins.engine
import pytest

from pentora import DagBuilder, Orchestrator, ValidationError
from pentora.testing import RecordCollector

Handler = Callable[[socket.socket], None]


def line_server(greeting: bytes, answers: Callable[[str], bytes | None],
                seen: list[str]) -> Handler:
    """A line-based server: ``answers(line)`` is sent back (None: hang up after nothing)."""
    def handle(conn: socket.socket) -> None:
        if greeting:
            conn.sendall(greeting)
        reader = conn.makefile("rb")
        for raw in reader:
            line = raw.decode("latin-1").rstrip("\r\n")
            seen.append(line)
            answer = answers(line)
            if answer is None:
                return
            conn.sendall(answer)
    return handle


def ftp(password_reply: bytes, greeting: bytes = b"220 (vsFTPd 3.0.3)\r\n",
        user_reply: bytes = b"331 Please specify the password.\r\n") -> tuple[Handler, list[str]]:
    seen: list[str] = []

    def answers(line: str) -> bytes | None:
        verb = line.split(" ", 1)[0].upper()
        if verb == "QUIT":
            seen.append("(closed)")
            return None
        return {"USER": user_reply, "PASS": password_reply}.get(verb, b"500 Unknown command.\r\n")

    return line_server(greeting, answers, seen), seen


def redis(refusal: bytes | None) -> tuple[Handler, list[str]]:
    """A RESP server: answers PING/INFO/QUIT, or ``refusal`` to everything."""
    seen: list[str] = []
    info = b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"

    def handle(conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        for raw in reader:
            if not raw.startswith(b"*"):
                continue
            words = [reader.readline() and reader.readline().rstrip(b"\r\n").decode()
                     for _ in range(int(raw[1:]))]
            seen.append(" ".join(words))
            if refusal is not None:
                conn.sendall(refusal)
            elif words[0].upper() == "PING":
                conn.sendall(b"+PONG\r\n")
            elif words[0].upper() == "INFO":
                conn.sendall(b"$%d\r\n%s\r\n" % (len(info), info))
            elif words[0].upper() == "QUIT":
                conn.sendall(b"+OK\r\n")
                return
            else:
                conn.sendall(b"-ERR unknown command\r\n")
    return handle, seen


def memcached(sasl: bool = False) -> tuple[Handler, list[str]]:
    seen: list[str] = []

    def answers(line: str) -> bytes | None:
        if line == "quit":
            return None
        if sasl:
            return b"CLIENT_ERROR unauthenticated\r\n"
        return {"version": b"VERSION 1.6.21\r\n",
                "stats": b"STAT pid 4242\r\nSTAT version 1.6.21\r\nSTAT curr_items 3\r\nEND\r\n"
                }.get(line, b"ERROR\r\n")

    return line_server(b"", answers, seen), seen


def goodbye_read(seen: list[str], last: str) -> list[str]:
    """``seen`` once the server's thread has read the client's goodbye ``last`` (the check
    sends it and hangs up without waiting: under load the thread may not have read it yet
    when the scan returns), or as it is after a hang guard of 5 s."""
    deadline = time.monotonic() + 5
    while (not seen or seen[-1] != last) and time.monotonic() < deadline:
        time.sleep(0.01)
    return seen


def fingerprint(port: int, service: str, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"host": host, "port": port, "protocol": "tcp", "service": service, "confidence": 0.9}


def run(fingerprints: list[dict[str, Any]], config: dict[str, Any] | None = None,
        recorder: RecordCollector | None = None) -> Any:
    orch = Orchestrator(plugins=[pentora_plugins.checks, pentora_plugins.engine,
                                 *([recorder] if recorder else [])],
                        autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("seed", "set", config={"values": {"service_fingerprints": fingerprints}})
                  .add_node("checks", "service_checks", ["seed"],
                            config={"timeout": "2s", **(config or {})}).build())
    result = orch.execute()
    assert result.ok, result.nodes["checks"].error
    return result


def ids(result: Any) -> dict[tuple[str, int | None], Any]:
    return {(v.id, v.port): v for v in result.context.get("vulnerabilities")}


def test_anonymous_ftp_is_found_and_nothing_else_is_sent(tcp_server) -> None:
    handler, seen = ftp(b"230 Login successful.\r\n")
    port = tcp_server(handler=handler).port
    recorder = RecordCollector()
    found = ids(run([fingerprint(port, "ftp")], recorder=recorder))
    v = found[("PENTORA-FTP-ANONYMOUS", port)]
    assert (v.host, v.cvss, v.severity, v.source) == ("127.0.0.1", 5.3, "medium", "check:services")
    assert (v.method, v.quality) == ("active", 95)  # it logged in: seen, not inferred
    assert v.evidence.startswith("USER anonymous → 331 Please specify the password.; "
                                 "PASS anonymous@example.com → 230 Login successful.")
    assert seen == ["USER anonymous", "PASS anonymous@example.com", "QUIT", "(closed)"]
    assert recorder.of("vulnerability") == [v]


def test_ftp_refusing_anonymous_is_not_reported(tcp_server) -> None:
    handler, seen = ftp(b"530 Login incorrect.\r\n")
    port = tcp_server(handler=handler).port
    assert ids(run([fingerprint(port, "ftp")])) == {}
    assert seen[:2] == ["USER anonymous", "PASS anonymous@example.com"] and "QUIT" in seen


def test_ftp_multiline_greeting_and_login_without_password(tcp_server) -> None:
    handler, seen = ftp(b"", greeting=b"220-Welcome\r\n220-to the archive\r\n220 ready\r\n",
                        user_reply=b"230 Anonymous access granted.\r\n")
    port = tcp_server(handler=handler).port
    v = ids(run([fingerprint(port, "ftp")], {"anonymous_password": "scan@pentora.test"}))[
        ("PENTORA-FTP-ANONYMOUS", port)]
    assert v.evidence.startswith("USER anonymous → 230 Anonymous access granted.")
    assert seen[:2] == ["USER anonymous", "QUIT"]  # no password sent when none is asked


def test_ftp_that_does_not_greet_220_is_left_alone(tcp_server) -> None:
    handler, seen = ftp(b"230 x\r\n", greeting=b"421 Too many connections.\r\n")
    port = tcp_server(handler=handler).port
    assert ids(run([fingerprint(port, "ftp")])) == {}
    assert seen == []


def test_redis_without_authentication(tcp_server) -> None:
    handler, seen = redis(None)
    port = tcp_server(handler=handler).port
    v = ids(run([fingerprint(port, "redis")]))[("PENTORA-REDIS-NOAUTH", port)]
    assert (v.cvss, v.severity) == (9.8, "critical")
    assert v.evidence.startswith("PING → +PONG; INFO server answered (redis_version:7.0.15) without "
                                 "authentication")
    assert goodbye_read(seen, "QUIT") == ["PING", "INFO server", "QUIT"]


@pytest.mark.parametrize("refusal", [b"-NOAUTH Authentication required.\r\n",
                                     b"-DENIED Redis is running in protected mode because protected "
                                     b"mode is enabled\r\n"])
def test_redis_that_refuses_is_not_reported(tcp_server, refusal: bytes) -> None:
    handler, seen = redis(refusal)
    port = tcp_server(handler=handler).port
    assert ids(run([fingerprint(port, "redis")])) == {}
    assert seen == ["PING"]


def test_memcached_open(tcp_server) -> None:
    handler, seen = memcached()
    port = tcp_server(handler=handler).port
    v = ids(run([fingerprint(port, "memcached")]))[("PENTORA-MEMCACHED-OPEN", port)]
    assert (v.cvss, v.severity) == (8.6, "high")
    assert v.evidence.startswith("version → VERSION 1.6.21; stats answered (curr_items 3)")
    assert goodbye_read(seen, "quit") == ["version", "stats", "quit"]


def test_memcached_with_sasl_is_not_reported(tcp_server) -> None:
    handler, _ = memcached(sasl=True)
    port = tcp_server(handler=handler).port
    assert ids(run([fingerprint(port, "memcached")])) == {}


def test_only_fingerprinted_services_are_contacted(tcp_server, closed_tcp_port: int) -> None:
    ftp_handler, ftp_seen = ftp(b"230 Login successful.\r\n")
    other = tcp_server(handler=ftp_handler)
    redis_handler, redis_seen = redis(None)
    redis_port = tcp_server(handler=redis_handler).port
    result = run([fingerprint(other.port, "http"), fingerprint(closed_tcp_port, "ftp"),
                  fingerprint(redis_port, "redis")], {"checks": ["ftp_anonymous"]})
    assert ids(result) == {}
    assert other.connections == 0 and ftp_seen == [] and redis_seen == []


def test_check_names_are_validated() -> None:
    orch = Orchestrator(plugins=[pentora_plugins.checks, pentora_plugins.engine], autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("seed", "set", config={"values": {"service_fingerprints": []}})
                  .add_node("checks", "service_checks", ["seed"],
                            config={"checks": ["ftp_bruteforce"], "anonymous_password": "x"}).build())
    with pytest.raises(ValidationError) as e:
        orch.validate()
    assert "checks" in str(e.value) and "ftp_bruteforce" in str(e.value)
    assert "email-like" in str(e.value)
