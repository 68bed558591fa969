"""``http_checks``: web misconfigurations in what ``http_scanner`` already read.

Input: ``http_responses``; output: findings merged into ``vulnerabilities`` (through
``_findings.add_vulnerabilities``, which emits them), ``source`` ``check:http``. The checks
send nothing: they judge the GET, HEAD and OPTIONS answers http_scanner collected, so
nothing is ever written to a target.

| check | id | severity |
| --- | --- | --- |
| ``missing_headers`` | PENTORA-HTTP-MISSING-HEADERS | low (CSP, X-Frame-Options or HSTS missing), else info |
| ``directory_listing`` | PENTORA-HTTP-DIRECTORY-LISTING | medium |
| ``default_page`` | PENTORA-HTTP-DEFAULT-PAGE | low |
| ``cookie_flags`` | PENTORA-HTTP-COOKIE-FLAGS | low |
| ``risky_methods`` | PENTORA-HTTP-RISKY-METHODS | low |

References are text (OWASP and MDN pages); pentora never fetches them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import voluptuous as vol
from pentora_plugins.kit.findings import add_vulnerabilities
from pentora_plugins.kit.net.http_facts import OWASP_HEADERS, SECURITY_HEADERS
from pentora_plugins.kit.quality import ACTIVE, QUALITY
from pentora_plugins.kit.records import HttpResponse, Vulnerability, as_response
from voluptuous import Optional

from pentora import Module, NodeContext

SOURCE = "check:http"
SERIOUS_HEADERS = ("content-security-policy", "x-frame-options", "strict-transport-security")
RISKY_METHODS = ("PUT", "DELETE", "TRACE", "TRACK", "CONNECT", "PROPPATCH", "MKCOL", "MOVE", "COPY")

# (server, signature over the body); the body is searched, case-insensitive.
LISTINGS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(p, re.I)) for name, p in (
    ("Apache/nginx autoindex", r"<title>Index of /[^<]{0,500}</title>[\s\S]{0,2000}<h1>Index of /"),
    ("lighttpd dir-listing", r"<h2>Index of /[^<]{0,500}</h2>[\s\S]{0,500}<div class=\"list\">"),
    ("IIS directory browsing", r"<pre><a href=\"[^\"]{0,500}\">\[To Parent Directory\]</a>"),
    ("Python http.server", r"<title>Directory listing for /[^<]{0,500}</title>"),
    ("Tomcat DefaultServlet listing", r"<title>Directory Listing For \[/[^<]{0,500}\]</title>"),
))
DEFAULT_PAGES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(p, re.I)) for name, p in (
    ("nginx", r"<title>Welcome to nginx(?: on [\w ]{1,40})?!</title>"),
    ("Apache (Debian/Ubuntu)", r"<title>Apache2 (?:Debian|Ubuntu) Default Page"),
    ("Apache", r"\A\s{0,10}<html><body><h1>It works!</h1>"),
    ("Apache (Red Hat/CentOS/Fedora)", r"<title>(?:Test Page for the (?:Apache )?HTTP Server|"
                                       r"HTTP Server Test Page)"),
    ("Microsoft IIS", r"<title>IIS(?: Windows(?: Server)?|\d{1,2})</title>|<img src=\"iisstart\.png\""),
    ("Apache Tomcat", r"If you're seeing this,? you've successfully installed Tomcat"),
    ("lighttpd", r"<title>(?:lighttpd :: )?Placeholder page</title>"),
))


def _finding(r: HttpResponse, vid: str, title: str, severity: str, evidence: str,
             references: list[str]) -> Vulnerability:
    return Vulnerability(host=r.host, port=r.port, id=vid, title=title, severity=severity,
                         evidence=evidence[:1000], references=references, source=SOURCE,
                         method=ACTIVE, quality=QUALITY[ACTIVE])


def missing_headers(r: HttpResponse) -> Vulnerability | None:
    missing = r.security_headers_missing
    if not missing:
        return None
    severity = "low" if any(h in missing for h in SERIOUS_HEADERS) else "info"
    why = "; ".join(f"{h}: {SECURITY_HEADERS[h][0]}" for h in missing if h in SECURITY_HEADERS)
    present = ", ".join(r.security_headers_present) or "none"
    return _finding(r, "PENTORA-HTTP-MISSING-HEADERS", f"Missing HTTP security headers: {', '.join(missing)}",
                    severity, f"{r.url} answered {r.status} without {', '.join(missing)} "
                              f"(present: {present}). {why}",
                    [OWASP_HEADERS] + [SECURITY_HEADERS[h][1] for h in missing if h in SECURITY_HEADERS])


def directory_listing(r: HttpResponse) -> Vulnerability | None:
    hit = _signature(r, LISTINGS) if r.status == 200 else None
    if hit is None:
        return None
    name, text = hit
    return _finding(r, "PENTORA-HTTP-DIRECTORY-LISTING", "Directory listing enabled", "medium",
                    f"{r.url} lists a directory ({name}): {text}",
                    ["https://owasp.org/www-project-web-security-testing-guide/latest/4-Web_Application_"
                     "Security_Testing/02-Configuration_and_Deployment_Management_Testing/"
                     "04-Review_Old_Backup_and_Unreferenced_Files_for_Sensitive_Information",
                     "https://cwe.mitre.org/data/definitions/548.html"])


def default_page(r: HttpResponse) -> Vulnerability | None:
    hit = _signature(r, DEFAULT_PAGES) if r.status == 200 else None
    if hit is None:
        return None
    name, text = hit
    return _finding(r, "PENTORA-HTTP-DEFAULT-PAGE", f"Default {name} install page", "low",
                    f"{r.url} serves the default page of {name}: {text}",
                    ["https://owasp.org/www-project-web-security-testing-guide/latest/4-Web_Application_"
                     "Security_Testing/02-Configuration_and_Deployment_Management_Testing/"
                     "02-Test_Application_Platform_Configuration"])


def cookie_flags(r: HttpResponse) -> Vulnerability | None:
    weak = []
    for c in r.cookies:
        lacking = [flag for flag, ok in (("HttpOnly", c.get("httponly")),
                                         ("Secure", c.get("secure") or not r.tls)) if not ok]
        if lacking:
            weak.append(f"{c.get('name')} without {' and '.join(lacking)}")
    if not weak:
        return None
    return _finding(r, "PENTORA-HTTP-COOKIE-FLAGS", "Cookies set without HttpOnly or Secure", "low",
                    f"{r.url} sets " + "; ".join(weak),
                    ["https://owasp.org/www-community/HttpOnly",
                     "https://developer.mozilla.org/en-US/docs/Web/HTTP/Cookies#restrict_access_to_cookies"])


def risky_methods(r: HttpResponse) -> Vulnerability | None:
    risky = [m for m in r.allowed_methods if m in RISKY_METHODS]
    if not risky:
        return None
    return _finding(r, "PENTORA-HTTP-RISKY-METHODS", f"Risky HTTP methods allowed: {', '.join(risky)}",
                    "low", f"OPTIONS {r.url} answers Allow: {', '.join(r.allowed_methods)} (as announced; "
                           f"not tried)",
                    ["https://owasp.org/www-project-web-security-testing-guide/latest/4-Web_Application_"
                     "Security_Testing/02-Configuration_and_Deployment_Management_Testing/"
                     "06-Test_HTTP_Methods"])


def _signature(r: HttpResponse, table: tuple[tuple[str, re.Pattern[str]], ...]) -> tuple[str, str] | None:
    for name, pattern in table:
        m = pattern.search(r.body)
        if m:
            return name, " ".join(m.group(0).split())[:120]
    return None


CHECKS: dict[str, Callable[[HttpResponse], Vulnerability | None]] = {
    "missing_headers": missing_headers,
    "directory_listing": directory_listing,
    "default_page": default_page,
    "cookie_flags": cookie_flags,
    "risky_methods": risky_methods,
}


def check_responses(responses: list[HttpResponse], names: list[str]) -> list[Vulnerability]:
    """The findings of the checks ``names`` over ``responses`` (those that answered)."""
    return [v for r in responses if r.status is not None for name in names
            if (v := CHECKS[name](r)) is not None]


class HttpChecks(Module):
    """Missing security headers, directory listings, default pages, cookie flags, methods."""

    module_type = "http_checks"
    description = "web misconfigurations (security headers, listings, default pages) → vulnerabilities"
    requires = ("http_responses",)
    produces = ("vulnerabilities",)
    config_schema = {
        Optional("checks", default=list(CHECKS),
                 description=f"checks to run: {', '.join(CHECKS)}"): [vol.In(list(CHECKS))],
    }

    def run(self, ctx: NodeContext, config: dict[str, Any]) -> None:
        responses = [as_response(r) for r in ctx.get("http_responses") or ()]
        found = check_responses(responses, config["checks"])
        ctx.log.info(f"http_checks: {len(found)} finding(s) over {len(responses)} response(s)")
        add_vulnerabilities(ctx, found)
