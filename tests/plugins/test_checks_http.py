"""http_checks on what http_scanner read from real servers on 127.0.0.1 (missing security
headers, directory listings, default install pages, cookie flags, risky methods), merged
into ``vulnerabilities``; and the whole web pipeline once through the real CLI:
target_parser → connect_scanner → banner_grabber → fingerprint_parser → http_scanner →
webapp_fingerprinter → http_checks."""

from __future__ import annotations

import json
from typing import Any

import pentora_plugins.checks
import pentora_plugins.engine
import pentora_plugins.web
import pytest
from pentora_plugins.checks.http_checks import check_responses
from pentora_plugins.kit.records import HttpResponse, Vulnerability

from pentora import DagBuilder, Orchestrator, ValidationError
from pentora.testing import RecordCollector

from ._httpd import Route, html_route, serving, tls_context

ALL_HEADERS = [("Content-Security-Policy", "default-src 'self'"), ("X-Frame-Options", "DENY"),
               ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
               ("Permissions-Policy", "camera=()"), ("Strict-Transport-Security", "max-age=600")]
NGINX_AUTOINDEX = ("<html>\r\n<head><title>Index of /files/</title></head>\r\n<body>\r\n"
                   "<h1>Index of /files/</h1><hr><pre><a href=\"../\">../</a>\r\n"
                   "<a href=\"backup.sql\">backup.sql</a>   01-Jan-2024 00:00   1234\r\n"
                   "</pre><hr></body>\r\n</html>\r\n")
APACHE_AUTOINDEX = ('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<html>\n <head>\n'
                    "  <title>Index of /</title>\n </head>\n <body>\n<h1>Index of /</h1>\n"
                    "  <table>\n   <tr><th><a href=\"?C=N;O=D\">Name</a></th></tr>\n</table>\n"
                    "<address>Apache/2.4.57 (Debian) Server at 127.0.0.1 Port 80</address>\n</body></html>\n")
DEFAULT_PAGES = {
    "nginx": "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head><body>"
             "<h1>Welcome to nginx!</h1></body></html>",
    "Apache (Debian/Ubuntu)": "<html><head><title>Apache2 Debian Default Page: It works</title>"
                              "</head></html>",
    "Microsoft IIS": '<html><head><title>IIS Windows Server</title></head><body><img src="iisstart.png" '
                     'alt="IIS" width="960" height="600" /></body></html>',
    "Apache Tomcat": "<title>Apache Tomcat/9.0.83</title><h2>If you're seeing this, you've successfully "
                     "installed Tomcat. Congratulations!</h2>",
}


def fp(port: int, tls: bool = False) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "protocol": "tcp", "service": "http", "tls": tls}


def scan(ports: list[dict[str, Any]], seed: dict[str, Any] | None = None,
         **config: Any) -> tuple[list[Vulnerability], RecordCollector]:
    collector = RecordCollector()
    orch = Orchestrator(plugins=[pentora_plugins.web, pentora_plugins.checks, pentora_plugins.engine,
                                 collector], autoload=False)
    orch.load_dag(DagBuilder()
                  .add_node("seed", "set", config={"values": {"service_fingerprints": ports, **(seed or {})}})
                  .add_node("http", "http_scanner", ["seed"], config={"favicon": False})
                  .add_node("checks", "http_checks", ["http"], config=config).build())
    result = orch.execute()
    assert result.ok, result.nodes["checks"].error
    return result.context.get("vulnerabilities"), collector


def ids(found: list[Vulnerability], port: int) -> dict[str, Vulnerability]:
    return {v.id: v for v in found if v.port == port}


# -- each check on a real server --------------------------------------------------------------


def test_missing_security_headers_one_finding_per_response_listing_them():
    with serving({"/": html_route("bare")}) as bare, \
            serving({"/": html_route("good", *ALL_HEADERS)}) as good, \
            serving({"/": html_route("half", *ALL_HEADERS[:2])}) as half:
        found, collector = scan([fp(bare.port), fp(good.port), fp(half.port)])
        methods = {m for s in (bare, good, half) for m in s.methods()}
    assert methods <= {"GET", "HEAD", "OPTIONS"}  # safe methods only, nothing written
    v = ids(found, bare.port)["PENTORA-HTTP-MISSING-HEADERS"]
    assert v.severity == "low" and v.source == "check:http" and v.host == "127.0.0.1"
    assert "content-security-policy, x-frame-options, x-content-type-options" in v.title
    assert f"http://127.0.0.1:{bare.port}/ answered 200" in v.evidence
    assert "https://owasp.org/www-project-secure-headers/" in v.references
    assert any("developer.mozilla.org" in r and "Content-Security-Policy" in r for r in v.references)
    assert "PENTORA-HTTP-MISSING-HEADERS" not in ids(found, good.port)
    only_minor = ids(found, half.port)["PENTORA-HTTP-MISSING-HEADERS"]
    assert only_minor.severity == "info" and "content-security-policy" not in only_minor.title
    assert sorted(collector.of("vulnerability"), key=Vulnerability.sort_key) == found


