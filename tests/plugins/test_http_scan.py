"""http_scanner against real HTTP(S) servers on 127.0.0.1: security headers present and
missing, cookies and their flags, redirects (followed on the same port only, loops and
limits), TLS with a certificate generated in the test, OPTIONS, favicon hash, body caps,
chunked bodies, hostile and non-HTTP answers, config errors."""

from __future__ import annotations

import base64
from typing import Any

import pentora_plugins.engine
import pentora_plugins.web
import pytest
from pentora_plugins.kit.net.http import Endpoint
from pentora_plugins.kit.net.http_facts import favicon_hash, mmh3_32, parse_cookies
from pentora_plugins.kit.records import HttpResponse
from pentora_plugins.web.http_scanner import HttpOptions, scan_port, web_ports

from pentora import DagBuilder, Orchestrator, ValidationError
from pentora.testing import RecordCollector

from ._httpd import Route, html_route, serving, tls_context

SECURE_HEADERS = [("Content-Security-Policy", "default-src 'self'"), ("X-Frame-Options", "DENY"),
                  ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                  ("Permissions-Policy", "camera=()"),
                  ("Strict-Transport-Security", "max-age=63072000")]
ICON = bytes(range(256)) * 3


def fp(port: int, service: str = "http", tls: bool = False) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "protocol": "tcp", "service": service, "tls": tls}


def run(fingerprints: list[dict[str, Any]], extra: dict[str, Any] | None = None,
        **config: Any) -> tuple[Any, RecordCollector]:
    collector = RecordCollector()
    orch = Orchestrator(plugins=[pentora_plugins.web, pentora_plugins.engine, collector], autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("seed", "set", config={"values": {"service_fingerprints": fingerprints,
                                                              **(extra or {})}})
                  .add_node("http", "http_scanner", ["seed"], config={"timeout": "3s", **config})
                  .build())
    result = orch.execute()
    assert result.ok, result.nodes["http"].error
    return result, collector


def one(fingerprints: list[dict[str, Any]], **config: Any) -> HttpResponse:
    result, _ = run(fingerprints, **config)
    records = result.context.get("http_responses")
    assert len(records) == 1
    return records[0]


# -- headers, cookies, methods, favicon --------------------------------------------------------


def test_page_with_security_headers_cookies_options_and_favicon():
    routes = {
        "/": html_route("<html><head><title> Shop &amp; Co\n</title></head><body>hi</body></html>",
                        ("Server", "nginx/1.24.0"), *SECURE_HEADERS,
                        ("Set-Cookie", "sid=secret123; Path=/; Secure; HttpOnly; SameSite=Strict"),
                        ("Set-Cookie", "theme=dark; Expires=Wed, 21 Oct 2037 07:28:00 GMT")),
        "/favicon.ico": Route(200, [("Content-Type", "image/x-icon")], ICON),
    }
    with serving(routes, allow="GET, HEAD, OPTIONS, TRACE") as server:
        r = one([fp(server.port)])
    assert (r.status, r.server, r.title, r.tls) == (200, "nginx/1.24.0", "Shop & Co", False)
    assert r.url == f"http://127.0.0.1:{server.port}/" and r.redirects == [] and r.error is None
    assert r.statuses == {"GET": 200, "HEAD": 200, "OPTIONS": 204}
    assert r.allowed_methods == ["GET", "HEAD", "OPTIONS", "TRACE"]
    assert r.security_headers_missing == []
    assert set(r.security_headers_present) == {h.lower() for h, _ in SECURE_HEADERS}
    assert r.cookies == [{"name": "sid", "secure": True, "httponly": True, "samesite": "Strict"},
                         {"name": "theme", "secure": False, "httponly": False, "samesite": None}]
    assert "secret123" not in str(r.cookies) + str(r.headers)  # cookie values are never kept
    assert r.headers["set-cookie"].startswith("sid=[redacted]; Path=/; Secure")
    assert r.headers["x-frame-options"] == "DENY" and all(k == k.lower() for k in r.headers)
    assert r.favicon_hash == mmh3_32(base64.encodebytes(ICON))
    assert [m for m, _, _ in server.requests] == ["GET", "HEAD", "OPTIONS", "GET"]
    assert all(h.get("User-Agent") == "Pentora/1.0" for _, _, h in server.requests)


