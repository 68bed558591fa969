"""What ``http_scanner`` reads out of a reply: title, body text, cookies and their flags,
allowed methods, security headers, the favicon hash. Pure functions over data from a
target, so every result is capped in size and decoded with replacement characters."""

from __future__ import annotations

import base64
import html
import re

MAX_TITLE_CHARS = 256
MAX_COOKIES = 50
MAX_METHODS = 32

# name → (why it matters, reference). Text only: pentora never fetches these URLs.
SECURITY_HEADERS: dict[str, tuple[str, str]] = {
    "strict-transport-security": (
        "browsers may be downgraded to plain HTTP (HSTS; only meaningful over TLS)",
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Strict-Transport-Security"),
    "content-security-policy": (
        "no Content-Security-Policy to limit injected scripts",
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Content-Security-Policy"),
    "x-frame-options": (
        "pages may be framed by other sites (clickjacking)",
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Frame-Options"),
    "x-content-type-options": (
        "browsers may MIME-sniff responses into scripts",
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Content-Type-Options"),
    "referrer-policy": (
        "full URLs may leak to other sites in the Referer header",
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Referrer-Policy"),
    "permissions-policy": (
        "powerful browser features (camera, geolocation...) are not restricted",
        "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Permissions-Policy"),
}
OWASP_HEADERS = "https://owasp.org/www-project-secure-headers/"

_TITLE = re.compile(r"<title[^>]{0,200}>([^<]{0,2048})", re.I)
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]{1,40})", re.I)
_METHOD = re.compile(r"^[A-Z][A-Z0-9_-]{0,31}$")


def security_headers(headers: dict[str, str], tls: bool) -> tuple[list[str], list[str]]:
    """(present, missing) security headers. CSP ``frame-ancestors`` stands in for
    X-Frame-Options; HSTS is only missed over TLS (browsers ignore it on plain HTTP)."""
    present = [h for h in SECURITY_HEADERS if headers.get(h, "").strip()]
    missing = [h for h in SECURITY_HEADERS if h not in present]
    if "x-frame-options" in missing and "frame-ancestors" in headers.get("content-security-policy", ""):
        missing.remove("x-frame-options")
    if not tls and "strict-transport-security" in missing:
        missing.remove("strict-transport-security")
    return present, missing


def body_text(body: bytes, content_type: str | None) -> str:
    """The body as text, in the charset the server names (UTF-8 otherwise), bad bytes
    replaced."""
    m = _CHARSET.search(content_type or "")
    encoding = m.group(1) if m else "utf-8"
    try:
        return body.decode(encoding, errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def title_of(text: str) -> str | None:
    m = _TITLE.search(text)
    if m is None:
        return None
    title = " ".join(html.unescape(m.group(1)).split())
    return title[:MAX_TITLE_CHARS] or None


def parse_cookies(values: list[str]) -> list[dict[str, object]]:
    """Name and flags of each ``Set-Cookie`` (values are left out: they may be secrets)."""
    out: list[dict[str, object]] = []
    for value in values[:MAX_COOKIES]:
        first, *attrs = value.split(";")
        name = first.split("=", 1)[0].strip()[:128]
        if not name:
            continue
        flags: dict[str, str] = {}
        for attr in attrs:
            key, _, val = attr.partition("=")
            flags[key.strip().lower()] = val.strip()[:64]
        out.append({"name": name, "secure": "secure" in flags, "httponly": "httponly" in flags,
                    "samesite": flags.get("samesite") or None})
    return out


def redact_cookie(value: str) -> str:
    """A ``Set-Cookie`` value with the cookie's own value replaced: name and attributes stay."""
    first, sep, attrs = value.partition(";")
    name, eq, _ = first.partition("=")
    return f"{name.strip()}{eq and '=[redacted]'}{sep}{attrs}"


def allowed_methods(value: str | None) -> list[str]:
    """Methods of an ``Allow`` (or ``Public``) header, upper-cased, each once, in order."""
    out: list[str] = []
    for item in (value or "").split(","):
        method = item.strip().upper()
        if _METHOD.match(method) and method not in out:
            out.append(method)
    return out[:MAX_METHODS]


# -- favicon ------------------------------------------------------------------------------

_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def mmh3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit, signed (as the ``mmh3`` package returns it)."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & _M32
    whole = len(data) & ~3
    for i in range(0, whole, 4):
        k = _rotl((int.from_bytes(data[i:i + 4], "little") * c1) & _M32, 15)
        h = _rotl(h ^ ((k * c2) & _M32), 13)
        h = (h * 5 + 0xE6546B64) & _M32
    tail = data[whole:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= (_rotl((k * c1) & _M32, 15) * c2) & _M32
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def favicon_hash(data: bytes) -> int:
    """The favicon hash Shodan and others index (``http.favicon.hash``): MurmurHash3 of
    the icon's base64 with a newline every 76 characters."""
    return mmh3_32(base64.encodebytes(data))
