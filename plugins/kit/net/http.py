"""A small HTTP/1.1 client on gevent sockets, for ``http_scanner`` and ``webapp_fingerprinter``.

One request per connection (``Connection: close``), plain or over TLS (the scanner's
client context of ``_tlsinfo``: no verification, every version the local OpenSSL
allows). Everything read is bounded: the status line and headers by ``MAX_HEADER_BYTES``
and ``MAX_HEADERS``, each value by ``MAX_VALUE_CHARS``, the body by the caller's
``max_body`` (a longer body is cut and flagged ``truncated``), the whole exchange by
``timeout`` (a ``gevent.Timeout``). Bodies are read as sent with ``Content-Length``,
chunked, or until the server closes; ``Accept-Encoding: identity`` asks for no
compression.

Redirects (``follow``) are followed only to the same host and port: the address is the
one given, never one a server names; a ``Location`` naming another host or port is
returned, not fetched. Host names are never resolved here.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent import socket, ssl
from pentora_plugins.kit.net.fds import open_socket
from pentora_plugins.kit.net.grab import tls_context
from pentora_plugins.kit.net.tls import sni_name

MAX_HEADER_BYTES = 65536
MAX_HEADERS = 200
MAX_VALUE_CHARS = 4096
MAX_URL_CHARS = 2048
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_STATUS_LINE = re.compile(rb"^HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?\r?\n?$")


class HttpError(Exception):
    """The exchange failed (refused, timed out, TLS, not HTTP); the message says how."""


def valid_token(text: str) -> bool:
    """An HTTP token: a method or header name."""
    return bool(_TOKEN.match(text))


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: ``host`` is the address connected to; ``hostname`` (if any)
    is sent as Host and SNI instead of the address."""

    host: str
    port: int
    tls: bool = False
    hostname: str | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def authority(self) -> str:
        name = self.hostname or self.host
        name = f"[{name}]" if ":" in name else name
        default = 443 if self.tls else 80
        return name if self.port == default else f"{name}:{self.port}"

    def url(self, target: str) -> str:
        return f"{self.scheme}://{self.authority()}{target}"

    def resolve(self, base_url: str, location: str) -> tuple[Endpoint, str, str] | str:
        """Where a redirect from ``base_url`` to ``location`` leads: (endpoint, request
        target, url) when it stays on this host and port, else the absolute url (a
        string) that is not to be followed."""
        absolute = urllib.parse.urljoin(base_url, location.strip())[:MAX_URL_CHARS]
        parts = urllib.parse.urlsplit(absolute)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return absolute
        names = {self.host.lower(), (self.hostname or self.host).lower()}
        if parts.scheme not in ("http", "https") or (parts.hostname or "") not in names \
                or port != self.port:
            return absolute
        target = request_target(parts.path or "/", parts.query)
        if target is None:
            return absolute
        moved = Endpoint(self.host, self.port, parts.scheme == "https", self.hostname)
        return moved, target, moved.url(target)


def request_target(path: str, query: str = "") -> str | None:
    """``path?query`` safe to put on a request line (non-ASCII percent-encoded), or None
    when it holds control characters or whitespace."""
    text = path + (f"?{query}" if query else "")
    if any(ord(c) < 0x21 or c == "\x7f" for c in text):
        return None
    return urllib.parse.quote(text, safe="/%?=&;:@!$'()*+,-._~[]")


@dataclass
class Reply:
    """One answer: status, lower-cased header names with their values in order, and
    the body as read (at most ``max_body`` bytes; ``truncated`` if there was more)."""

    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    truncated: bool = False

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def header_dict(self) -> dict[str, str]:
        """One value per name: repeated headers joined with ', ' (``set-cookie`` with
        newlines, since cookie dates hold commas)."""
        out: dict[str, str] = {}
        for k, v in self.headers:
            sep = "\n" if k == "set-cookie" else ", "
            out[k] = f"{out[k]}{sep}{v}" if k in out else v
        return out


# -- one exchange ------------------------------------------------------------------------


def request(ep: Endpoint, method: str, target: str, headers: dict[str, str],
            timeout: float, max_body: int) -> Reply:
    """Send one request to ``ep`` and read its reply; raises HttpError."""
    with gevent.Timeout(timeout, HttpError(f"no complete answer within {timeout:g}s")):
        sock = _connect(ep, timeout)
        try:
            try:
                sock.sendall(request_bytes(ep, method, target, headers))
            except OSError as e:
                raise HttpError(f"sending the request failed: {e}") from e
            return read_reply(_Reader(sock), method, max_body)
        finally:
            with contextlib.suppress(OSError):
                sock.close()