def test_page_without_security_headers_lists_them_missing_but_not_hsts_on_plain_http():
    with serving({"/": html_route("<p>bare</p>")}) as server:
        r = one([fp(server.port)], favicon=False)
    assert r.security_headers_present == []
    assert r.security_headers_missing == ["content-security-policy", "x-frame-options",
                                          "x-content-type-options", "referrer-policy",
                                          "permissions-policy"]
    assert r.title is None and r.favicon_hash is None


def test_csp_frame_ancestors_stands_in_for_x_frame_options():
    route = html_route("x", ("Content-Security-Policy", "frame-ancestors 'none'"))
    with serving({"/": route}) as server:
        r = one([fp(server.port)], methods=["GET"], favicon=False)
    assert "x-frame-options" not in r.security_headers_missing
    assert "content-security-policy" in r.security_headers_present


def test_configured_methods_headers_and_path_are_what_is_sent():
    with serving({"/app": html_route("<title>App</title>")}) as server:
        r = one([fp(server.port)], methods=["HEAD"], path="/app",
                headers={"User-Agent": "Scanner-Test/2", "X-Trace": "abc"}, favicon=False)
        sent = server.requests
    assert [(m, p) for m, p, _ in sent] == [("HEAD", "/app")]
    assert sent[0][2]["User-Agent"] == "Scanner-Test/2" and sent[0][2]["X-Trace"] == "abc"
    assert r.status == 200 and r.statuses == {"HEAD": 200} and r.body == ""


def test_favicon_that_is_a_catch_all_html_page_is_not_hashed():
    with serving({"/": html_route("a"), "/favicon.ico": html_route("<html>not an icon</html>")}) as server:
        r = one([fp(server.port)], methods=["GET"])
    assert r.favicon_hash is None


def test_favicon_hash_is_shodans_mmh3_of_base64():
    assert mmh3_32(b"foo") == -156908512 and mmh3_32(b"hello") == 613153351 and mmh3_32(b"") == 0
    assert favicon_hash(b"\x00" * 100) == mmh3_32(base64.encodebytes(b"\x00" * 100))
    assert b"\n" in base64.encodebytes(ICON)  # a newline every 76 characters, as Shodan hashes it


def test_cookie_parsing_keeps_names_and_flags_only():
    assert parse_cookies(["a=1; secure; HTTPONLY; samesite=None", "=nameless", "b"]) == [
        {"name": "a", "secure": True, "httponly": True, "samesite": "None"},
        {"name": "b", "secure": False, "httponly": False, "samesite": None}]


# -- redirects ------------------------------------------------------------------------------


def test_redirects_are_followed_on_the_same_port():
    routes = {"/": Route(301, [("Location", "/a")]), "/a": Route(302, [("Location", "b?x=1")]),
              "/b?x=1": html_route("<title>Final</title>")}
    with serving(routes) as server:
        r = one([fp(server.port)], methods=["GET"], favicon=False)
    base = f"http://127.0.0.1:{server.port}"
    assert r.redirects == [f"{base}/a", f"{base}/b?x=1"]
    assert (r.url, r.status, r.title, r.location, r.error) == (f"{base}/b?x=1", 200, "Final", None, None)


def test_redirect_to_another_port_or_host_is_recorded_not_followed():
    with serving({"/": html_route("other")}) as other:
        routes = {"/": Route(302, [("Location", f"http://127.0.0.1:{other.port}/")]),
                  "/x": Route(302, [("Location", "https://example.com/login")])}
        with serving(routes) as server:
            r = one([fp(server.port)], methods=["GET"], favicon=False)
            r2 = one([fp(server.port)], methods=["GET"], favicon=False, path="/x")
        assert other.requests == []
    assert (r.status, r.redirects, r.location) == (302, [], f"http://127.0.0.1:{other.port}/")
    assert (r2.status, r2.location, r2.error) == (302, "https://example.com/login", None)


def test_redirect_loop_stops_with_an_error():
    routes = {"/": Route(302, [("Location", "/a")]), "/a": Route(302, [("Location", "/")])}
    with serving(routes) as server:
        r = one([fp(server.port)], methods=["GET"], favicon=False)
        assert len(server.requests) == 2
    assert r.status == 302 and "redirect loop" in r.error and r.redirects[-1].endswith("/a")