def test_hsts_is_missed_over_tls_only(tmp_path):
    with serving({"/": html_route("t", *ALL_HEADERS[:5])}, tls=tls_context(tmp_path)) as server:
        found, _ = scan([fp(server.port, tls=True)])
    v = ids(found, server.port)["PENTORA-HTTP-MISSING-HEADERS"]
    assert v.title.endswith("strict-transport-security") and v.severity == "low"


@pytest.mark.parametrize("page", [NGINX_AUTOINDEX, APACHE_AUTOINDEX], ids=["nginx", "apache"])
def test_directory_listing_is_found(page):
    with serving({"/files/": html_route(page, *ALL_HEADERS)}) as server:
        collector = RecordCollector()
        orch = Orchestrator(plugins=[pentora_plugins.web, pentora_plugins.checks, pentora_plugins.engine,
                                     collector], autoload=False)
        orch.load_dag(DagBuilder()
                      .add_node("seed", "set", config={"values": {"service_fingerprints": [fp(server.port)]}})
                      .add_node("http", "http_scanner", ["seed"],
                                config={"path": "/files/", "favicon": False})
                      .add_node("checks", "http_checks", ["http"]).build())
        found = orch.execute().context.get("vulnerabilities")
    v = ids(found, server.port)["PENTORA-HTTP-DIRECTORY-LISTING"]
    assert v.severity == "medium" and "Index of /" in v.evidence and "/files/" in v.evidence
    assert set(ids(found, server.port)) == {"PENTORA-HTTP-DIRECTORY-LISTING"}


@pytest.mark.parametrize("name", list(DEFAULT_PAGES))
def test_default_install_page_is_found(name):
    with serving({"/": html_route(DEFAULT_PAGES[name], *ALL_HEADERS)}) as server:
        found, _ = scan([fp(server.port)])
    v = ids(found, server.port)["PENTORA-HTTP-DEFAULT-PAGE"]
    assert v.severity == "low" and name in v.title and name in v.evidence


def test_ordinary_pages_give_no_listing_or_default_page_finding():
    pages = {"/": html_route("<title>Index of products</title><h1>Welcome to our nginx tips</h1>",
                             *ALL_HEADERS)}
    with serving(pages) as server:
        found, _ = scan([fp(server.port)])
    assert ids(found, server.port) == {}


def test_cookie_flags_and_risky_methods(tmp_path):
    route = html_route("c", *ALL_HEADERS, ("Set-Cookie", "sid=1; Path=/"),
                       ("Set-Cookie", "ok=1; Secure; HttpOnly"), ("Set-Cookie", "js=1; HttpOnly"))
    with serving({"/": route}, allow="GET, HEAD, PUT, DELETE, TRACE", tls=tls_context(tmp_path)) as server:
        found, _ = scan([fp(server.port, tls=True)])
        assert set(server.methods()) <= {"GET", "HEAD", "OPTIONS"}
    by_id = ids(found, server.port)
    cookies = by_id["PENTORA-HTTP-COOKIE-FLAGS"]
    assert "sid without HttpOnly and Secure" in cookies.evidence and "js without Secure" in cookies.evidence
    assert "ok " not in cookies.evidence
    methods = by_id["PENTORA-HTTP-RISKY-METHODS"]
    assert methods.title == "Risky HTTP methods allowed: PUT, DELETE, TRACE"
    assert "not tried" in methods.evidence
    assert {(v.method, v.quality) for v in by_id.values()} == {("active", 95)}


def test_findings_merge_with_what_other_checks_found_and_selected_checks_only():
    other = Vulnerability(host="127.0.0.1", port=22, id="PENTORA-SSH-WEAK-KEX", source="check:ssh")
    with serving({"/": html_route(DEFAULT_PAGES["nginx"])}) as server:
        found, _ = scan([fp(server.port)], seed={"vulnerabilities": [other]}, checks=["default_page"])
    assert other in found
    assert set(ids(found, server.port)) == {"PENTORA-HTTP-DEFAULT-PAGE"}


