"""Scripted HTTP(S) servers on 127.0.0.1 for the web-scan tests (http_scanner,
webapp_fingerprinter, http_checks).

``WebServer(routes)`` answers each path with a fixed ``Route`` (status, headers, body),
HEAD with the same head and no body, OPTIONS with ``allow`` in an ``Allow`` header, any
other method with 405; it records every request. With ``tls`` (an ``ssl.SSLContext``
from ``tls_context``, a self-signed certificate generated here with ``cryptography``)
it speaks HTTPS; with ``plain_on_tls`` too, a connection that does not start with a TLS
ClientHello gets those bytes instead (nginx's "plain HTTP request was sent to HTTPS
port"). Threads and blocking sockets: independent of the gevent hub that runs
the scan.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Route:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | str = b""
    length: bool = True  # False: no Content-Length, the body ends when the connection closes

    def raw_body(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


def html_route(body: str, *headers: tuple[str, str], status: int = 200) -> Route:
    return Route(status, [("Content-Type", "text/html; charset=utf-8"), *headers], body)


def redirect(location: str, status: int = 302) -> Route:
    return Route(status, [("Location", location)], b"")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _answer(self, route: Route, body: bool) -> None:
        data = route.raw_body()
        head = [f"HTTP/1.1 {route.status} {_REASONS.get(route.status, 'Status')}"]
        head += [f"{k}: {v}" for k, v in route.headers]
        if route.length and not any(k.lower() == "content-length" for k, _ in route.headers):
            head.append(f"Content-Length: {len(data)}")
        head.append("Connection: close")
        head_bytes = "\r\n".join(head).encode("utf-8", "surrogateescape") + b"\r\n\r\n"
        self.wfile.write(head_bytes + (data if body else b""))
        self.close_connection = True

    def _route(self) -> Route:
        self.server.owner.requests.append((self.command, self.path, dict(self.headers.items())))
        return self.server.owner.routes.get(self.path) or Route(404, [("Content-Type", "text/plain")],
                                                                b"not found")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(self._route(), body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(self._route(), body=False)

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._route()
        allow = self.server.owner.allow
        self._answer(Route(204 if allow else 405, [("Allow", allow)] if allow else []), body=False)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any other method: refused, but recorded
            return lambda: self._answer(self._route_refused(), body=True)
        raise AttributeError(name)

    def _route_refused(self) -> Route:
        self.server.owner.requests.append((self.command, self.path, dict(self.headers.items())))
        return Route(405, [("Allow", self.server.owner.allow)], b"")


_REASONS = {200: "OK", 204: "No Content", 301: "Moved Permanently", 302: "Found", 303: "See Other",
            307: "Temporary Redirect", 308: "Permanent Redirect", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: WebServer

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        request.settimeout(5)
        if self.owner.plain_on_tls is not None and self.owner.tls is not None:
            with contextlib.suppress(OSError):
                if request.recv(1, socket.MSG_PEEK) != b"\x16":  # not a ClientHello: as nginx does
                    request.recv(65536)
                    request.sendall(self.owner.plain_on_tls)
                    self.shutdown_request(request)
                    return
        if self.owner.tls is not None:  # the handshake in the connection's own thread
            try:
                request = self.owner.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)


class WebServer:
    """An HTTP(S) server on 127.0.0.1, port picked by the kernel; ``stop()`` ends it."""

    def __init__(self, routes: dict[str, Route], allow: str = "GET, HEAD, OPTIONS",
                 tls: ssl.SSLContext | None = None, plain_on_tls: bytes | None = None) -> None:
        self.routes, self.allow, self.tls, self.plain_on_tls = routes, allow, tls, plain_on_tls
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.requests]


@contextlib.contextmanager
def serving(routes: dict[str, Route], **kw: Any) -> Any:
    server = WebServer(routes, **kw)
    try:
        yield server
    finally:
        server.stop()


def self_signed(directory: Path, name: str = "localhost", days: int = 30) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` and 127.0.0.1 (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def tls_context(directory: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*self_signed(directory))
    return ctx