def test_redirect_chain_longer_than_max_redirects_stops():
    routes = {f"/{i}": Route(302, [("Location", f"/{i + 1}")]) for i in range(10)}
    with serving(routes) as server:
        r = one([fp(server.port)], methods=["GET"], favicon=False, path="/0", max_redirects=3)
        assert [p for _, p, _ in server.requests] == ["/0", "/1", "/2", "/3"]
    assert len(r.redirects) == 3 and "more than 3 redirect" in r.error and r.location.endswith("/4")


# -- TLS --------------------------------------------------------------------------------------


def test_tls_port_is_spoken_over_tls_with_a_generated_certificate(tmp_path):
    routes = {"/": html_route("<title>Secure</title>", ("Set-Cookie", "s=1; HttpOnly"))}
    with serving(routes, tls=tls_context(tmp_path)) as server:
        r = one([fp(server.port, tls=True)], favicon=False)
    assert (r.tls, r.status, r.title) == (True, 200, "Secure")
    assert r.url == f"https://127.0.0.1:{server.port}/"
    assert "strict-transport-security" in r.security_headers_missing  # only missed over TLS


def test_all_ports_tries_tls_where_plain_http_gets_no_answer(tmp_path):
    with serving({"/": html_route("<title>T</title>")}, tls=tls_context(tmp_path)) as server:
        result, _ = run([], extra={"open_ports": [{"host": "127.0.0.1", "port": server.port}]},
                        all_ports=True, favicon=False)
    (r,) = result.context.get("http_responses")
    assert (r.tls, r.status, r.title) == (True, 200, "T")


NGINX_400 = (b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\n"
             b"Content-Length: 95\r\nConnection: close\r\n\r\n<html><body><center>The plain HTTP "
             b"request was sent to HTTPS port</center></body></html>\r\n\r\n\r\n\r\n\r\n\r\n\r\n")


def test_plain_http_refused_by_a_tls_port_is_asked_again_over_tls(tmp_path):
    with serving({"/": html_route("<title>Over TLS</title>")}, tls=tls_context(tmp_path),
                 plain_on_tls=NGINX_400) as server:
        r = one([fp(server.port, tls=False)], methods=["GET"], favicon=False)
    assert (r.tls, r.status, r.title) == (True, 200, "Over TLS")


def test_banners_read_through_tls_mark_the_port_as_tls(tmp_path):
    with serving({"/": html_route("<title>B</title>")}, tls=tls_context(tmp_path)) as server:
        banner = {"host": "127.0.0.1", "port": server.port, "tls": True, "probe": "http_get", "data": ""}
        result, _ = run([fp(server.port, tls=False)], extra={"banners": [banner]}, favicon=False)
        assert set(server.methods()) == {"GET", "HEAD", "OPTIONS"}
    (r,) = result.context.get("http_responses")
    assert (r.tls, r.title) == (True, "B")


def test_https_service_name_means_tls(tmp_path):
    with serving({"/": html_route("ok")}, tls=tls_context(tmp_path)) as server:
        r = one([fp(server.port, service="https")], methods=["GET"], favicon=False)
    assert r.tls and r.status == 200


# -- which ports --------------------------------------------------------------------------------


def test_only_web_ports_unless_all_ports_and_the_ports_filter(tcp_server):
    ssh = tcp_server(banner=b"SSH-2.0-OpenSSH_9.2p1\r\n")
    with serving({"/": html_route("a")}) as a, serving({"/": html_route("b")}) as b:
        fps = [fp(a.port), fp(b.port, service="http-alt"), fp(ssh.port, service="ssh")]
        result, collector = run(fps, methods=["GET"], favicon=False)
        assert {r.port for r in result.context.get("http_responses")} == {a.port, b.port}
        assert sorted(collector.of("http"), key=HttpResponse.sort_key) == result.context.get("http_responses")
        result, _ = run(fps, methods=["GET"], favicon=False, ports=str(b.port))
        assert [r.port for r in result.context.get("http_responses")] == [b.port]
        result, _ = run(fps, methods=["GET"], favicon=False, all_ports=True)
    by_port = {r.port: r for r in result.context.get("http_responses")}
    assert set(by_port) == {a.port, b.port, ssh.port}
    assert by_port[ssh.port].status is None and "not an HTTP reply" in by_port[ssh.port].error


