"""``http_scanner``: what each web port answers over HTTP/1.1 (over TLS where it speaks it).

Input: ``service_fingerprints``; the ports whose service is http (or https, http-proxy,
http-alt, a fingerprint found inside TLS included) are requested; with ``all_ports`` every
fingerprinted port and every open TCP port of ``open_ports`` too (TLS tried where plain
HTTP gets no HTTP answer). ``ports`` narrows that to a port spec.

Without fingerprints upstream, every open TCP port of ``open_ports`` is requested, or,
without a port scan either, ports 80, 443, 8080 and 8443 of each live host of
``discovered_hosts`` (those that give no HTTP answer are left out): plain HTTP on 80 and
8080, TLS on 443 and 8443, any other port plain first, then TLS.

Per port, each of ``methods`` is sent to ``path`` with ``headers``: GET follows redirects
(at most ``max_redirects``, and only on the same host and port: a Location naming another
host is recorded, never fetched) and gives the status, server, title, headers, cookies and
body of the page finally reached; HEAD its status; OPTIONS the allowed methods (``Allow``).
With ``favicon``, ``/favicon.ico`` is fetched and hashed as Shodan does. Nothing is sent
but GET, HEAD and OPTIONS.

Output: ``http_responses``, one ``HttpResponse`` per port, each emitted when done. A port
that never answered HTTP still gets one, with ``error`` saying why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import voluptuous as vol
from pentora_plugins.kit.inputs import UNFINGERPRINTED, hostnames, per_item, publish, unfingerprinted_ports
from pentora_plugins.kit.net.http import (
    Endpoint,
    Followed,
    HttpError,
    Reply,
    follow,
    request,
    request_target,
    valid_token,
)
from pentora_plugins.kit.net.http_facts import (
    allowed_methods,
    body_text,
    favicon_hash,
    parse_cookies,
    redact_cookie,
    security_headers,
    title_of,
)
from pentora_plugins.kit.portspec import port_spec_validator
from pentora_plugins.kit.records import HttpResponse, Port, ServiceFingerprint
from pentora_plugins.kit.records import field_of as _get
from voluptuous import Optional

from pentora import Module, ModuleError, NodeContext
from pentora.schema import Bool, Duration, Int, Nullable, PositiveInt, Size

METHODS = ("GET", "HEAD", "OPTIONS")
WEB_SERVICES = frozenset({"http", "https", "http-proxy", "http-alt", "https-alt", "ssl/http"})
MAX_BODY_LIMIT = 16 * 1024 * 1024
# nginx's and Apache's answers to plain HTTP on a TLS port
PLAIN_TO_TLS = re.compile(r"plain HTTP request was sent to HTTPS port|speaking plain HTTP to an "
                          r"SSL-enabled server port", re.I)


@dataclass(frozen=True)
class HttpOptions:
    methods: tuple[str, ...] = METHODS
    headers: tuple[tuple[str, str], ...] = (("User-Agent", "Pentora/1.0"),)
    path: str = "/"
    timeout: float = 5.0
    max_redirects: int = 5
    max_body: int = 65536
    favicon: bool = True

    @property
    def header_map(self) -> dict[str, str]:
        return dict(self.headers)


# -- config validators --------------------------------------------------------------------


def _methods(value: object) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise vol.Invalid(f"expected a list of {', '.join(METHODS)}, got {value!r}")
    out = []
    for item in items:
        method = item.upper() if isinstance(item, str) else item
        if method not in METHODS:
            raise vol.Invalid(f"method {item!r} is not sent by http_scanner (safe methods only: "
                              f"{', '.join(METHODS)})")
        out.append(method)
    return out


_methods.__name__ = "list of GET | HEAD | OPTIONS"


def header_option(value: object) -> dict[str, str]:
    """Config validator: request headers, names HTTP tokens, values without line breaks."""
    if not isinstance(value, dict):
        raise vol.Invalid(f"expected a mapping of header name to value, got {value!r}")
    for name, text in value.items():
        if not isinstance(name, str) or not valid_token(name):
            raise vol.Invalid(f"header name {name!r} is not an HTTP token (letters, digits, '-')")
        if not isinstance(text, str) or any(c in text for c in "\r\n\x00"):
            raise vol.Invalid(f"header {name}: value must be a string without line breaks, got {text!r}")
    return dict(value)


header_option.__name__ = "mapping of header: value"


def _path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or request_target(value) is None:
        raise vol.Invalid(f"expected a path starting with '/' and without spaces, got {value!r}")
    return value


_path.__name__ = "path"


def options_from(config: dict[str, Any]) -> HttpOptions:
    return HttpOptions(methods=tuple(config["methods"]), headers=tuple(config["headers"].items()),
                       path=config["path"], timeout=config["timeout"],
                       max_redirects=config["max_redirects"], max_body=config["max_body"],
                       favicon=config["favicon"])


# -- one port -----------------------------------------------------------------------------


def scan_endpoint(ep: Endpoint, opts: HttpOptions) -> HttpResponse:
    """The ``HttpResponse`` of one port: every method of ``opts`` sent to its path."""
    target = request_target(opts.path) or "/"
    record = HttpResponse(host=ep.host, port=ep.port, tls=ep.tls, url=ep.url(target))
    errors: list[str] = []
    if "GET" in opts.methods:
        got = follow(ep, "GET", target, opts.header_map, opts.timeout, opts.max_body,
                     opts.max_redirects)
        fill_from(record, got)
        if got.reply is not None:
            record.statuses["GET"] = got.reply.status
        if got.error:
            errors.append(f"GET: {got.error}")
    for method in ("HEAD", "OPTIONS"):
        # a port that gave no HTTP answer yet is not asked again: each try could cost a timeout
        if method in opts.methods and not (errors and record.status is None):
            reply, error = _try(ep, method, target, opts)
            if reply is None:
                errors.append(f"{method}: {error}")
                continue
            record.statuses[method] = reply.status
            if method == "OPTIONS":
                record.allowed_methods = allowed_methods(reply.header("allow") or reply.header("public"))
            if record.status is None:  # no GET: the first answer stands for the port
                _fill_head(record, reply)
    if opts.favicon and record.status is not None:
        record.favicon_hash = _favicon(ep, opts)
    record.error = "; ".join(errors) or None
    return record


def fill_from(record: HttpResponse, got: Followed) -> None:
    """Status, headers, cookies, title and body of a followed GET into ``record``."""
    record.url, record.redirects, record.location = got.url, got.redirects, got.location
    record.tls = got.url.startswith("https:")  # a redirect may switch scheme on the same port
    if got.reply is None:
        return
    _fill_head(record, got.reply)
    text = body_text(got.reply.body, got.reply.header("content-type"))
    record.body, record.body_truncated = text, got.reply.truncated
    record.title = title_of(text)


def _fill_head(record: HttpResponse, reply: Reply) -> None:
    record.status, record.reason = reply.status, reply.reason
    record.headers = reply.header_dict()
    if "set-cookie" in record.headers:  # cookie values may be session secrets: never kept
        record.headers["set-cookie"] = "\n".join(map(redact_cookie, reply.all("set-cookie")))
    record.server = reply.header("server")
    record.cookies = parse_cookies(reply.all("set-cookie"))
    record.security_headers_present, record.security_headers_missing = security_headers(
        record.headers, record.tls)


def _try(ep: Endpoint, method: str, target: str, opts: HttpOptions) -> tuple[Reply | None, str]:
    try:
        return request(ep, method, target, opts.header_map, opts.timeout, opts.max_body), ""
    except HttpError as e:
        return None, str(e)


def _favicon(ep: Endpoint, opts: HttpOptions) -> int | None:
    reply, _ = _try(ep, "GET", "/favicon.ico", opts)
    if reply is None or reply.status != 200 or not reply.body or reply.truncated:
        return None
    if "html" in (reply.header("content-type") or "").lower():
        return None  # a catch-all page served for every path is no icon
    return favicon_hash(reply.body)


def scan_port(host: str, port: int, tls: bool | None, hostname: str | None,
              opts: HttpOptions) -> HttpResponse:
    """Scan one port; ``tls=None``: not known, plain HTTP first, then TLS if that got no
    HTTP answer. A server saying plain HTTP reached its TLS port is asked again over TLS."""
    first = scan_endpoint(Endpoint(host, port, bool(tls), hostname), opts)
    refused = first.status == 400 and PLAIN_TO_TLS.search(first.body[:4096]) is not None
    if tls or not (refused or (tls is None and first.status is None)):
        return first
    second = scan_endpoint(Endpoint(host, port, True, hostname), opts)
    return second if second.status is not None else first




# -- which ports --------------------------------------------------------------------------


def web_ports(fingerprints: Iterable[Any], open_ports: Iterable[Any], all_ports: bool,
              ports: Any, tls_ports: frozenset[tuple[str, int]] = frozenset()
              ) -> Iterator[tuple[str, int, bool | None]]:
    """(host, port, tls or None when unknown) of each port to request, once each;
    ``tls_ports``: (host, port) known to speak TLS (a banner was read through it)."""
    seen: set[tuple[str, int]] = set()
    candidates: list[tuple[str, int, bool | None]] = []
    for fp in fingerprints:
        if not isinstance(fp, (ServiceFingerprint, dict)):
            raise ModuleError(f"http_scanner: service_fingerprints holds {type(fp).__name__}; "
                              f"expected ServiceFingerprint records or mappings")
        service = str(_get(fp, "service") or "").lower()
        if _get(fp, "protocol", "tcp") != "tcp":
            continue
        if service in WEB_SERVICES:
            candidates.append((_get(fp, "host"), int(_get(fp, "port")),
                               bool(_get(fp, "tls")) or service.startswith("https")))
        elif all_ports:
            # A named plain-text service (redis, ssh…) will not start speaking TLS: asking
            # it over TLS after the plain request only waits out the timeout.
            known_plain = service not in ("", "unknown") and not _get(fp, "tls")
            candidates.append((_get(fp, "host"), int(_get(fp, "port")),
                               True if _get(fp, "tls") else (False if known_plain else None)))
    if all_ports:
        candidates += [(_get(p, "host"), int(_get(p, "port")), None) for p in open_ports
                       if isinstance(p, (Port, dict)) and _get(p, "protocol", "tcp") == "tcp"
                       and _get(p, "state", "open") == "open"]
    for host, port, tls in candidates:
        if (host, port) in seen or (ports is not None and port not in ports):
            continue
        seen.add((host, port))
        yield host, port, True if (host, port) in tls_ports else tls


class HttpScanner(Module):
    """Status, headers, title, redirects, methods, cookies and favicon of each web port."""

    module_type = "http_scanner"
    description = "HTTP(S) requests to each web port: status, headers, title, cookies, methods"
    requires = ("|".join(("service_fingerprints", *UNFINGERPRINTED)),)
    produces = ("http_responses",)
    config_schema = {
        Optional("methods", default=list(METHODS),
                 description="methods sent: GET (follows redirects), HEAD, OPTIONS"): _methods,
        Optional("headers", default={"User-Agent": "Pentora/1.0"},
                 description="request headers sent with every request"): header_option,
        Optional("path", default="/", description="path requested on each port"): _path,
        Optional("timeout", default="5s", description="time for one request and its reply"):
            Duration(min=0.001),
        Optional("max_redirects", default=5,
                 description="redirects followed (same host and port only)"): Int(min=0, max=20),
        Optional("max_body", default="64KB", description="bytes of a body read (more is cut)"):
            vol.All(Size(), vol.Range(min=1, max=MAX_BODY_LIMIT)),
        Optional("favicon", default=True, description="fetch /favicon.ico and hash it"): Bool(),
        Optional("ports", default=None, description="only these ports (a port spec)"):
            Nullable(port_spec_validator()),
        Optional("all_ports", default=False,
                 description="request every open TCP port, not only those fingerprinted as http"):
            Bool(),
        Optional("concurrency", default=None,
                 description="ports requested at once (default: the DAG's max_parallel_targets)"):
            Nullable(PositiveInt()),
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        opts = options_from(config)
        open_ports = ctx.get("open_ports", []) if config["all_ports"] else []
        # a fingerprint may come from the plain answer of a TLS port ("plain HTTP sent to
        # HTTPS port"): banners read through TLS tell which ports speak it
        tls_ports = frozenset((_get(b, "host"), int(_get(b, "port"))) for b in ctx.get("banners", None) or ()
                              if _get(b, "tls"))
        guessed = False
        if ctx.has("service_fingerprints"):
            items = list(web_ports(ctx.get("service_fingerprints") or [], open_ports or [],
                                   config["all_ports"], config["ports"], tls_ports))
        else:
            source, unfingerprinted = unfingerprinted_ports(ctx, config["ports"])
            guessed = source == "discovered_hosts"
            items = [(h, p, True if (h, p) in tls_ports else tls) for h, p, tls in unfingerprinted]

        names = hostnames(ctx)  # a target named by the user is asked for by that name (vhosts)

        def one(item: tuple[str, int, bool | None]) -> HttpResponse | None:
            record = scan_port(*item, hostname=names.get(item[0]), opts=opts)
            if guessed and record.status is None:
                return None  # a port guessed from a live host that is not a web port
            ctx.emit(record)
            return record

        found = [r for r in per_item(ctx, one, items, config["concurrency"]) if r is not None]
        ctx.log.info(f"http_scanner: {sum(r.status is not None for r in found)} of {len(items)} "
                     f"port(s) answered HTTP")
        publish(ctx, "http_responses", found)