def test_unknown_check_name_is_refused():
    orch = Orchestrator(plugins=[pentora_plugins.checks, pentora_plugins.engine], autoload=False)
    orch.load_dag(DagBuilder().add_node("seed", "set", config={"values": {"http_responses": []}})
                  .add_node("checks", "http_checks", ["seed"], config={"checks": ["sqli"]}).build())
    with pytest.raises(ValidationError) as e:
        orch.validate()
    assert "checks" in str(e.value) and "sqli" in str(e.value)


def test_responses_that_never_answered_give_no_findings():
    r = HttpResponse(host="127.0.0.1", port=1, error="connect failed", security_headers_missing=["x"])
    assert check_responses([r], ["missing_headers"]) == []


# -- the pipeline through the CLI --------------------------------------------------------------

PIPELINE = """\
name: web-pipeline-test
vars: {targets: "127.0.0.1", ports: "80"}
engine: {fail_fast: false}
nodes:
  - {instance_id: targets, module_type: target_parser, config: {targets: "${targets}"}}
  - instance_id: ports
    module_type: connect_scanner
    depends_on: [targets]
    config: {ports: "${ports}", input: targets}
  - {instance_id: banners, module_type: banner_grabber, depends_on: [ports]}
  - {instance_id: fingerprint, module_type: fingerprint_parser, depends_on: [banners]}
  - {instance_id: http, module_type: http_scanner, depends_on: [fingerprint]}
  - {instance_id: webapps, module_type: webapp_fingerprinter, depends_on: [http]}
  - {instance_id: checks, module_type: http_checks, depends_on: [http]}
"""


def test_web_pipeline_through_the_cli(tmp_path, run_cli):
    dag, out = tmp_path / "web.yaml", tmp_path / "out.jsonl"
    dag.write_text(PIPELINE)
    plain = {"/": html_route(DEFAULT_PAGES["nginx"], ("Server", "nginx/1.24.0")),
             "/favicon.ico": Route(200, [("Content-Type", "image/x-icon")], b"\x00\x00\x01\x00icon")}
    secure = {"/": html_route('<meta name="generator" content="WordPress 6.4.2">',
                              ("Server", "Apache/2.4.57"), ("X-Powered-By", "PHP/8.2.7"),
                              ("Set-Cookie", "wp=1; Path=/"))}
    with serving(plain) as web, serving(secure, tls=tls_context(tmp_path)) as tls_web:
        done = run_cli("scan", "--dag", str(dag), "--targets", "127.0.0.1",
                       "-p", f"{web.port},{tls_web.port}", "-o", str(out), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    http = {r["port"]: r for r in lines if r["kind"] == "http"}
    assert set(http) == {web.port, tls_web.port}
    assert (http[web.port]["tls"], http[web.port]["title"], http[web.port]["server"]) == (
        False, "Welcome to nginx!", "nginx/1.24.0")
    assert http[web.port]["favicon_hash"] is not None
    assert http[tls_web.port]["tls"] is True and http[tls_web.port]["status"] == 200
    techs = {(r["port"], r["name"], r["version"]) for r in lines if r["kind"] == "webtech"}
    assert {(web.port, "nginx", "1.24.0"), (tls_web.port, "WordPress", "6.4.2"),
            (tls_web.port, "Apache HTTP Server", "2.4.57"), (tls_web.port, "PHP", "8.2.7")} <= techs
    vulns = {(r["port"], r["id"]) for r in lines if r["kind"] == "vulnerability"}
    assert {(web.port, "PENTORA-HTTP-DEFAULT-PAGE"), (web.port, "PENTORA-HTTP-MISSING-HEADERS"),
            (tls_web.port, "PENTORA-HTTP-MISSING-HEADERS"),
            (tls_web.port, "PENTORA-HTTP-COOKIE-FLAGS")} <= vulns
    assert all(r["source"] == "check:http" for r in lines if r["kind"] == "vulnerability")


def test_example_dag_validates_with_the_installed_plugins(tmp_path, run_cli):
    dag = tmp_path / "web.yaml"
    dag.write_text(PIPELINE)
    done = run_cli("dag", "validate", str(dag))
    assert done.returncode == 0, done.stdout + done.stderr