def test_refused_port_leaves_a_record_with_the_reason(closed_tcp_port):
    r = one([fp(closed_tcp_port)])
    assert r.status is None and "connect to 127.0.0.1" in r.error
    assert r.statuses == {} and r.favicon_hash is None


# -- bodies and hostile answers -------------------------------------------------------------------


def test_body_is_capped_and_flagged(tcp_server):
    with serving({"/": html_route("<title>Big</title>" + "x" * 200_000)}) as server:
        r = one([fp(server.port)], methods=["GET"], favicon=False, max_body="1KB")
    assert r.body_truncated and len(r.body.encode()) <= 1024 and r.title == "Big"


def raw_server(tcp_server: Any, reply: bytes) -> int:
    return tcp_server(respond=lambda data: reply if b"\r\n\r\n" in data else b"").port


def test_chunked_body_is_decoded(tcp_server):
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/html\r\n\r\n"
             b"7\r\n<title>\r\n9;ext=1\r\nChunked</\r\n7\r\ntitle>!\r\n0\r\n\r\n")
    r = one([fp(raw_server(tcp_server, reply))], methods=["GET"], favicon=False)
    assert r.body == "<title>Chunked</title>!" and r.title == "Chunked" and not r.body_truncated


def test_body_read_until_close_and_bad_bytes_replaced():
    body = "<title>Caf\xe9 \u2603</title>".encode() + b"\xff\xfe"
    route = Route(200, [("Server", "\udcffodd"), ("Content-Type", "text/html")], body, length=False)
    with serving({"/": route}) as server:
        r = one([fp(server.port)], methods=["GET"], favicon=False)
    assert r.title == "Caf\xe9 \u2603" and r.body.endswith("\ufffd\ufffd") and r.server == "\ufffdodd"


def test_interim_100_continue_is_skipped(tcp_server):
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nServer: x\r\n\r\n"
    r = one([fp(raw_server(tcp_server, reply))], methods=["GET"], favicon=False)
    assert r.status == 204 and r.server == "x"


def test_folded_and_repeated_headers_and_a_location_with_spaces(tcp_server):
    reply = (b"HTTP/1.1 302 Found\r\nX-Long: one\r\n  two\r\nVia: a\r\nVia: b\r\n"
             b"Location: /x y\r\nContent-Length: 0\r\n\r\n")
    r = one([fp(raw_server(tcp_server, reply))], methods=["GET"], favicon=False)
    assert r.headers["x-long"] == "one two" and r.headers["via"] == "a, b"
    assert r.redirects == [] and r.location.endswith("/x y")  # not put on a request line


def test_huge_header_is_refused_not_read_forever(tcp_server):
    reply = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    r = one([fp(raw_server(tcp_server, reply))], methods=["GET"], favicon=False)
    assert r.status is None and "header line longer than" in r.error


def test_silent_server_times_out(tcp_server):
    port = tcp_server(respond=lambda d: b"").port
    r = one([fp(port)], methods=["GET", "HEAD"], favicon=False, timeout="300ms")
    assert r.status is None and "no complete answer within 0.3s" in r.error
    assert "HEAD" not in r.error  # a port silent to GET is not asked again


def test_host_header_and_urls_of_ipv6_are_bracketed():
    ep = Endpoint("::1", 8080)
    assert ep.url("/") == "http://[::1]:8080/" and ep.authority() == "[::1]:8080"
    assert Endpoint("127.0.0.1", 443, tls=True).url("/") == "https://127.0.0.1/"
    assert isinstance(ep.resolve("http://[::1]:8080/", "http://[::1]:9090/"), str)
    moved = ep.resolve("http://[::1]:8080/a/", "b c")  # a space in a Location is not sent
    assert isinstance(moved, str)


def test_scan_port_directly_without_a_dag():
    with serving({"/": html_route("<title>D</title>")}) as server:
        r = scan_port("127.0.0.1", server.port, None, None, HttpOptions(methods=("GET",), favicon=False))
    assert (r.status, r.title, r.tls) == (200, "D", False)


