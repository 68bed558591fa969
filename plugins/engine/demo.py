"""``pentora demo``: start small demo services on loopback, scan them, print the summary.

The services are pentora's own few-line servers, speaking the first bytes of HTTP,
HTTPS, SSH, SMTP, FTP and Redis the way common daemons do (the banners imitate
nginx, OpenSSH, Postfix, vsftpd and Redis so that the fingerprinter has something to
name), with the misconfigurations a first scan should show: anonymous FTP, Redis
without a password, HTTP without security headers, a self-signed certificate. The
scan is the ``standard`` profile. They bind 127.0.0.1 on ports the kernel picks and
stop when the scan ends. No root needed; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import gevent
from gevent import ssl
from gevent.server import StreamServer

from pentora import Orchestrator

HTTP_BODY = b"<html><head><title>pentora demo</title></head><body>It works.</body></html>"
HTTP_RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n"
                 b"Content-Length: " + str(len(HTTP_BODY)).encode() + b"\r\nConnection: close\r\n\r\n"
                 + HTTP_BODY)
REDIS_INFO = (b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\nos:Linux 6.1.0 x86_64\r\n"
              b"tcp_port:6379\r\n")


def _lines(sock: Any, greeting: bytes, answer: Callable[[bytes], bytes | None],
           one_shot: bool = False) -> None:
    """Greet, then answer each line until the client leaves or ``answer`` returns None
    (``one_shot``: close after the first answer, as HTTP/1.0-style servers do)."""
    sock.settimeout(10)
    try:
        if greeting:
            sock.sendall(greeting)
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                reply = answer(line.strip())
                if reply is None:
                    return
                sock.sendall(reply)
                if one_shot:
                    return
    except OSError:
        return
    finally:
        sock.close()


def http(sock: Any, _addr: Any) -> None:
    _lines(sock, b"", lambda line: HTTP_RESPONSE if line.upper().startswith((b"GET", b"HEAD")) else
           b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nContent-Length: 0\r\n\r\n",
           one_shot=True)


def ssh(sock: Any, _addr: Any) -> None:
    # Debian 12's OpenSSH two security updates before its regreSSHion fix (deb12u3): the
    # revision in the banner is what proves the finding
    _lines(sock, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u1\r\n", lambda line: None)


def smtp(sock: Any, _addr: Any) -> None:
    def answer(line: bytes) -> bytes | None:
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            return b"250-demo.pentora.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"
        if verb == b"QUIT":
            return None
        return b"502 5.5.2 Error: command not recognized\r\n"
    _lines(sock, b"220 demo.pentora.test ESMTP Postfix (Debian/GNU)\r\n", answer)


def ftp(sock: Any, _addr: Any) -> None:
    def answer(line: bytes) -> bytes | None:
        verb = line[:4].upper()
        if verb == b"QUIT":
            return None
        if verb == b"SYST":
            return b"215 UNIX Type: L8\r\n"
        if line.upper() in (b"USER ANONYMOUS", b"USER FTP"):
            return b"331 Please specify the password.\r\n"
        if verb == b"PASS":
            return b"230 Login successful.\r\n"  # anonymous login allowed: a finding
        return b"530 Please login with USER and PASS.\r\n"
    _lines(sock, b"220 (vsFTPd 3.0.3)\r\n", answer)


def redis(sock: Any, _addr: Any) -> None:
    def answer(line: bytes) -> bytes | None:
        words = line.split()
        cmd = words[0].upper() if words else b""
        if cmd == b"PING":
            return b"+PONG\r\n"
        if cmd == b"INFO":
            return b"$%d\r\n%s\r\n" % (len(REDIS_INFO), REDIS_INFO)
        if cmd == b"QUIT":
            return None
        if cmd.startswith(b"*") or cmd.startswith(b"$"):
            return b""  # RESP framing lines of an array command: wait for the words
        return b"-ERR unknown command '%s'\r\n" % cmd[:32]
    _lines(sock, b"", answer)


def self_signed(directory: str) -> tuple[str, str]:
    """A throwaway certificate for the demo HTTPS service (cryptography, RSA 2048)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "demo.pentora.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("demo.pentora.test")]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class DemoServices:
    """The demo servers, on 127.0.0.1 ports the kernel picks."""

    def __init__(self) -> None:
        self.servers: dict[str, StreamServer] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="pentora-demo-")

    def start(self) -> dict[str, int]:
        handlers = {"http": http, "ssh": ssh, "smtp": smtp, "ftp": ftp, "redis": redis}
        for name, handler in handlers.items():
            self.servers[name] = StreamServer(("127.0.0.1", 0), handler)
        cert, key = self_signed(self._tmp.name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

        def https(sock: Any, addr: Any) -> None:
            # Scanners probe with plain text too: a failed handshake is expected, not news.
            try:
                tls = context.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                sock.close()
                return
            http(tls, addr)

        self.servers["https"] = StreamServer(("127.0.0.1", 0), https)
        for server in self.servers.values():
            server.start()
        return {name: server.server_port for name, server in self.servers.items()}

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop(timeout=1)
        self._tmp.cleanup()


def cmd_demo(args: argparse.Namespace) -> int:
    from pentora.cli import (
        check_outputs,
        make_orchestrator,
        open_outputs,
        output_targets,
        profile_path,
        scan_options,
    )

    orch: Orchestrator = make_orchestrator(args)
    # The outputs are pentora scan's (-o, -oA…): each in its own format, checked before any
    # server starts.
    outputs = output_targets(orch.registry, args)
    args.outputs = [path for _, path in outputs]
    check_outputs(args.outputs)
    path = profile_path(orch, "standard")
    if path is None:
        sys.stderr.write("error: the standard profile is not installed\n")
        return 1
    orch.load_dag(path)
    services = DemoServices()
    ports = services.start()
    sink = None
    try:
        sys.stderr.write("demo services on 127.0.0.1: " + ", ".join(
            f"{name} {port}" for name, port in ports.items()) + "\n")
        # Loopback needs no ICMP sweep (the TCP probes find it), and the demo runs unprivileged.
        variables = {"targets": "127.0.0.1", "ports": ",".join(str(p) for p in sorted(ports.values())),
                     "icmp": False}
        # as pentora scan's: --min-quality and the command line, for the outputs
        options = scan_options(orch, args, progress=args.progress)
        sink = open_outputs(orch, outputs)
        result = orch.execute(vars=variables, options=options)
        if sink is not None:
            sink.close(result)
        # What `pentora scan` prints when it ends (the output area's summary, with the
        # options it added to this command, such as --min-quality).
        orch.pm.hook.pentora_cli_scan_done(args=args, orch=orch, result=result)
        for out in args.outputs:
            if out != "-":
                sys.stderr.write(f"results written to {out}\n")
        return 0 if result.ok else 3
    finally:
        if sink is not None:
            sink.close(None, commit=False)  # no-op once closed; else the run died: nothing replaced
        services.stop()


def main() -> None:  # pragma: no cover - manual use: keep the services up for a look
    services = DemoServices()
    print(services.start())
    try:
        gevent.wait()
    finally:
        services.stop()