def request_bytes(ep: Endpoint, method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {ep.authority()}"]
    given = {k.lower() for k in headers}
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: identity")  # no gzip: bodies are read as sent
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _connect(ep: Endpoint, timeout: float) -> Any:
    family = socket.AF_INET6 if ":" in ep.host else socket.AF_INET
    sock = open_socket(family)  # waits out EMFILE: a busy process is not the server's failure
    sock.settimeout(timeout)
    try:
        sock.connect((ep.host, ep.port))
    except OSError as e:
        sock.close()
        raise HttpError(f"connect to {ep.host}:{ep.port} failed: {e.strerror or e}") from e
    if not ep.tls:
        return sock
    sni = sni_name(ep.hostname)
    try:
        return tls_context().wrap_socket(sock, server_hostname=sni)
    except (OSError, ValueError) as e:
        sock.close()
        raise HttpError(f"TLS handshake with {ep.host}:{ep.port} failed: {e}") from e


class _Reader:
    """Buffered reads of a socket; a reset or an unclean TLS close after data is EOF."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.buf, self.eof = sock, bytearray(), False

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except (ssl.SSLError, ConnectionResetError):
            chunk = b""
        except OSError as e:
            raise HttpError(f"reading the reply failed: {e.strerror or e}") from e
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def line(self, cap: int) -> bytes:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                out = bytes(self.buf[:end + 1])
                del self.buf[:end + 1]
                return out
            if len(self.buf) > cap:
                raise HttpError(f"header line longer than {cap} bytes")
            if not self._fill():
                out = bytes(self.buf)
                self.buf.clear()
                return out

    def read(self, n: int) -> bytes:
        while len(self.buf) < n and self._fill():
            pass
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def read_reply(reader: _Reader, method: str, max_body: int) -> Reply:
    """The status line, headers and body of one reply (interim 1xx replies skipped)."""
    while True:
        reply = _read_head(reader)
        if not 100 <= reply.status < 200 or reply.status == 101:
            break
    if method == "HEAD" or reply.status in (101, 204, 304):
        return reply
    if "chunked" in (reply.header("transfer-encoding") or "").lower():
        reply.body, reply.truncated = _read_chunked(reader, max_body)
        return reply
    length = reply.header("content-length")
    if length is not None and length.strip().isdigit():
        size = int(length.strip())
        reply.body = reader.read(min(size, max_body))
        reply.truncated = size > max_body
        return reply
    data = reader.read(max_body + 1)  # until the server closes
    reply.body, reply.truncated = data[:max_body], len(data) > max_body
    return reply


def _read_head(reader: _Reader) -> Reply:
    first = reader.line(MAX_HEADER_BYTES)
    m = _STATUS_LINE.match(first)
    if m is None:
        if not first:
            raise HttpError("the server closed the connection without answering")
        raise HttpError(f"not an HTTP reply: {first[:40]!r}")
    reply = Reply(status=int(m.group(3)), reason=_text(m.group(4) or b"", 256),
                  version=f"{m.group(1).decode()}.{m.group(2).decode()}")
    used = len(first)
    while True:
        line = reader.line(MAX_HEADER_BYTES)
        used += len(line)
        if used > MAX_HEADER_BYTES or len(reply.headers) > MAX_HEADERS:
            raise HttpError(f"headers larger than {MAX_HEADER_BYTES} bytes or {MAX_HEADERS} lines")
        if line in (b"\r\n", b"\n", b""):
            return reply
        if line[:1] in (b" ", b"\t") and reply.headers:  # obsolete line folding
            last, text = reply.headers[-1]
            reply.headers[-1] = (last, (text + " " + _text(line, MAX_VALUE_CHARS))[:MAX_VALUE_CHARS])
            continue
        name, sep, value = line.partition(b":")
        if sep and name.strip():
            reply.headers.append((_text(name, 128).lower(), _text(value, MAX_VALUE_CHARS)))


def _read_chunked(reader: _Reader, max_body: int) -> tuple[bytes, bool]:
    body = bytearray()
    while True:
        size_line = reader.line(1024).split(b";", 1)[0].strip()
        if not size_line:
            return bytes(body), False  # the server closed mid-body: keep what came
        try:
            size = int(size_line, 16)
        except ValueError as e:
            raise HttpError(f"bad chunk size {size_line[:20]!r}") from e
        if size == 0:
            return bytes(body), False
        if len(body) + size > max_body:
            body += reader.read(max_body - len(body))
            return bytes(body), True
        body += reader.read(size)
        reader.line(1024)  # the CRLF after the chunk


def _text(raw: bytes, cap: int) -> str:
    return raw.decode("utf-8", errors="replace").strip()[:cap]


# -- redirects ----------------------------------------------------------------------------


@dataclass
class Followed:
    """The last reply of a chain of redirects (None if the first request failed), its
    URL, the URLs redirected to, a Location not followed, and why the chain stopped."""

    reply: Reply | None
    url: str
    redirects: list[str] = field(default_factory=list)
    location: str | None = None
    error: str | None = None


def follow(ep: Endpoint, method: str, target: str, headers: dict[str, str], timeout: float,
           max_body: int, max_redirects: int) -> Followed:
    """``request``, then follow redirects on the same host and port, at most
    ``max_redirects`` of them; a loop or one redirect too many ends with an error."""
    url = ep.url(target)
    out = Followed(reply=None, url=url)
    seen = {url}
    while True:
        try:
            out.reply = request(ep, method, target, headers, timeout, max_body)
        except HttpError as e:
            out.error = str(e) if not out.redirects else f"{out.url}: {e}"
            return out
        location = out.reply.header("location")
        if out.reply.status not in REDIRECT_STATUSES or not location:
            return out
        moved = ep.resolve(out.url, location)
        if isinstance(moved, str):
            out.location = moved
            return out
        if moved[2] in seen:
            out.error = f"redirect loop: {moved[2]} again after {len(out.redirects)} redirect(s)"
            return out
        if len(out.redirects) >= max_redirects:
            out.location = moved[2]
            out.error = f"more than {max_redirects} redirect(s) (max_redirects); stopped at {out.url}"
            return out
        ep, target, out.url = moved
        seen.add(out.url)
        out.redirects.append(out.url)
        if out.reply.status == 303:
            method = "GET"