# -- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("config, fragment", [
    ({"methods": ["GET", "PUT"]}, "method 'PUT' is not sent by http_scanner"),
    ({"headers": {"X-Bad": "a\r\nInjected: 1"}}, "without line breaks"),
    ({"headers": {"Bad Name": "x"}}, "not an HTTP token"),
    ({"path": "no-slash"}, "starting with '/'"),
    ({"max_redirects": 100}, "max_redirects"),
    ({"ports": "99999"}, "ports"),
])
def test_bad_config_is_refused_naming_the_key(config, fragment):
    orch = Orchestrator(plugins=[pentora_plugins.web, pentora_plugins.engine], autoload=False)
    orch.load_dag(DagBuilder().add_node("seed", "set", config={"values": {"service_fingerprints": []}})
                  .add_node("http", "http_scanner", ["seed"], config=config).build())
    with pytest.raises(ValidationError) as e:
        orch.validate()
    assert "http" in str(e.value) and fragment in str(e.value), str(e.value)


def test_a_known_host_name_is_sent_as_host_and_redirects_to_it_are_followed():
    routes = {"/": Route(302, [("Location", "/in")]), "/in": html_route("<title>vhost</title>")}
    with serving(routes) as server:
        hosts = [{"address": "127.0.0.1", "hostname": "localhost", "alive": True}]
        result, _ = run([fp(server.port)], extra={"discovered_hosts": hosts}, methods=["GET"], favicon=False)
        assert {h["Host"] for _, _, h in server.requests} == {f"localhost:{server.port}"}
    (r,) = result.context.get("http_responses")
    assert (r.url, r.title, r.host) == (f"http://localhost:{server.port}/in", "vhost", "127.0.0.1")


def test_all_ports_asks_a_named_plain_service_only_in_plain_text():
    # a Redis or SSH port would only wait out the timeout if asked again over TLS
    fps = [fp(6379, service="redis"), fp(8443, service="unknown"), fp(993, service="imap", tls=True)]
    got = list(web_ports(fps, [{"host": "127.0.0.1", "port": 9000}], True, None))
    assert got == [("127.0.0.1", 6379, False), ("127.0.0.1", 8443, None), ("127.0.0.1", 993, True),
                   ("127.0.0.1", 9000, None)]


def test_without_fingerprints_every_open_port_is_requested_tls_tried_on_others(tmp_path, closed_tcp_port):
    """A DAG with a port scan and no fingerprint_parser: http_scanner reads open_ports
    (plain first, then TLS, on ports other than 80/8080/443/8443), and a closed port still
    gets its record saying why, as a port scanned says it is open."""
    plain = serving({"/": html_route("<title>Plain</title>")})
    tls = serving({"/": html_route("<title>Secret</title>")}, tls=tls_context(tmp_path))
    with plain as a, tls as b:
        ports = [{"host": "127.0.0.1", "port": p} for p in (a.port, b.port, closed_tcp_port)]
        collector = RecordCollector()
        orch = Orchestrator(plugins=[pentora_plugins.web, pentora_plugins.engine, collector],
                            autoload=False)
        orch.load_dag(DagBuilder()
                      .add_node("seed", "set", config={"values": {"open_ports": ports}})
                      .add_node("http", "http_scanner", ["seed"], config={"timeout": "3s"}).build())
        result = orch.execute()
    assert result.ok, result.nodes["http"].error
    got = {r.port: r for r in result.context.get("http_responses")}
    assert (got[a.port].title, got[a.port].tls) == ("Plain", False)
    assert (got[b.port].title, got[b.port].tls) == ("Secret", True)
    assert got[closed_tcp_port].status is None and "refused" in got[closed_tcp_port].error


def test_without_fingerprints_nor_ports_upstream_the_dag_is_refused():
    orch = Orchestrator(plugins=[pentora_plugins.web, pentora_plugins.engine], autoload=False)
    orch.load_dag(DagBuilder().add_node("seed", "set", config={"values": {"x": 1}})
                  .add_node("http", "http_scanner", ["seed"]).build())
    with pytest.raises(ValidationError) as e:
        orch.validate()
    assert ("Node 'http' requires one of 'service_fingerprints', 'open_ports', 'discovered_hosts' "
            "but no upstream node produces any") in str(e.value)
